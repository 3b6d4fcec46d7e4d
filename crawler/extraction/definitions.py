"""Loading and validating site definitions (``spiders/sites/*.yaml``).

Errors name the file, the key path and the reason in one line, e.g.
``spiders/sites/fastpeople.yaml: detail.fields.age.css: expected a string``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from crawler.extraction.filters import check_filter
from crawler.extraction.schema import OPT_OUT_FIELDS, OPT_OUT_TASK_FIELDS, SCHEMA
from crawler.extraction.templates import PLACEHOLDER, TEMPLATE_FILTERS, check_template
from crawler.notation import NotationError, parse_mapping, parse_pattern

DEFAULT_DIRECTORY = Path(__file__).resolve().parents[2] / "spiders" / "sites"
TYPE_NAMES = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
}
_validator = jsonschema.Draft202012Validator(SCHEMA)


class DefinitionError(ValueError):
    """``str(error)`` is the one line to show: file: key.path: reason."""


@dataclass(frozen=True)
class SiteDefinition:
    id: str
    name: str
    base_url: str
    enabled: bool
    render: str
    raw: dict = field(repr=False, compare=False, hash=False)
    sha256: str = ""
    path: str = ""

    @property
    def requests_per_minute(self) -> float:
        return float(self.raw.get("politeness", {}).get("requests_per_minute", 30))

    @property
    def concurrency(self) -> int:
        return int(self.raw.get("politeness", {}).get("concurrency", 1))

    @property
    def retry_times(self) -> int | None:
        return self.raw.get("politeness", {}).get("retry_times")

    @property
    def blocks(self) -> dict[str, list[str]]:
        return self.raw.get("blocks") or {}

    @property
    def opt_out(self) -> dict | None:
        """The opt-out information, its ``url`` absolute (a relative one is joined to this base_url)."""
        opt_out = self.raw.get("opt_out")
        if opt_out and opt_out.get("url", "").startswith("/"):
            return {**opt_out, "url": self.base_url + opt_out["url"]}
        return opt_out

    def with_base_url(self, base_url: str) -> SiteDefinition:
        """The same definition served from another address (tests, staging)."""
        from dataclasses import replace

        return replace(self, base_url=base_url.rstrip("/"))


# a location path that starts at the root: at the start, or after "(", "|", ",", "[" or a comparison
# (string literals removed first, so a "/" inside quotes does not count)
_ROOT_PATH = re.compile(r"(?:^|[(|,\[=<>])\s*/")
_XPATH_STRING = re.compile(r"\"[^\"]*\"|'[^']*'")


def reads_page_root(xpath: str) -> bool:
    """Whether any path of an XPath expression (unions and function arguments included) starts at the
    page root rather than at the context node."""
    return bool(_ROOT_PATH.search(_XPATH_STRING.sub("''", xpath.strip())))


def _where(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _reason(error: jsonschema.ValidationError) -> str:
    validator = error.validator
    if validator == "type":
        expected = error.validator_value
        names = [TYPE_NAMES.get(t, t) for t in (expected if isinstance(expected, list) else [expected])]
        return f"expected {' or '.join(names)}"
    if validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"missing required key {missing!r}"
    if validator == "additionalProperties":
        extra = re.findall(r"'([^']+)'", error.message)
        return f"unknown key {extra[0]!r}" if extra else "unknown key"
    if validator == "enum":
        return f"expected one of {', '.join(map(str, error.validator_value))}"
    if validator == "pattern":
        return f"does not match {error.validator_value}"
    if validator == "minItems" and error.validator_value > 1:
        return f"expected at least {error.validator_value} items"
    if validator in ("minItems", "minProperties"):
        return "must not be empty"
    if validator == "maxProperties":
        return "expected exactly one key"
    return error.message


def _best_error(errors) -> jsonschema.ValidationError:
    """The deepest error: in a ``oneOf`` (short or long form), the branch that got furthest."""

    def flatten(error):
        if error.context:
            for sub in error.context:
                yield from flatten(sub)
        else:
            yield error

    candidates = [e for error in errors for e in flatten(error)]
    # prefer errors of the mapping form (deeper paths), then not "type" errors at the same depth
    return max(candidates, key=lambda e: (len(e.absolute_path), e.validator not in ("type", "oneOf", "anyOf")))


def _semantic_errors(raw: dict, stem: str):
    if raw.get("id") != stem:
        yield "id", f"must equal the file name {stem!r}"
    listing = raw.get("list", {})
    if listing.get("follow", True) and "url" not in listing.get("fields", {}):
        yield "list.fields", "missing required key 'url' (the listing URL of each candidate)"
    fetch = listing.get("fetch")
    if fetch and fetch["from"] not in listing.get("fields", {}):
        yield "list.fetch.from", f"no list field named {fetch['from']!r}"

    for i, entry in enumerate(raw.get("search", ())):
        for where, url in (("url", entry.get("url")), ("form.page", (entry.get("form") or {}).get("page"))):
            if url and not url.startswith("/"):
                yield f"search.{i}.{where}", "must start with '/' (a path joined to base_url)"
        templates = [("url", entry.get("url"))] + [(f"params.{k}", v) for k, v in (entry.get("params") or {}).items()]
        form = entry.get("form") or {}
        templates += [("form.page", form.get("page"))] + [
            (f"form.fields.{k}", v) for k, v in form.get("fields", {}).items()
        ]
        for where, template in templates:
            if template and (reason := check_template(template)):
                yield f"search.{i}.{where}", reason
    next_page = listing.get("next_page") or {}
    if next_page.get("template") and (reason := check_template(next_page["template"], ("value", "page"))):
        yield "list.next_page.template", reason
    if fetch and (reason := check_template(fetch["template"], ("value",))):
        yield "list.fetch.template", reason

    def walk(node, path, in_card=False):
        if isinstance(node, dict):
            for i, spec in enumerate(node.get("filters", ()) or ()):
                if reason := check_filter(spec):
                    yield f"{path}.filters.{i}", reason
            for key in ("any", "all", "join"):
                for i, sub in enumerate(node.get(key, ()) or ()):
                    yield from walk(sub, f"{path}.{key}.{i}", in_card)
            if "sep" in node and not {"css", "xpath", "join"} & node.keys():
                yield f"{path}.sep", "applies only with css, xpath or join"
            if in_card and "xpath" in node and reads_page_root(node["xpath"]):
                # an absolute path reads the whole page, the same value for every card
                yield f"{path}.xpath", "starts at the page root: use './/' to search inside the card"
            for key in ("regex",):
                if key in node:
                    try:
                        re.compile(node[key])
                    except re.error as exc:
                        yield f"{path}.{key}", f"invalid regex: {exc}"

    for section in ("list", "detail"):
        for name, spec in raw.get(section, {}).get("fields", {}).items():
            yield from walk(spec, f"{section}.fields.{name}", in_card=section == "list")

    # /regex/ markers and block signatures: a broken regex fails here, not on the first page
    markers = {
        "list.no_results": listing.get("no_results"),
        "list.next_page.last": (listing.get("next_page") or {}).get("last"),
        "detail.not_found": raw.get("detail", {}).get("not_found"),
    }
    patterns = [
        (f"{where}.{i}.text" if isinstance(marker, list) else f"{where}.text", one["text"])
        for where, marker in markers.items()
        if marker
        for i, one in enumerate(marker if isinstance(marker, list) else [marker])
        if "text" in one
    ]
    patterns += [
        (f"blocks.{kind}.{i}", signature)
        for kind, signatures in (raw.get("blocks") or {}).items()
        for i, signature in enumerate(signatures)
    ]
    for where, pattern in patterns:
        try:
            parse_pattern(pattern)
        except NotationError as exc:
            yield where, str(exc)

    opt_out_url = (raw.get("opt_out") or {}).get("url", "")
    if opt_out_url and not re.match(r"(/(?!/)|https?://[^\s/]+)", opt_out_url):
        yield "opt_out.url", "expected a path starting with '/' (relative to base_url) or an http(s):// URL"
    yield from _opt_out_errors(raw.get("opt_out") or {}, raw.get("render", "http"))


def _opt_out_template(template: str, allowed: tuple[str, ...]) -> str | None:
    for match in PLACEHOLDER.finditer(template):
        if match.group(1) not in allowed:
            return f"unknown template field {match.group(1)!r} (known here: {', '.join(allowed)})"
        for f in (f for f in match.group(2).split("|") if f):
            if f not in TEMPLATE_FILTERS:
                return f"unknown template filter {f!r} (known: {', '.join(TEMPLATE_FILTERS)})"
    return None


def _marker_patterns(marker, where: str):
    """(where, text) of a marker's /regex/ or substring texts."""
    if not marker:
        return
    many = isinstance(marker, list)
    for i, one in enumerate(marker if many else [marker]):
        if "text" in one:
            yield (f"{where}.{i}.text" if many else f"{where}.text"), one["text"]


