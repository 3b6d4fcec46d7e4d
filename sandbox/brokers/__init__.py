"""Simulated people-search ("data broker") sites, one sandbox service each.

Each lists a deterministic part of the synthetic population (sandbox/population.py)
in its own URL scheme, HTML and value formats, and defends itself the way its real
counterpart does (rate-limit pages, interstitials, CAPTCHA redirects, plain 403s),
so spiders and the matching benchmark meet realistic variety. Every module exposes
``SITE_ID`` and ``listing_url(person)`` (the ground truth: the person's detail page
path, or None when the site does not list them) and registers its service when
imported; ``sandbox/sites/__init__.py`` imports them. Shared: ``common.py`` (who is
listed, ids, search, formats), ``control.py`` (config, counters, rate limits, ``/_sandbox``) and
``optouts.py`` (each site's opt-out state: submissions per listing, removals, re-listings, ``/__optouts``).
Each site also has an opt-out of its own kind (its module docstring tells which), driven by the
``opt_out`` flow of its ``spiders/sites/*.yaml``.
"""
