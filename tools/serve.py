"""``python -m tools.serve`` (``make serve``): the sandbox, the API with its page, and a worker,
running until Ctrl-C, to use the page by hand.

Prints the page's URL (API_HOST:API_PORT, default http://127.0.0.1:8000/) and a new API key for
the user ``local`` to sign in with. Scans run against the sandbox's simulated brokers; the sandbox
person "John Smith, 40, Chicago IL" is listed on all five.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from scrapy.utils.project import get_project_settings

from crawler.config import ConfigError, validate
from crawler.db.embedded import database_url
from crawler.runtime import check_database
from sandbox.launch import SandboxFailed, running
from tools.demo import BROKERS
from tools.services import ServiceFailed, environment, scans_service


def main() -> int:
    settings = get_project_settings()
    try:
        validate(settings)
        check_database(settings)  # the embedded database is migrated; an external one must be current
        url = database_url(settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    logs_dir = (Path(settings.get("DATA_DIR") or ".data") / "logs" / "serve").resolve()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        with running(["--free-ports", "--events-count", "1000"]) as urls:
            env = environment(DATABASE_URL=url, SITES_BASE_URLS=",".join(f"{s}={urls[s]}" for s in BROKERS))
            host, port = settings.get("API_HOST"), settings.getint("API_PORT")
            with scans_service(env, logs_dir, user="local", host=host, port=port) as service:
                print(f"page:    {service.api}/")
                print(f"API:     {service.api}/docs (OpenAPI: {service.api}/openapi.json)")
                print("sandbox: " + ", ".join(f"{s} {urls[s]}" for s in BROKERS))
                print(f"logs:    {logs_dir}")
                print("a new API key for user 'local' (sign in with it; shown once):")
                print(service.key, flush=True)
                stop.wait()
                print("stopping...")
    except (SandboxFailed, ServiceFailed) as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
