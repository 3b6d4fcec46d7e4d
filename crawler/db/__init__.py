"""PostgreSQL: URL resolution (embedded default), migrations and the async pool."""

from crawler.db.embedded import database_url
from crawler.db.pool import close_pools, get_pool

__all__ = ["close_pools", "database_url", "get_pool"]
