"""Matching bench: precision and recall of accepted listings against the sandbox ground truth.

    .venv/bin/python bench/matching.py [--seed S] [--targets N] [--concurrency K] [--contact] [--offline]

Picks N random people of the sandbox population (seed S) as targets. The query is what a
user gives: first and last name, current city and state, and age; no e-mail or phone
(the privacy rule: search with the least personal data; ``--contact`` adds both). Each
target is scanned for real over all five broker sites with the ``scan`` spider (K scans at
once in this process, screenshots off, sandbox rate limits turned off through each site's
``POST /_sandbox/config`` and our own rate limiter off, said in the output), and every
candidate's accept/reject decision (the ``found_data`` / ``candidate_rejected`` signals) is
checked against ``sandbox.population.ground_truth``. Without the scan spider, or with
``--offline``, the same targets go through the offline evaluator (the sites' searches and
formats without HTTP, ``tools/evaluate_matching.py``).

Baseline, measured on the same candidates: a name-only matcher (accepts every candidate
whose name agrees, nicknames and typos included), i.e. what matching on the name alone gives.
Ends with ``precision P recall R`` (goal: P >= 0.98, R >= 0.95).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.matching.names import compare_names  # noqa: E402
from crawler.matching.scorer import Target  # noqa: E402
from tools.evaluate_matching import Outcome, Sites, pick_targets, scored, target_query  # noqa: E402

DEFAULT_SEED = 20261125
SITES = ("fastpeople", "truepeople", "spa", "radaris", "thatsthem")
SANDBOX_OFF = {  # per site: the settings that turn its rate limits off (interstitials stay)
    "fastpeople": {"rate_limit_per_minute": 0},
    "truepeople": {"rate_limit_per_minute": 0, "burst_limit": 0},
    "spa": {"rate_limit_per_minute": 0},
    "radaris": {"rate_limit_per_minute": 0},
    "thatsthem": {"rate_limit_per_minute": 0},
}


def name_agrees(target: Target, full_name: str, aliases) -> bool:
    return compare_names(target.first, target.middle, target.last, full_name, list(aliases)).level != "disagree"


def tally(outcome: Outcome, accepted: bool, correct: bool) -> None:
    outcome.candidates += 1
    if accepted:
        outcome.true_positive += correct
        outcome.false_positive += not correct
    elif correct:
        outcome.false_negative += 1


def offline(seed: int, count: int, threshold: float, contact: bool) -> tuple[Outcome, Outcome]:
    sites = Sites()
    matcher_outcome, baseline = Outcome(), Outcome()
    for person, candidate, levels, confidence in scored(sites, seed, count, contact):
        correct = candidate.id == person.id
        tally(matcher_outcome, confidence >= threshold, correct)
        tally(baseline, levels["name"] != "disagree", correct)
    return matcher_outcome, baseline


def sandbox_off(urls: dict[str, str]) -> None:
    for site, changes in SANDBOX_OFF.items():
        request = urllib.request.Request(
            f"{urls[site]}/_sandbox/config",
            data=json.dumps(changes).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


def real(seed: int, count: int, threshold: float, contact: bool, concurrency: int, admin_url: str):
    """Real scans in this process; returns (matcher outcome, baseline outcome, seconds, sites missed)."""
    import psycopg
    from scrapy.crawler import AsyncCrawlerRunner
    from scrapy.utils.project import get_project_settings
    from scrapy.utils.reactor import install_reactor

    from crawler import signals as project_signals
    from crawler.db.migrate import connect, migrate
    from crawler.db.pool import close_pools
    from sandbox.launch import running
    from sandbox.population import default_population, ground_truth

    install_reactor("twisted.internet.asyncioreactor.AsyncioSelectorReactor")
    from twisted.internet import defer, reactor

    population = default_population()
    targets = pick_targets(population, seed, count)
    name = f"bench_matching_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = admin_url.rpartition("/")[0] + f"/{name}"
    decisions: dict[str, list[tuple[str, str, bool, str, list]]] = {}  # scan id -> (site, path, accepted, ...)
    try:
        with connect(database_url) as conn:
            migrate(conn)
        with running(["--free-ports", "--only", ",".join(SITES)], timeout=60) as urls:
            sandbox_off(urls)
            settings = get_project_settings()
            settings.setdict(
                {
                    "DATABASE_URL": database_url,
                    "REDIS_URL": "",
                    "MATCH_THRESHOLD": threshold,
                    "SITES_BASE_URLS": ",".join(f"{s}={urls[s]}" for s in SITES),
                    "SCREENSHOTS_ENABLED": "false",
                    "RATELIMIT_ENABLED": "false",
                    "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "ERROR"),
                    "DATA_DIR": str(ROOT / ".data" / name),
                    # the crawls of this process share one database pool: closed once, after the last crawl
                    "EXTENSIONS": {**settings.getdict("EXTENSIONS"), "crawler.db.pool.PoolCloser": None},
                },
                priority="cmdline",
            )
            runner = AsyncCrawlerRunner(settings)
            limit = asyncio.Semaphore(concurrency)

            async def scan(person):
                query = target_query(person, contact)
                scan_id = str(uuid.uuid4())
                seen = decisions[scan_id] = []
                crawler = runner.create_crawler("scan")

                def found(scan_id, site, listing, confidence, accepted=True, seen=seen):
                    seen.append(
                        (site, urlsplit(listing.listing_url).path, accepted, listing.full_name, list(listing.aliases))
                    )

                def rejected(scan_id, site, listing, confidence, seen=seen):
                    found(scan_id, site, listing, confidence, accepted=False)

                crawler.signals.connect(found, signal=project_signals.found_data, weak=False)
                crawler.signals.connect(rejected, signal=project_signals.candidate_rejected, weak=False)
                kwargs = {k: str(v) for k, v in query.as_dict().items()}
                async with limit:
                    await runner.crawl(crawler, scan_id=scan_id, **kwargs)
                return person, scan_id, query

            async def scan_all():
                try:
                    return await asyncio.gather(*(scan(p) for p in targets))
                finally:
                    await close_pools()

            started = time.perf_counter()
            results = []
            finished = defer.Deferred.fromFuture(asyncio.ensure_future(scan_all()))
            finished.addCallback(results.extend)
            finished.addErrback(results.append)
            finished.addBoth(lambda _: reactor.stop())
            reactor.run()
            seconds = time.perf_counter() - started
            if results and not isinstance(results[0], tuple):
                results[0].raiseException()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    matcher_outcome, baseline, missed = Outcome(), Outcome(), 0
    for person, scan_id, query in results:
        truth = ground_truth(person)
        target = Target.from_query(query)
        accepted_paths = set()
        for site, path, accepted, full_name, aliases in decisions[scan_id]:
            correct = truth.get(site) == path
            tally(matcher_outcome, accepted, correct)
            tally(baseline, name_agrees(target, full_name, aliases), correct)
            if accepted and correct:
                accepted_paths.add((site, path))
        for site, path in truth.items():  # listed but never seen as a candidate: a miss of both
            if (site, path) not in {(s, p) for s, p, *_ in decisions[scan_id]}:
                matcher_outcome.false_negative += 1
                baseline.false_negative += 1
                missed += 1
    return matcher_outcome, baseline, seconds, missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8, help="scans at once")
    parser.add_argument("--threshold", type=float, help="default: the MATCH_THRESHOLD setting")
    parser.add_argument("--contact", action="store_true", help="the query also gives the target's e-mail and phone")
    parser.add_argument("--offline", action="store_true", help="the offline evaluator instead of real scans")
    parser.add_argument(
        "--admin-url", default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = parser.parse_args()
    from crawler import settings as project_settings

    threshold = args.threshold if args.threshold is not None else float(project_settings.MATCH_THRESHOLD)
    has_scan = importlib.util.find_spec("spiders.scan") is not None
    query = "name, current city and state, age" + (", e-mail, phone" if args.contact else "")
    print(f"{args.targets} targets (seed {args.seed}); query: {query}; threshold {threshold}")
    if args.offline or not has_scan:
        reason = "--offline" if args.offline else "the scan spider (spiders/scan.py) is not available"
        print(f"offline evaluator ({reason}): the sites' searches and formats without HTTP")
        outcome, baseline = offline(args.seed, args.targets, threshold, args.contact)
    else:
        print(
            "real scans over all five sites; sandbox rate limits turned off via POST /_sandbox/config, "
            "our rate limiter off (RATELIMIT_ENABLED=false), screenshots off"
        )
        outcome, baseline, seconds, missed = real(
            args.seed, args.targets, threshold, args.contact, args.concurrency, args.admin_url
        )
        print(
            f"{args.targets} scans in {seconds:.0f}s ({args.concurrency} at once); "
            f"{missed} listed page(s) never reached as candidates"
        )
    print(
        f"candidates {outcome.candidates}: accepted {outcome.true_positive + outcome.false_positive} "
        f"(wrong {outcome.false_positive}), target listings missed {outcome.false_negative}"
    )
    print(f"baseline name-only matcher: precision {baseline.precision:.4f} recall {baseline.recall:.4f}")
    print(
        f"ratio to baseline: precision x{outcome.precision / max(baseline.precision, 1e-9):.2f}, "
        f"recall x{outcome.recall / max(baseline.recall, 1e-9):.2f}"
    )
    print(f"precision {outcome.precision:.4f} recall {outcome.recall:.4f}")


if __name__ == "__main__":
    main()
