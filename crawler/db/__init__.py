"""PostgreSQL: URL resolution (embedded default), migrations and the async pool.

The names below load on first use, so that reading the declared settings
(``crawler.db.settings_spec``) does not load the PostgreSQL driver.
"""

import importlib

_LAZY = {"database_url": "crawler.db.embedded", "close_pools": "crawler.db.pool", "get_pool": "crawler.db.pool"}

__all__ = ["close_pools", "database_url", "get_pool"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