def _opt_out_errors(opt_out: dict, site_render: str):
    """The opt-out flow's semantic checks (the schema checked its shape): templates, the order of
    steps, one submission per flow, an address for an e-mail confirmation."""
    render = opt_out.get("render", site_render)
    page, submissions, gives_email, submitted = False, 0, False, False
    texts = list(_marker_patterns(opt_out.get("captcha"), "opt_out.captcha"))
    steps = opt_out.get("steps") or ()
    for i, step in enumerate(steps):
        ((kind, spec),) = step.items()
        where = f"opt_out.steps.{i}.{kind}"
        templates: list[tuple[str, str]] = []
        if kind == "navigate":
            spec = {"url": spec} if isinstance(spec, str) else spec
            templates += [(where if isinstance(step[kind], str) else f"{where}.url", spec["url"])]
            if moved := spec.get("moved"):
                templates += [(f"{where}.moved.page", moved["page"])]
            for at, url in templates:
                if not re.match(r"(/(?!/)|https?://|\{)", url):
                    yield at, "expected a path starting with '/', an http(s):// URL or a template such as {opt_out_url}"
            page = True
        elif kind in ("fill", "click", "submit", "expect") and not page:
            yield where, "needs a page: put a navigate step before it"
        if kind == "fill":
            templates += [(f"{where}.{name}", value) for name, value in spec.items()]
            gives_email = gives_email or any("{email" in value for value in spec.values())
            if render == "http" and not any("submit" in later for later in steps[i + 1 :]):
                yield where, "an http flow fills a form for a submit: no submit step after it"
        elif kind in ("click", "submit"):
            templates += [(f"{where}.{name}", value) for name, value in spec.items()]
        elif kind == "expect":
            for one_where, one in (
                [(f"{where}.{n}", m) for n, m in enumerate(spec)] if isinstance(spec, list) else [(where, spec)]
            ):
                templates += [(f"{one_where}.{name}", value) for name, value in one.items()]
            texts += list(_marker_patterns(spec, where))
        elif kind == "send_email":
            templates += [(f"{where}.{name}", spec[name]) for name in ("to", "subject", "body")]
            gives_email = gives_email or "{email" in spec["body"] + spec["subject"]
        elif kind == "human":
            for name in ("url", "instructions"):
                if name in spec and (reason := _opt_out_template(spec[name], OPT_OUT_TASK_FIELDS)):
                    yield f"{where}.{name}", reason + ": a task never carries personal data"
        elif kind == "email_confirmation":
            if not submitted:
                yield where, "must follow the submission (a submit or send_email step) that makes the broker write"
            elif not gives_email:
                yield where, "no earlier step gives the broker the address {email} the confirmation is sent to"
        if kind in ("submit", "send_email"):
            submissions += 1
            submitted = True
            if submissions > 1:
                yield where, "a flow makes one submission (sent exactly once): a second submit/send_email step"
        for at, template in templates:
            if reason := _opt_out_template(template, OPT_OUT_FIELDS):
                yield at, reason
    for where, pattern in texts:
        try:
            parse_pattern(pattern)
        except NotationError as exc:
            yield where, str(exc)


