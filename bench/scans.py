"""Scan throughput: people looked up on the five sandbox brokers, politeness limits off, then on.

    python bench/scans.py [--people 50] [--on-people 10] [--workers 2] [--concurrency 2]
                          [--sites fastpeople,...] [--seed 11] [--profile DIR]

Self-contained: starts the sandbox on free ports, creates and migrates its own database, keys and
API key, starts the API and ``--workers`` workers (``python -m crawler.worker``), and removes it all
at the end. ``--people`` people are drawn (seeded) from the sandbox population and posted through
the API at once; the run ends when every scan is final.

1. limits off: every broker's rate limit off in the sandbox and ours too (``RATELIMIT_ENABLED=false``).
2. limits on: the sandbox's default limits and ours (``RATELIMIT_ENABLED=true``), shared by the
   workers' crawls through Redis (REDIS_URL, else TEST_REDIS_URL, else the local Redis; a fresh key
   prefix, removed at the end) as in production, the shared scheduler closing a crawl after 1 s idle. It is
   reduced to ``--on-people`` people (default 10) because the brokers' limits (25 to 60 requests a
   minute) make it minutes long whatever we do; ``--on-people 0`` skips it.

Prints for each: scans/minute, sites/s (sites scanned successfully, outcome other than ``error``,
per second of wall time), seconds per person p50/p95 (the scan's ``started_at`` to ``finished_at``;
also queued to finished), the share of sites that succeeded (overall and per broker) and the load
average. Baselines of the same run: the anchor (a Node/puppeteer implementation of the same job:
1.68 sites/s, 18.8 s per person over 40 real sites) and limits-on against limits-off. The last line
is the headline: ``scans: S sites/s; p95 T s`` (limits off).

``--profile DIR`` runs each worker under ``py-spy record --subprocesses`` (the crawls it starts
too) and prints where the time went, by component, from the collapsed stacks.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import drop_database, fresh_database  # noqa: E402
from bench.scans_queue import BROKERS, FINAL, limits_off, people, seconds  # noqa: E402
from sandbox.launch import running  # noqa: E402
from tools.services import child, create_key, free_port, wait_listening  # noqa: E402

ANCHOR_SITES_PER_SECOND = 1.68  # Node/puppeteer, 40 real sites
ANCHOR_SECONDS_PER_PERSON = 18.8
GOAL_SITES_PER_SECOND, GOAL_P95 = 3.0, 10.0

# where a stack's time goes, first match from the leaf up (py-spy collapsed stacks)
COMPONENTS = (
    ("screenshots", ("pipelines/screenshots.py", "security/evidence.py")),
    ("browser (playwright)", ("playwright/", "scrapy_playwright/")),
    ("database", ("psycopg", "db/writer.py", "db/pool.py", "crawler/store/")),
    ("matching", ("crawler/matching/", "pipelines/match.py")),
    ("encryption", ("pipelines/encrypt.py", "crawler/security/", "cryptography/")),
    ("extraction", ("crawler/extraction/", "parsel/", "lxml/")),
    ("start-up (imports)", ("<frozen importlib._bootstrap", "pkg_resources", "importlib/metadata")),
    ("scrapy / twisted", ("scrapy/", "twisted/")),
    ("worker (procrastinate)", ("procrastinate/", "crawler/worker/")),
    ("asyncio", ("asyncio/",)),
)


def pct(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


class CpuMeter:
    """CPU seconds of the bench's processes by kind, sampled from /proc every half second: the
    sandbox, the API, the workers, the fork server, the crawls (Python), Playwright's driver (Node),
    Chromium, and this database's PostgreSQL backends. A process's last half second before it exits
    is missed (a few percent of a ten-second crawl)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, database: str):
        self.database = database
        self.seen: dict[int, tuple[str, float]] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()
        self.sample()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            self.sample()

    def sample(self) -> None:
        procs = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            procs[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / self.TICK, cmdline)
        ours = {os.getpid()}
        changed = True  # parents are not always listed before their children: to a fixed point
        while changed:
            changed = False
            for pid, (ppid, _, _) in procs.items():
                if ppid in ours and pid not in ours:
                    ours.add(pid)
                    changed = True
        for pid, (ppid, cpu, cmdline) in procs.items():
            if pid in ours and pid != os.getpid():
                kind = self.kind(cmdline, procs.get(ppid, (0, 0, ""))[2])
            elif cmdline.startswith("postgres: ") and f" {self.database} " in cmdline:
                kind = "postgresql (this database)"
            else:
                continue
            self.seen[pid] = (kind, cpu)

    @staticmethod
    def kind(cmdline: str, parent: str) -> str:
        if "chromium_launcher" in cmdline or "pyenv" in cmdline:
            return "chromium launcher"
        if "chrom" in cmdline or "chrom" in parent:  # renderers may hide their command line
            return "chromium"
        if "node" in cmdline.split(" ", 1)[0] or "playwright" in cmdline:
            return "playwright driver (node)"
        if "-m sandbox" in cmdline:
            return "sandbox"
        if "crawler.worker.forkserver" in cmdline:
            return "crawls (python)" if "crawler.worker.forkserver" in parent else "fork server"
        if "scrapy crawl" in cmdline:
            return "crawls (python)"
        if "-m crawler.worker" in cmdline:
            return "workers"
        if "-m crawler.api" in cmdline:
            return "api"
        if "py-spy" in cmdline:
            return "py-spy"
        return "other"

    def totals(self) -> Counter:
        totals: Counter = Counter()
        for kind, cpu in self.seen.values():
            totals[kind] += cpu
        return totals


