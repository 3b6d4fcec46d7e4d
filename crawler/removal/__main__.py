"""``python -m crawler.removal``: removal requests from the command line.

    python -m crawler.removal request --finding ID     # the listing's one removal request (idempotent)
    python -m crawler.removal list [--status S] [--user NAME]
    python -m crawler.removal tasks [--user NAME]      # open human tasks: what to do, where
    python -m crawler.removal done TASK [--user NAME]  # the task is done: the flow resumes

A request is owned by the owner of the scan that found the listing (an API user, or nobody for a
scan run with ``scrapy crawl scan``); ``list``, ``tasks`` and ``done`` show and act on one owner's:
``--user`` (default: scans without an owner). Creating a request or finishing a task queues the
optout crawl for the worker (``python -m crawler.worker``). Lines name ids, sites, statuses and the
site's task texts, never a listing URL or the person. Exit codes: 0 done, 1 bad settings or
database, 2 no such finding / task (one line on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import psycopg

from crawler.cli import add_settings_option, project_settings
from crawler.config import ConfigError, validate
from crawler.db.pool import close_pools
from crawler.runtime import check_database
from crawler.store import removal_flow, removal_views, removals
from crawler.worker.removal_jobs import defer_optout

NOT_FOUND = 2


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S%z") if value is not None else "-"


def fail(message: str, code: int = NOT_FOUND) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


async def request_command(settings, args) -> int:
    request = await removals.request_removal_by_finding(settings, args.finding)
    if request is None:
        return fail(f"--finding {args.finding}: no such finding")
    queued = await defer_optout(settings)
    print(f"removal request {request.id}: {request.status} ({request.website_id}, attempt {request.attempt})")
    print("optout crawl queued" if queued else "optout crawl already queued", file=sys.stderr)
    return 0


async def list_command(settings, args) -> int:
    views = await removal_views.list_removals(settings, args.user, args.limit, args.status)
    print(f"{'id':>6}  {'site':12}  {'status':22}  {'attempt':>7}  {'updated':24}  {'task':>6}  reason")
    for v in views:
        task = str(v.task.id) if v.task else "-"
        print(
            f"{v.id:>6}  {v.site:12}  {v.status:22}  {v.attempt:>7}  {_when(v.updated_at):24}  {task:>6}  "
            f"{v.reason or ''}"
        )
    return 0


async def tasks_command(settings, args) -> int:
    tasks = await removal_views.list_tasks(settings, args.user, open_only=True)
    for task in tasks:
        site = task.request.site if task.request else "?"
        print(f"task {task.id} (removal {task.request_id}, {site}, {task.kind}): {task.instructions}")
        if task.url:
            print(f"    where: {task.url}")
    if not tasks:
        print("no open tasks", file=sys.stderr)
    return 0


async def done_command(settings, args) -> int:
    if not await removal_flow.complete_task(settings, args.user, args.task, done_by="cli"):
        return fail(f"task {args.task}: no such open task" + (f" of {args.user}" if args.user else ""))
    await defer_optout(settings)
    print(f"task {args.task} done: the removal goes on")
    return 0


COMMANDS = {"request": request_command, "list": list_command, "tasks": tasks_command, "done": done_command}


def positive(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m crawler.removal", description=__doc__.splitlines()[0])
    add_settings_option(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    request = commands.add_parser("request", help="request the removal of a finding's listing")
    request.add_argument("--finding", type=positive, required=True, metavar="ID")
    listing = commands.add_parser("list", help="removal requests, newest first")
    listing.add_argument("--status", choices=removals.STATUSES)
    listing.add_argument("--limit", type=positive, default=100)
    listing.add_argument("--user", default=None, help="the owner (default: scans without one)")
    tasks = commands.add_parser("tasks", help="open human tasks")
    tasks.add_argument("--user", default=None)
    done = commands.add_parser("done", help="mark a task done (the flow resumes)")
    done.add_argument("task", type=positive, metavar="TASK")
    done.add_argument("--user", default=None)
    return parser


async def run(settings, args) -> int:
    try:
        return await COMMANDS[args.command](settings, args)
    finally:
        await close_pools()


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    settings = project_settings(cli, args.set)
    try:
        validate(settings)
        check_database(settings)
    except ConfigError as exc:
        return fail(str(exc), 1)
    try:
        return asyncio.run(run(settings, args))
    except (OSError, psycopg.Error) as exc:  # the database went away mid-command
        return fail(f"database error ({type(exc).__name__})", 1)


if __name__ == "__main__":
    sys.exit(main())
