"""The events API's settings: one table, read by the CLI and by ``POST /events/config``.

Tunables can change while the server runs, so one sandbox process can serve
tests that each need different behaviour; the data set's size, seed and the
API key are fixed at start. Every value is checked the same way from both
sides, and a bad one is refused with a message naming it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.events.generate import DEFAULT_COUNT

DEFAULT_KEY = "sandbox-key"
ID_FIELDS = ("id", "eventId", "event_id", "_id")
MAX_COUNT = 50_000_000  # about 10 GB of JSON: far beyond any useful run


@dataclass(frozen=True)
class Tunable:
    name: str
    default: Any
    kind: type  # int, float, str or bool
    check: Callable[[Any], bool]
    expected: str  # what a valid value is, for error messages
    help: str
    choices: tuple | None = None


def _rate(value: float) -> bool:
    return 0 <= value <= 1


TUNABLES = {
    t.name: t
    for t in [
        Tunable(
            "page_cap",
            5000,
            int,
            lambda v: v >= 1,
            "a whole number >= 1",
            "largest page; a bigger limit is silently capped to it",
        ),
        Tunable("cursor_ttl", 60.0, float, lambda v: v > 0, "a number of seconds > 0", "seconds a cursor stays valid"),
        Tunable(
            "expired_status",
            400,
            int,
            lambda v: v in (400, 410),
            "400 or 410",
            "status of an expired cursor",
            choices=(400, 410),
        ),
        Tunable(
            "rate_limit",
            600,
            int,
            lambda v: v >= 1,
            "a whole number >= 1",
            "requests per window for the X-API-Key header",
        ),
        Tunable(
            "query_rate_limit",
            None,
            int,
            lambda v: v >= 1,
            "a whole number >= 1 (or null: half of rate_limit)",
            "requests per window for the api_key query parameter, a pool of its own",
        ),
        Tunable(
            "rate_window",
            60.0,
            float,
            lambda v: v > 0,
            "a number of seconds > 0",
            "length of the fixed rate-limit window, in seconds",
        ),
        Tunable(
            "reset_style",
            "seconds",
            str,
            lambda v: v in ("seconds", "epoch"),
            "'seconds' or 'epoch'",
            "X-RateLimit-Reset as seconds remaining or as epoch seconds",
            choices=("seconds", "epoch"),
        ),
        Tunable(
            "fault_rate",
            0.0,
            float,
            _rate,
            "a fraction from 0 to 1",
            "share of requests answered 500/502/503 (JSON or HTML)",
        ),
        Tunable(
            "truncate_rate",
            0.0,
            float,
            _rate,
            "a fraction from 0 to 1",
            "share of 200 responses whose JSON body is cut short",
        ),
        Tunable(
            "duplicate_rate",
            0.0,
            float,
            _rate,
            "a fraction from 0 to 1",
            "share of pages that start by repeating 1-5 events of the previous page (at-least-once delivery)",
        ),
        Tunable(
            "id_field",
            "id",
            str,
            lambda v: v in ID_FIELDS,
            " or ".join(ID_FIELDS),
            "name of the events' id field",
            choices=ID_FIELDS,
        ),
        Tunable(
            "flat",
            False,
            bool,
            lambda v: True,
            "true or false",
            "serve the documented flat body {data, hasMore, nextCursor} instead of the nested one",
        ),
        Tunable(
            "no_range",
            False,
            bool,
            lambda v: True,
            "true or false",
            "silently ignore since/until, as some real APIs do",
        ),
    ]
}


def check(name: str, value: Any) -> Any:
    """``value`` for tunable ``name``, normalised; ValueError naming it when it is not acceptable."""
    tunable = TUNABLES.get(name)
    if tunable is None:
        raise ValueError(f"{name}: unknown setting (known: {', '.join(TUNABLES)})")
    if value is None and tunable.default is None:
        return None
    ok_type = isinstance(value, tunable.kind) and not (tunable.kind is not bool and isinstance(value, bool))
    if tunable.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok_type = float(value), True
    if not ok_type or not tunable.check(value):
        raise ValueError(f"{name}: expected {tunable.expected}, got {value!r}")
    return value


def defaults() -> dict[str, Any]:
    return {name: t.default for name, t in TUNABLES.items()}


def merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``current`` with ``changes`` applied, all checked; ValueError naming the first bad one."""
    if not isinstance(changes, dict):
        raise ValueError("body: expected a JSON object of settings")
    config = dict(current)
    for name, value in changes.items():
        config[name] = check(name, value)
    if config["fault_rate"] + config["truncate_rate"] > 1:
        raise ValueError("fault_rate: fault_rate + truncate_rate must not exceed 1")
    return config


def effective_query_limit(config: dict[str, Any]) -> int:
    return config["query_rate_limit"] or max(1, config["rate_limit"] // 2)


# ---- command line -------------------------------------------------------------------------------


def _cli_type(tunable: Tunable) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return check(tunable.name, tunable.kind(text))
        except ValueError as exc:
            message = str(exc).split(": ", 1)[1] if str(exc).startswith(tunable.name) else None
            raise argparse.ArgumentTypeError(message or f"expected {tunable.expected}, got {text!r}") from None

    convert.__name__ = tunable.kind.__name__
    return convert


def _count(text: str) -> int:
    if not (text.isascii() and text.isdecimal()) or not 1 <= int(text) <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_COUNT}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--events-*`` options of ``python -m sandbox``."""
    group = parser.add_argument_group("events API (service 'events'; each option is also POST /events/config)")
    group.add_argument(
        "--events-count",
        type=_count,
        default=DEFAULT_COUNT,
        metavar="N",
        help=f"events in the data set (default {DEFAULT_COUNT})",
    )
    group.add_argument("--events-seed", type=int, metavar="N", help="data set and fault seed (default: --seed)")
    group.add_argument("--events-key", default=DEFAULT_KEY, metavar="KEY", help=f"API key (default {DEFAULT_KEY})")
    for tunable in TUNABLES.values():
        flag = "--events-" + tunable.name.replace("_", "-")
        if tunable.kind is bool:
            group.add_argument(flag, action="store_true", help=tunable.help)
            continue
        shown = (
            "half of --events-rate-limit"
            if tunable.default is None
            else f"{tunable.default:g}"
            if tunable.kind is float
            else tunable.default
        )
        metavar = {int: "N", float: "SECONDS" if tunable.name.endswith(("ttl", "window")) else "FRACTION"}
        group.add_argument(
            flag,
            type=_cli_type(tunable),
            default=tunable.default,
            choices=tunable.choices,
            metavar=None if tunable.choices else metavar[tunable.kind],
            help=f"{tunable.help} (default {shown})",
        )


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed ``--events-*`` options as the ``events_*`` entries of the services' options dict."""
    names = ["count", "seed", "key", *TUNABLES]
    return {f"events_{name}": getattr(args, f"events_{name}") for name in names}
