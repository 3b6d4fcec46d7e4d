"""Shared plumbing of the project's small CLIs (python -m crawler.db, crawler.security)."""

from __future__ import annotations

import argparse

from scrapy.utils.project import get_project_settings


def add_settings_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--set", action="append", default=[], metavar="NAME=VALUE", help="override a setting")


def project_settings(parser: argparse.ArgumentParser, assignments: list[str]):
    """Project settings (environment included) with ``-s NAME=VALUE`` overrides, like scrapy's."""
    settings = get_project_settings()
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep:
            parser.error(f"-s {assignment!r}: expected NAME=VALUE")
        settings.set(name, value, priority="cmdline")
    return settings
