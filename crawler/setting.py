"""Declared settings: what a component reads, with its type, default, range and one-line doc.

Each component group declares its settings in a ``settings_spec`` module beside its
code (``middlewares/settings_spec.py`` for the downloader middlewares, ...), listed in
``crawler.settings_registry``. From those declarations ``crawler.settings`` reads
every value from the environment, ``crawler.config`` validates them, and the README's
settings tables are generated. This module imports nothing from the project, so any
layer may use it without an import cycle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
FALSE_VALUES = frozenset({"0", "false", "no", "off", ""})
# str: any text (a check or choices may narrow it); url: empty or http(s)://...;
# fraction: a number strictly between 0 and 1.
KINDS = ("str", "int", "number", "fraction", "bool", "url")


class ConfigError(Exception):
    """A bad setting: ``str(error)`` is the one line shown to the user."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def flag(settings, name: str) -> bool:
    """A boolean setting that accepts true/false, yes/no, on/off, 1/0."""
    return str(settings.get(name)).strip().lower() in TRUE_VALUES


def redact_url(url: str) -> str:
    """The URL without its password, safe to show in an error or a log line."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if not parts.password:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Setting:
    """One setting: a Scrapy setting of this name, read from the environment variable of
    the same name (``crawler.settings``), validated at start (``crawler.config``).

    ``default`` is the raw environment text ("" = empty). Bounds: ``min``/``max``
    inclusive, ``above``/``below`` exclusive. ``check(value)`` raises ValueError with a
    reason (never the value of a secret) for what the kind and bounds cannot say;
    ``at_most`` names a numeric setting this one must not exceed. ``shown_default``
    and ``accepts`` replace the default and range in the README when a literal would
    mislead (a derived default, a format).
    """

    name: str
    kind: str
    default: str
    doc: str
    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple[str, ...] = ()
    check: Callable[[str], None] | None = None
    at_most: str = ""
    shown_default: str = ""
    accepts: str = ""
    secret: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")
        if self.kind == "fraction":
            object.__setattr__(self, "above", 0.0 if self.above is None else self.above)
            object.__setattr__(self, "below", 1.0 if self.below is None else self.below)

    # -- validation ------------------------------------------------------------------------------
    def validate(self, raw) -> None:
        """Raise ConfigError (naming the setting, one line) when ``raw`` is not acceptable."""
        text = "" if raw is None else str(raw).strip()
        shown = "<hidden>" if self.secret else repr(raw)
        if self.kind == "bool":
            if text.lower() not in TRUE_VALUES | FALSE_VALUES:
                raise ConfigError(self.name, f"expected true or false, got {shown}")
        elif self.kind in ("int", "number", "fraction"):
            value = self._parse_number(text, shown)
            if not self._in_range(value):
                raise ConfigError(self.name, f"must be {self.range_phrase()}, got {shown}")
        elif self.kind == "url" and text:
            parts = urlsplit(text)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(self.name, f"expected an http(s):// URL, got {redact_url(text)!r}")
        if self.choices and text not in self.choices:
            raise ConfigError(self.name, f"expected one of {', '.join(self.choices)}, got {shown}")
        if self.check is not None:
            try:
                self.check(raw)
            except ValueError as exc:
                raise ConfigError(self.name, str(exc)) from None

    def _parse_number(self, text: str, shown: str) -> float:
        try:
            value = int(text) if self.kind == "int" else float(text)
        except ValueError:
            kind = "an integer" if self.kind == "int" else "a number"
            raise ConfigError(self.name, f"expected {kind}, got {shown}") from None
        if not math.isfinite(value):
            raise ConfigError(self.name, f"expected a finite number, got {shown}")
        return value

    def _in_range(self, value: float) -> bool:
        return (
            (self.min is None or value >= self.min)
            and (self.max is None or value <= self.max)
            and (self.above is None or value > self.above)
            and (self.below is None or value < self.below)
        )

    def range_phrase(self) -> str:
        """The bounds in words: "positive", ">= 0", "between 0 and 1 (exclusive)"..."""
        if self.above == 0 and self.below is None and self.max is None:
            return "positive"
        if self.above is not None and self.below is not None:
            return f"between {_number_text(self.above)} and {_number_text(self.below)} (exclusive)"
        parts = []
        if self.min is not None:
            parts.append(f">= {_number_text(self.min)}")
        if self.above is not None:
            parts.append(f"> {_number_text(self.above)}")
        if self.max is not None:
            parts.append(f"<= {_number_text(self.max)}")
        if self.below is not None:
            parts.append(f"< {_number_text(self.below)}")
        return " and ".join(parts) or "any value"

    # -- documentation ---------------------------------------------------------------------------
    def range_text(self) -> str:
        """What the README's range column says."""
        if self.accepts:
            return self.accepts
        if self.choices:
            return ", ".join(f"`{choice}`" for choice in self.choices)
        if self.kind == "bool":
            return "true / false"
        if self.kind == "url":
            return "http(s) URL or empty"
        if self.kind in ("int", "number", "fraction"):
            noun = "integer" if self.kind == "int" else "number"
            if self.above is not None and self.below is not None:
                bounds = f"{_number_text(self.above)} < x < {_number_text(self.below)}"
            else:
                bounds = self.range_phrase().replace("positive", "> 0")
            text = noun if bounds == "any value" else f"{noun} {bounds}"
            return f"{text}, <= `{self.at_most}`" if self.at_most else text
        return "text"

    def default_text(self) -> str:
        """What the README's default column says."""
        if self.shown_default:
            return self.shown_default
        return f"`{self.default}`" if self.default else "empty"


@dataclass(frozen=True)
class Component:
    """The settings one component (or a small family of them) reads: one README table."""

    title: str
    module: str  # where the code reading them lives, e.g. "middlewares/rate_limit.py"
    settings: tuple[Setting, ...]
