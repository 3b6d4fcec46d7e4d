"""Self-healing extraction: drift detection, selector memory, relocation, LLM proposals, versions.

The crawl's side is ``healer.Healer`` (read, hold, heal, hand back); a heal of one page kind on the pages
that broke is ``heal.heal_detail`` / ``heal.heal_list``; ``python -m crawler.healing`` lists, diffs,
accepts, rejects and exports versions, and checks pages.
"""
