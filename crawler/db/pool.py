"""One async connection pool per database URL and event loop, shared by components."""

from __future__ import annotations

import asyncio
import random

import psycopg
from psycopg_pool import AsyncConnectionPool

from crawler.db.embedded import database_url

_pools: dict[tuple[str, int], AsyncConnectionPool] = {}
# serialization failure, deadlock, lock not available, admin/crash shutdown, cannot connect now, too many connections
TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"}


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the connection was lost or the server is (re)starting or contended."""
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    return getattr(exc, "sqlstate", None) in TRANSIENT_SQLSTATES


async def get_pool(settings) -> AsyncConnectionPool:
    """The open pool for this process's database (opened on first use)."""
    url = database_url(settings)
    key = (url, id(asyncio.get_running_loop()))
    pool = _pools.get(key)
    if pool is None:
        pool = AsyncConnectionPool(
            url,
            min_size=settings.getint("PG_POOL_MIN_SIZE"),
            max_size=settings.getint("PG_POOL_MAX_SIZE"),
            timeout=settings.getfloat("PG_CONNECT_TIMEOUT") * 6,
            # application_name: the crawler's sessions are recognisable in pg_stat_activity
            kwargs={
                "connect_timeout": max(1, round(settings.getfloat("PG_CONNECT_TIMEOUT"))),
                "application_name": "crawler",
            },
            open=False,
            name="crawler",
            # a pooled connection the server dropped meanwhile is replaced, not handed out
            check=AsyncConnectionPool.check_connection,
        )
        _pools[key] = pool
        await pool.open(wait=True, timeout=settings.getfloat("PG_CONNECT_TIMEOUT") * 2)
    return pool


async def close_pools() -> None:
    loop_id = id(asyncio.get_running_loop())
    for key in [k for k in _pools if k[1] == loop_id]:
        await _pools.pop(key).close()


class PoolCloser:
    """Extension: closes this process's pools once the engine has stopped, after
    every pipeline and extension that writes has finished with them."""

    @classmethod
    def from_crawler(cls, crawler):
        from scrapy import signals

        crawler.signals.connect(close_pools, signal=signals.engine_stopped)
        return cls()


async def run_in_transaction(settings, work, attempts: int = 8):
    """``await work(conn)`` in a transaction, retried with backoff on transient errors
    (connection lost, server restarting): for the few small writes outside BulkWriter."""
    for attempt in range(1, attempts + 1):
        try:
            pool = await get_pool(settings)
            async with pool.connection() as conn, conn.transaction():
                return await work(conn)
        except psycopg.Error as exc:
            if not is_transient(exc) or attempt == attempts:
                raise
            await asyncio.sleep(random.uniform(0, min(10.0, 0.2 * 2**attempt)))