def drop_redis_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
    finally:
        client.close()


def limits_on(urls: dict[str, str], sites) -> None:
    for site in sites:
        httpx.post(f"{urls[site]}/_sandbox/config", json={"defaults": True}, timeout=10).raise_for_status()


def run_scans(client: httpx.Client, persons: list[dict], sites: list[str]) -> tuple[float, list[dict]]:
    """Post every person at once, wait until every scan is final; the wall time is the database's,
    from the first scan created to the last finished (the polling, kept light, does not count)."""
    ids = []
    for person in persons:
        response = client.post("/api/scans", json={"person": person, "sites": sites})
        response.raise_for_status()
        ids.append(response.json()["id"])
    scans: dict[str, dict] = {}
    while len(scans) < len(ids):
        # oldest first, and only up to the first still running: a GET or two a second, not one per scan
        for scan_id in [i for i in ids if i not in scans]:
            scan = client.get(f"/api/scans/{scan_id}").json()
            if scan["status"] not in FINAL:
                break
            scans[scan_id] = scan
        else:
            continue
        time.sleep(1)
    done = [scans[i] for i in ids]
    started = min(dt.datetime.fromisoformat(s["created_at"]) for s in done)
    ended = max(dt.datetime.fromisoformat(s["finished_at"] or s["created_at"]) for s in done)
    return (ended - started).total_seconds(), done


class Phase:
    """One run's figures."""

    def __init__(self, label: str, elapsed: float, scans: list[dict], sites: list[str], loads: tuple[str, str]):
        self.label, self.elapsed, self.scans, self.sites, self.loads = label, elapsed, scans, sites, loads
        self.per_site: dict[str, Counter] = defaultdict(Counter)
        for scan in scans:
            progress = {c["site"]: c for c in scan.get("progress") or []}
            for site in sites:
                outcome = (progress.get(site) or {}).get("outcome", "error")
                self.per_site[site]["ok" if outcome != "error" else "error"] += 1
        self.ok = sum(c["ok"] for c in self.per_site.values())
        self.ran = [seconds(s["started_at"], s["finished_at"]) for s in scans if s.get("started_at")]
        self.waited = [seconds(s["created_at"], s["finished_at"]) for s in scans if s.get("finished_at")]
        self.statuses = Counter(s["status"] for s in scans)
        self.cpu: Counter = Counter()

    @property
    def sites_per_second(self) -> float:
        return self.ok / self.elapsed

    @property
    def scans_per_minute(self) -> float:
        return len(self.scans) / self.elapsed * 60

    def report(self) -> None:
        total = len(self.scans) * len(self.sites)
        print(
            f"[{self.label}] {len(self.scans)} people x {len(self.sites)} sites in {self.elapsed:.1f} s: "
            f"{self.scans_per_minute:.1f} scans/min, {self.sites_per_second:.2f} sites/s; "
            f"statuses {dict(self.statuses)}"
        )
        print(
            f"[{self.label}] seconds per person (started to finished): p50 {pct(self.ran, 50):.1f}, "
            f"p95 {pct(self.ran, 95):.1f}; queued to finished: p50 {pct(self.waited, 50):.1f}, "
            f"p95 {pct(self.waited, 95):.1f}"
        )
        print(
            f"[{self.label}] sites succeeded {self.ok}/{total} ({self.ok / max(1, total):.0%}): "
            + ", ".join(f"{s} {c['ok'] / max(1, sum(c.values())):.0%}" for s, c in sorted(self.per_site.items()))
        )
        print(f"[{self.label}] {self.loads[0]} at start, {self.loads[1]} at end")
        if total_cpu := sum(self.cpu.values()):
            people, busy = max(1, len(self.scans)), total_cpu / (self.elapsed * (os.cpu_count() or 1))
            print(
                f"[{self.label}] CPU {total_cpu / people:.2f} s per person ({busy:.0%}"
                " of the machine's cores over the run): "
                + ", ".join(
                    f"{kind} {cpu / people:.2f} s ({cpu / total_cpu:.0%})" for kind, cpu in self.cpu.most_common()
                )
            )


