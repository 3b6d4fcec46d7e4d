"""The person of a scan request (JSON, as the API and ``python -m crawler.store create-scan`` take it),
checked with the spider's own argument rules, so a person is valid or invalid the same way for
``scrapy crawl -a``, the CLI and the API. Errors (InputError) name the field, never its value."""

from __future__ import annotations

from scrapy.spiderloader import get_spider_loader

from crawler.spider_args import PERSONAL_ARGUMENTS, SpiderArgumentError

# JSON field -> spider argument; a list holds at most one value while the matcher compares one
LIST_FIELDS = {"emails": "email", "phones": "phone"}
FIELDS = (*PERSONAL_ARGUMENTS, *LIST_FIELDS)


class InputError(ValueError):
    pass


def person_arguments(document) -> dict[str, str]:
    """The spider arguments (strings) of the person JSON; InputError names the field."""
    if not isinstance(document, dict):
        raise InputError("person: expected a JSON object")
    if unknown := sorted(set(document) - set(FIELDS)):
        raise InputError(f"{unknown[0]}: unknown field (known: {', '.join(FIELDS)})")
    arguments = {}
    for key, value in document.items():
        if value is None:
            continue
        if key in LIST_FIELDS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InputError(f"{key}: expected a list of strings")
            if len(value) > 1:
                raise InputError(f"{key}: at most one value for now")
            target = LIST_FIELDS[key]
            if value:
                if target in arguments:
                    raise InputError(f"{key}: give {key} or {target}, not both")
                arguments[target] = value[0]
            continue
        if key == "age" and isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        elif isinstance(value, str):
            text = value
        else:
            raise InputError(f"{key}: expected a string" + (" or a whole number" if key == "age" else ""))
        if key in arguments:
            raise InputError(f"{key}: give {key} or {key}s, not both")
        arguments[key] = text
    return arguments


def check_person(settings, spider: str, arguments: dict[str, str], sites: str | None) -> dict:
    """The spider's parsed arguments for this person (the same rules as ``-a``)."""
    try:
        spidercls = get_spider_loader(settings).load(spider)
    except KeyError:
        raise InputError(f"--spider: unknown spider {spider!r}") from None
    if not getattr(spidercls, "takes_person", False):
        raise InputError(f"--spider: {spider!r} does not take a person")
    kwargs = dict(arguments)
    if sites:
        if not getattr(spidercls, "runs_all_sites", False):
            raise InputError(f"--sites: {spider!r} runs one site; --sites is for the scan spider")
        kwargs["sites"] = sites
    try:
        parsed = spidercls.check_arguments(kwargs, settings)
    except SpiderArgumentError as exc:
        raise InputError(f"{exc.argument}: {str(exc).split(': ', 1)[1]}") from None
    parsed["site_ids"] = list(parsed["sites"]) if "sites" in parsed else [getattr(spidercls, "site_id", spider)]
    return parsed
