"""``python -m crawler.healing``: the versions of site definitions that heals made, and the check command.

    python -m crawler.healing list [--site S] [--status active|quarantined|rejected|superseded]
    python -m crawler.healing diff ID [--yaml PATH]      # unified diff against the YAML it descends from
    python -m crawler.healing accept ID [--by NAME]      # quarantined -> active; held findings released
    python -m crawler.healing reject ID [--by NAME]      # -> rejected; held findings deleted
    python -m crawler.healing export ID [-o FILE]        # the version as YAML to commit (validated)
    python -m crawler.healing check SITE_OR_YAML --url URL [--url URL ...] [--kind list|detail] [--print] [--write]

Settings as for ``scrapy crawl`` (environment, or ``-s NAME=VALUE``): DATABASE_URL, the HEAL_* and OPENAI_*
settings. The database is checked as ``python -m crawler.db`` does (the embedded one is migrated; an
external one must be current). Errors are one line naming the input; exit 2 for bad input, 1 otherwise
(``check``: 1 also when a field stays broken).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path

import orjson
import psycopg

from crawler.cli import add_settings_option, project_settings
from crawler.config import ConfigError, validate
from crawler.db.pool import close_pools, get_pool
from crawler.extraction.definitions import DEFAULT_DIRECTORY, DefinitionError, load_definition, load_definition_text
from crawler.healing import versions
from crawler.healing.cli_check import InputError, as_yaml, check_command, ordered_like
from crawler.runtime import check_database

STATUSES = ("active", "quarantined", "rejected", "superseded")
TABLE = ("id", "site", "sha", "parent", "origin", "status", "confidence", "fields", "pages", "created")


def version_id(text: str) -> int:
    if not text.strip().isdigit():
        raise InputError(f"version {text!r}: expected a version number (see `list`)")
    return int(text)


def table(rows: list[versions.Version]) -> str:
    """The versions as a fixed-width table, newest first."""
    cells = [TABLE]
    for version in rows:
        s = version.summary()
        cells.append(
            (
                str(s["id"]),
                s["site"],
                s["sha256"],
                s["parent"],
                s["origin"],
                s["status"],
                f"{s['confidence']:.2f}",
                changed_fields(version.changes),
                str(s["pages"]),
                s["created_at"],
            )
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(TABLE))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def base_definition(version: versions.Version, yaml_path: str | None) -> tuple[dict, str]:
    """The YAML a version descends from: ``--yaml``, else spiders/sites/<site>.yaml; (raw, shown path)."""
    path = Path(yaml_path) if yaml_path else DEFAULT_DIRECTORY / f"{version.site}.yaml"
    try:
        definition = load_definition(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (pass the YAML this version descends from with --yaml)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except DefinitionError as exc:
        raise InputError(str(exc)) from None
    if definition.id != version.site:
        raise InputError(f"{path}: is site {definition.id!r}, version {version.id} is of {version.site!r}")
    if definition.sha256 != version.base_sha256:
        print(
            f"note: {path} is not the YAML version {version.id} descends from "
            f"(sha {definition.sha256[:12]}, the version's base {version.base_sha256[:12]}): "
            "the diff shows both changes",
            file=sys.stderr,
        )
    return definition.raw, str(path)


def exported_yaml(version: versions.Version) -> str:
    """The version as YAML, with a header saying where it came from; it must load as a site definition."""
    header = (
        f"# {version.site}: definition version {version.id} ({version.origin}, {version.status}, confidence "
        f"{version.confidence:.2f}, sha256 {version.sha256[:12]}, parent {version.parent_sha256[:12]}),\n"
        f"# exported by `python -m crawler.healing export {version.id}`. Changed: "
        f"{changed_fields(version.changes)}.\n"
    )
    text = header + as_yaml(ordered_like(version.definition, _yaml_order(version.site)))
    try:
        load_definition_text(text, f"{version.site}.yaml")
    except DefinitionError as exc:
        raise InputError(f"version {version.id}: does not load as a site definition: {exc}") from None
    return text


def _yaml_order(site: str) -> dict:
    """The site's YAML as a model of key order (jsonb does not keep it), or nothing."""
    try:
        return load_definition(DEFAULT_DIRECTORY / f"{site}.yaml").raw
    except (OSError, DefinitionError):
        return {}