def run_phase(label, env, client, persons, sites, args, logs: Path, profile: Path | None) -> Phase:
    with ExitStack() as stack:
        meter = stack.enter_context(CpuMeter(args.database))
        argv = [sys.executable, "-m", "crawler.worker"]
        workers = [
            stack.enter_context(child("worker", argv, env, logs / f"{label}-worker{n}.log"))
            for n in range(args.workers)
        ]
        spies = (
            [spy(worker.pid, profile / f"{label}-worker{n}.txt") for n, worker in enumerate(workers)] if profile else []
        )
        before = load()
        try:
            elapsed, scans = run_scans(client, persons, sites)
        finally:
            after = load()
            for process in spies:  # SIGINT: py-spy writes what it sampled and exits
                process.send_signal(signal.SIGINT)
            for process in spies:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
    phase = Phase(label, elapsed, scans, sites, (before, after))
    phase.cpu = meter.totals()
    return phase


def spy(pid: int, out: Path) -> subprocess.Popen:
    """py-spy on a worker and every crawl it starts from now on (collapsed stacks, idle excluded)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    argv = [exe, "record", "--pid", str(pid), "--subprocesses", "--format", "raw", "--rate", "25", "--nonblocking"]
    return subprocess.Popen([*argv, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def where_time_goes(profile: Path) -> None:
    """Samples by component, over every collapsed-stack file of the run (workers and their crawls)."""
    totals: Counter = Counter()
    leaves: Counter = Counter()
    for path in profile.glob("*.txt"):
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = stack.split(";")
            n = int(count)
            if frames and frames[0].startswith("process "):
                process = frames[0]
                frames = frames[1:]
            else:
                process = ""
            kind = "chromium/node" if "chrom" in process or "node" in process else None
            if kind is None:
                kind = next(
                    (
                        name
                        for frame in reversed(frames)
                        for name, marks in COMPONENTS
                        if any(mark in frame for mark in marks)
                    ),
                    "other python",
                )
            totals[kind] += n
            if frames:
                leaves[frames[-1][:110]] += n
    everything = sum(totals.values()) or 1
    print(f"profile ({everything} samples of the workers and their crawls, py-spy, idle excluded):")
    for kind, n in totals.most_common():
        print(f"  {n / everything:6.1%}  {kind}")
    print("  top leaf frames:")
    for frame, n in leaves.most_common(12):
        print(f"  {n / everything:6.1%}  {frame}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--on-people", type=int, default=10, help="people of the limits-on run (0: skip it)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="WORKER_CONCURRENCY of each worker")
    parser.add_argument("--sites", default=",".join(BROKERS))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--profile", type=Path, help="py-spy the workers and crawls; collapsed stacks here")
    args = parser.parse_args()
    sites = [s for s in args.sites.split(",") if s]
    persons = people(args.people + args.on_people, seed=args.seed)
    name, url = fresh_database("bench_scans")
    args.database = name
    redis_url = os.environ.get("REDIS_URL") or os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"
    prefix = f"bench-scans-{uuid.uuid4().hex[:8]}:"
    logs = Path(f"/tmp/bench-scans-{name}")
    logs.mkdir(parents=True, exist_ok=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(
        f"{args.people} people (seed {args.seed}) over {', '.join(sites)}; {args.workers} workers x "
        f"WORKER_CONCURRENCY {args.concurrency} on {os.cpu_count()} cores; {load()}"
    )
    phases: list[Phase] = []
    try:
        with running(["--free-ports", "--events-count", "1000"]) as urls, ExitStack() as stack:
            port = free_port()
            env = {
                **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
                "DATABASE_URL": url,
                "CRAWLER_ENCRYPTION_KEYS": "bench1:" + base64.b64encode(os.urandom(32)).decode(),
                "CRAWLER_BLIND_INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
                "SITES_BASE_URLS": ",".join(f"{s}={urls[s]}" for s in BROKERS),
                "DATA_DIR": str(logs / "data"),
                "API_HOST": "127.0.0.1",
                "API_PORT": str(port),
                "API_RATE_LIMIT_PER_MINUTE": "100000",
                "API_RATE_LIMIT_BURST": "10000",
                "WORKER_CONCURRENCY": str(args.concurrency),
                "LOG_LEVEL": "INFO",
            }
            key = create_key(env, "bench")
            client = stack.enter_context(
                httpx.Client(
                    base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60
                )
            )
            api = stack.enter_context(child("api", [sys.executable, "-m", "crawler.api"], env, logs / "api.log"))
            wait_listening(api, port, "the API", logs / "api.log")

            limits_off(urls, sites)
            off_env = {**env, "RATELIMIT_ENABLED": "false"}
            phases.append(run_phase("off", off_env, client, persons[: args.people], sites, args, logs, args.profile))
            if args.on_people:
                limits_on(urls, sites)
                on_env = {**env, "RATELIMIT_ENABLED": "true", "REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix}
                # one budget per site for every crawl, as in production; the shared scheduler closes a
                # crawl after 1 s idle (default 3 s), so what is measured is politeness
                on_env["SCHEDULER_IDLE_CLOSE_SECONDS"] = "1"
                phases.append(run_phase("on", on_env, client, persons[args.people :], sites, args, logs, None))
    finally:
        drop_database(name)
        if args.on_people:
            drop_redis_keys(redis_url, prefix)

    off = phases[0]
    print()
    off.report()
    print(
        f"anchor (Node/puppeteer, 40 real sites: {ANCHOR_SITES_PER_SECOND} sites/s, {ANCHOR_SECONDS_PER_PERSON} s "
        f"per person): sites/s x{off.sites_per_second / ANCHOR_SITES_PER_SECOND:.2f}, seconds per person p50 "
        f"x{pct(off.ran, 50) / ANCHOR_SECONDS_PER_PERSON:.2f} (lower is better; 5 sites here, not 40)"
    )
    print(
        f"goal (limits off): >= {GOAL_SITES_PER_SECOND} sites/s -> x{off.sites_per_second / GOAL_SITES_PER_SECOND:.2f}"
        f"; p95 < {GOAL_P95} s -> x{pct(off.ran, 95) / GOAL_P95:.2f}"
    )
    if len(phases) > 1:
        on = phases[1]
        print()
        print(
            f"limits on (the sandbox's default limits, ours on and shared through Redis; {len(on.scans)} people, "
            f"reduced from {len(off.scans)} to stay short):"
        )
        on.report()
        opened = sum(log.read_text(errors="replace").count(": opened") for log in logs.glob("on-worker*.log"))
        print(
            f"[on] the circuit breaker opened {opened} time(s) (per site: truepeople's interstitials, a cookie "
            "challenge that a retry passes, pause that site for CIRCUIT_RESET_SECONDS)"
        )
        print(
            f"what politeness costs: sites/s x{on.sites_per_second / off.sites_per_second:.2f}, "
            f"seconds per person p50 x{pct(on.ran, 50) / pct(off.ran, 50):.2f}, "
            f"p95 x{pct(on.ran, 95) / pct(off.ran, 95):.2f} (limits on / off)"
        )
    if args.profile:
        print()
        where_time_goes(args.profile)
    print(f"logs: {logs}")
    print(f"scans: {off.sites_per_second:.2f} sites/s; p95 {pct(off.ran, 95):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
