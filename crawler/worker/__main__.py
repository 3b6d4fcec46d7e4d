"""``python -m crawler.worker``: run queued scans (procrastinate queue ``scans``) and the removal
jobs (queue ``removals``: the optout crawl and the periodic removal schedule, see
crawler/worker/removal_jobs.py), sharing ``WORKER_CONCURRENCY``.

Each scan runs as its own crawl (``scrapy crawl scan -a scan_id=<id>``), at most
``WORKER_CONCURRENCY`` at once, or on scrapyd nodes with ``SCRAPYD_URLS``. Settings come from the
environment as for ``scrapy crawl``. The worker's heartbeat (``procrastinate_workers``) is what
``/health`` reads; every worker also queues again the scans of workers whose heartbeat stopped
for ``WORKER_STALLED_SECONDS`` (a SIGKILLed worker: its crawls died with it).

SIGTERM / SIGINT: no new scan is taken; running scans finish (for at most
``WORKER_SHUTDOWN_SECONDS`` when set, then they are stopped and handed back to the queue); exit 0.
A second signal exits at once (its crawls die with it and are recovered as above). Logs name
scans by id only.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from scrapy.utils.project import get_project_settings

from crawler.config import ConfigError, log_level, validate
from crawler.db.pool import close_pools
from crawler.runtime import check_database
from crawler.store import jobs
from crawler.worker import removal_jobs
from crawler.worker.task import create_app

logger = logging.getLogger("crawler.worker")


async def recover_stalled(settings, stalled_seconds: float) -> None:
    """Every few seconds: scans whose worker stopped answering go back to the queue."""
    while True:
        try:
            for scan_id in await jobs.retry_stalled_jobs(settings, stalled_seconds):
                logger.warning("scan %s: its worker stopped answering; queued again", scan_id)
            if n := await removal_jobs.retry_stalled(settings, stalled_seconds):
                logger.warning("%d removal job(s) of a worker that stopped answering queued again", n)
        except Exception as exc:  # the database may be away for a while: try again next round
            logger.warning("stalled-job recovery failed (%s)", type(exc).__name__)
        await asyncio.sleep(max(1.0, stalled_seconds / 3))


async def run(settings) -> None:
    stalled = settings.getfloat("WORKER_STALLED_SECONDS")
    shutdown = settings.getfloat("WORKER_SHUTDOWN_SECONDS")
    app = create_app(settings)
    async with app.open_async():
        recovery = asyncio.create_task(recover_stalled(settings, stalled), name="recover_stalled")
        try:
            await app.run_worker_async(
                queues=[jobs.QUEUE, removal_jobs.QUEUE],
                name="scans",
                concurrency=settings.getint("WORKER_CONCURRENCY"),
                stalled_worker_timeout=stalled,
                update_heartbeat_interval=max(0.5, min(10.0, stalled / 3)),
                abort_job_polling_interval=2.0,
                shutdown_graceful_timeout=shutdown or None,
                install_signal_handlers=True,
            )
        finally:
            recovery.cancel()
            await asyncio.gather(recovery, return_exceptions=True)
            if app.fork_server is not None:
                await app.fork_server.close()
            if app.shared_browser is not None:
                await app.shared_browser.close()
            await close_pools()


def main() -> int:
    settings = get_project_settings()
    try:
        validate(settings)
        check_database(settings)  # the embedded database is migrated; an external one must be current
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=log_level(settings), format="%(asctime)s [%(name)s] %(levelname)s: %(message)s", stream=sys.stderr
    )
    logger.info(
        "worker: queue %s, concurrency %s%s",
        jobs.QUEUE,
        settings.getint("WORKER_CONCURRENCY"),
        ", on scrapyd" if settings.get("SCRAPYD_URLS") else "",
    )
    asyncio.run(run(settings))
    logger.info("worker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
