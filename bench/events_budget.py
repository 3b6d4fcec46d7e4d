"""How much of a published rate budget the events spider uses, and how many 429s it meets.

    python bench/events_budget.py [--limit 600] [--window 60] [--windows 3] [--reset-style seconds|epoch]

Starts the sandbox events API with a budget of --limit requests per --window
seconds (fixed windows, as the reference API), runs ``scrapy crawl events`` with
small pages so it cannot finish, stops it gracefully after --windows windows, and
prints, per closed window, the requests the server counted as a fraction of the
budget (the baseline: the budget itself; goal >= 0.9), and the number of 429s
(goal 0 after the first response).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from events import REDIS, ROOT, drop_database, events_sandbox, fresh_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--window", type=float, default=60)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--reset-style", choices=("seconds", "epoch"), default="seconds")
    args = parser.parse_args()
    name, url = fresh_database()
    try:
        with tempfile.TemporaryDirectory() as tmp, events_sandbox(1_000_000) as urls:
            api = urls["events"]
            config = {"rate_limit": args.limit, "rate_window": args.window, "reset_style": args.reset_style}
            request = urllib.request.Request(
                f"{api}/events/config",
                data=json.dumps(config).encode(),
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(request, timeout=10).read()
            env = dict(
                os.environ,
                DATABASE_URL=url,
                REDIS_URL=REDIS,
                EVENTS_API_KEY="sandbox-key",
                REDIS_KEY_PREFIX=f"bench:{uuid.uuid4().hex[:8]}:",
                DATA_DIR=str(Path(tmp) / "data"),
            )
            crawl = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "scrapy",
                    "crawl",
                    "events",
                    "-a",
                    f"base_url={api}",
                    "-a",
                    "page_size=50",
                    "-a",
                    "partitions=4",
                    "-s",
                    "LOG_LEVEL=WARNING",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            time.sleep(args.window * args.windows + 2)
            crawl.send_signal(signal.SIGTERM)
            crawl.communicate(timeout=120)
            with urllib.request.urlopen(f"{api}/events/stats", timeout=10) as response:
                stats = json.loads(response.read())
    finally:
        drop_database(name)
    used = [w["used"] / args.limit for w in stats["windows"]][: args.windows]
    print("per window: " + ", ".join(f"{u:.3f}" for u in used))
    print(
        f"budget {args.limit} per {args.window:g}s (Reset as {args.reset_style}): used {min(used):.3f} of the "
        f"budget in the worst window, {sum(used) / len(used):.3f} on average (ratio to budget); "
        f"429s: {stats['rate_limited']}"
    )


if __name__ == "__main__":
    main()
