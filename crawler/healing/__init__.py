"""Self-healing extraction: drift detection, selector memory, relocation, LLM proposals, versions.

    Healer (healer.py)          the crawl's side: read, hold, heal, hand back
    heal_detail / heal_list     a heal of one page kind on the pages that broke (heal.py)
    python -m crawler.healing   list / diff / accept / reject / export versions, and `check` pages
"""
