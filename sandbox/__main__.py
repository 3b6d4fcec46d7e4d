"""``python -m sandbox``: start the simulated services on 127.0.0.1 until SIGTERM/SIGINT.

Options: ``--<service>-port N`` (0 = any free port), ``--free-ports`` (every
service on a free port), ``--only a,b``, ``--ports-file PATH`` (JSON {service: URL},
written once every service listens, so scripts and tests can wait for it),
``--seed`` and ``--people`` for the population, ``--events-*`` for the events API
(sandbox/events/config.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import sandbox.llm  # registers the LLM test double
import sandbox.sites  # noqa: F401 - registers the services
from sandbox import mailroom
from sandbox.events import config as events_config
from sandbox.population import DEFAULT_SEED, DEFAULT_SIZE
from sandbox.server import SERVICES, PortInUse, start_services, stop_services


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    for service in SERVICES.values():
        parser.add_argument(
            f"--{service.name}-port",
            type=int,
            default=service.default_port,
            metavar="N",
            help=f"{service.description} (default {service.default_port})",
        )
    parser.add_argument("--free-ports", action="store_true", help="start every service on a free port (all ports 0)")
    parser.add_argument("--only", default="", help="comma-separated services to start (default: all)")
    parser.add_argument("--ports-file", type=Path, help="write {service: URL} as JSON here once all listen")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="population seed")
    parser.add_argument("--people", type=int, default=DEFAULT_SIZE, help="population size")
    parser.add_argument(
        "--maildir", type=Path, default=mailroom.DEFAULT_MAILDIR, help="the user's mailbox the sandbox delivers to"
    )
    events_config.add_arguments(parser)
    args = parser.parse_args(argv)
    unknown = set(filter(None, args.only.split(","))) - set(SERVICES)
    if unknown:
        parser.error(f"--only: unknown service(s) {', '.join(sorted(unknown))}")
    return args


def write_atomically(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


async def serve(args: argparse.Namespace) -> int:
    names = [n for n in SERVICES if not args.only or n in args.only.split(",")]
    ports = {name: 0 if args.free_ports else getattr(args, f"{name}_port") for name in names}
    options = {
        "seed": args.seed,
        "people": args.people,
        "maildir": str(args.maildir),
        **events_config.options_from_args(args),
    }
    mailroom.configure(options)
    # handlers first: a SIGTERM sent as soon as the ports file appears must stop us cleanly
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        urls, runners = await start_services(args.host, ports, options)
    except PortInUse as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    if args.ports_file:
        write_atomically(args.ports_file, urls)
    for name, url in urls.items():
        print(f"sandbox: {name:<10} {url}  (health: {url}/health)", flush=True)
    await stop.wait()
    await stop_services(runners)
    print("sandbox: stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