def changed_fields(changes: dict) -> str:
    """``detail.fields.age`` ... as ``detail: age,phones``; ``list.items`` as ``list: cards``."""
    by_section: dict[str, list[str]] = {}
    for key in sorted(changes):
        section, _, rest = key.partition(".")
        by_section.setdefault(section, []).append("cards" if rest == "items" else rest.rpartition(".")[2])
    return " ".join(f"{section}:{','.join(names)}" for section, names in by_section.items()) or "-"


async def _versions_command(settings, args) -> int:
    pool = await get_pool(settings)
    async with pool.connection() as conn:
        if args.command == "list":
            rows = await versions.listing(conn, args.site, args.status)
            print(table(rows) if rows else "no versions", file=sys.stdout if rows else sys.stderr)
            return 0
        number = version_id(args.id)
        if args.command == "diff":
            version = await versions.get(conn, number)
            base, _path = base_definition(version, args.yaml)
            # base_url is where the site is served from here, not part of the heal
            base = _unshared(base)  # YAML anchors would show as differences from the version's copies
            healed = _unshared(ordered_like(_same_base(version, base), base))
            shown = versions.diff(versions.Version(**{**vars(version), "definition": healed}), base)
            sys.stdout.write(shown or f"version {number}: no difference from the YAML\n")
            return 0
        if args.command == "export":
            text = exported_yaml(await versions.get(conn, number))
            if args.output:
                try:
                    await asyncio.to_thread(Path(args.output).write_text, text, encoding="utf-8")
                except OSError as exc:
                    raise InputError(f"{args.output}: cannot write ({exc.strerror or exc})") from None
                print(f"version {number}: written to {args.output}", file=sys.stderr)
            else:
                sys.stdout.write(text)
            return 0
        by = args.by or getpass.getuser()
        if args.command == "accept":
            version, released = await versions.accept(conn, number, by)
            print(f"version {version.id} ({version.site}): active; {released} held finding(s) released into findings")
        else:
            version, deleted = await versions.reject(conn, number, by)
            print(f"version {version.id} ({version.site}): rejected; {deleted} held finding(s) deleted")
        return 0


def _unshared(raw: dict) -> dict:
    return orjson.loads(orjson.dumps(raw))


def _same_base(version: versions.Version, base: dict) -> dict:
    if "base_url" in base:
        return versions.with_base_url(version.definition, base["base_url"])
    return version.definition


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m crawler.healing", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the versions, newest first")
    listing.add_argument("--site", help="only this site's")
    listing.add_argument("--status", choices=STATUSES, help="only versions in this status")
    diff = commands.add_parser("diff", help="unified diff of a version against the YAML it descends from")
    diff.add_argument("id", help="the version number (see list)")
    diff.add_argument("--yaml", help="the YAML it descends from (default: spiders/sites/<site>.yaml)")
    for name, what in (("accept", "make it active; its held findings become findings"), ("reject", "reject it")):
        decide = commands.add_parser(name, help=what)
        decide.add_argument("id", help="the version number (see list)")
        decide.add_argument("--by", help="who decided (default: the login name)")
    export = commands.add_parser("export", help="the version as YAML to commit")
    export.add_argument("id", help="the version number (see list)")
    export.add_argument("-o", "--output", help="write to this file (default: stdout)")
    check = commands.add_parser("check", help="read pages with a site's current definition, report, learn, heal")
    check.add_argument("site", metavar="SITE_OR_YAML", help="a site id (spiders/sites/<id>.yaml) or a YAML file")
    check.add_argument("--url", action="append", required=True, help="a page to read (repeat for more pages)")
    check.add_argument("--kind", choices=("list", "detail"), help="the pages' kind (default: list if cards read)")
    check.add_argument("--print", action="store_true", help="print the whole (healed) definition as YAML on stdout")
    check.add_argument("--write", action="store_true", help="store a heal as a definition version")
    for sub in (listing, diff, export, check, *(commands.choices[n] for n in ("accept", "reject"))):
        add_settings_option(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    settings = project_settings(top, args.set)
    try:
        if args.command != "check":
            if args.command != "list":
                version_id(args.id)  # bad input before any connection
            validate(settings)
            check_database(settings)
            return asyncio.run(_run(_versions_command(settings, args)))
        return check_command(settings, args)
    except (InputError, versions.VersionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"error: DATABASE_URL: {args.command} failed ({type(exc).__name__})", file=sys.stderr)
        return 1


async def _run(work):
    try:
        return await work
    finally:
        await close_pools()


if __name__ == "__main__":
    sys.exit(main())