def validate(raw: Any, source: str) -> None:
    """Raise DefinitionError naming ``source``, the key path and the reason."""
    if not isinstance(raw, dict):
        raise DefinitionError(f"{source}: (top level): expected a mapping")
    errors = list(_validator.iter_errors(raw))
    if errors:
        error = _best_error(errors)
        raise DefinitionError(f"{source}: {_where(error.absolute_path)}: {_reason(error)}")
    for where, reason in _semantic_errors(raw, Path(source).stem):
        raise DefinitionError(f"{source}: {where}: {reason}")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_definition(path) -> SiteDefinition:
    path = Path(path)
    return load_definition_text(path.read_bytes(), _display(path))


def load_definition_text(text: bytes | str, source: str) -> SiteDefinition:
    """A definition from its YAML text; ``source`` names it in errors (a path, or a name inside an egg)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(top level)"
        raise DefinitionError(f"{source}: {where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    validate(raw, source)
    # the digest is of the parsed content, so comments and layout do not count as changes
    sha256 = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
    return SiteDefinition(
        id=raw["id"],
        name=raw["name"],
        base_url=raw["base_url"].rstrip("/"),
        enabled=raw.get("enabled", True),
        render=raw.get("render", "http"),
        raw=raw,
        sha256=sha256,
        path=source,
    )


def load_definitions(directory=None) -> dict[str, SiteDefinition]:
    """Every ``*.yaml`` of the directory (default ``spiders/sites``), by id, sorted."""
    directory = Path(directory) if directory else DEFAULT_DIRECTORY
    definitions = [load_definition(p) for p in sorted(directory.glob("*.yaml"))]
    return {d.id: d for d in definitions}


def parse_base_urls(value) -> dict[str, str]:
    """SITES_BASE_URLS: a dict, or ``id=url,id=url`` text (or JSON) from the environment."""
    return parse_mapping(value, lambda url: str(url).strip().rstrip("/"))
