"""Spider argument parsing with one-line errors that name the argument.

Spiders declare ``check_arguments(kwargs[, settings]) -> dict`` (a classmethod);
our ``crawl`` command calls it before anything starts, and the spider's
``__init__`` calls it again for in-process crawls. E-mails and phones are
normalised by ``crawler.normalize`` (phones in the VALIDATE_PHONE_REGION region,
like the pipelines). Error messages never echo the value of a personal argument
(name, e-mail, phone...).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass

from crawler import normalize
from crawler import settings as project_settings
from crawler.normalize import US_STATES

# the arguments that carry the person: refused in a scrapyd job, never echoed in an error
PERSONAL_ARGUMENTS = ("first_name", "last_name", "middle_name", "city", "state", "age", "email", "phone")
SECRET_ARGUMENTS = ("api_key",)
CREATE_SCAN_HINT = "create the scan (python -m crawler.store create-scan) and pass scan_id"
NAME_RE = re.compile(r"^[^\W\d_](?:[^\W\d_]|[ '.-])*$")


class SpiderArgumentError(ValueError):
    """``str(error)`` is the one line shown to the user."""

    def __init__(self, argument: str, reason: str):
        super().__init__(f"-a {argument}: {reason}")
        self.argument = argument


def _name(kwargs: dict, key: str, required: bool) -> str:
    value = (kwargs.get(key) or "").strip()
    if not value:
        if required:
            raise SpiderArgumentError(key, "required")
        return ""
    if len(value) > 64 or not NAME_RE.match(value):
        raise SpiderArgumentError(key, "expected letters, spaces, apostrophes, dots or hyphens (at most 64)")
    return value


@dataclass(frozen=True)
class PersonQuery:
    """Who a scan looks for. Personal data: encrypt at rest, never log."""

    first_name: str
    last_name: str
    middle_name: str = ""
    city: str = ""
    state: str = ""
    age: int | None = None
    email: str = ""
    phone: str = ""  # E.164

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.middle_name, self.last_name) if p)

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in ("", None)}

    def pii_values(self) -> list[str]:
        return [str(v) for k, v in asdict(self).items() if v and k not in ("state", "age")]


def phone_region(settings=None) -> str:
    """Region assumed for a phone given without a country code: VALIDATE_PHONE_REGION, the
    setting the validate and match pipelines use (the project's value without crawler settings)."""
    if settings is not None and settings.get("VALIDATE_PHONE_REGION"):
        return settings.get("VALIDATE_PHONE_REGION")
    return project_settings.VALIDATE_PHONE_REGION


def parse_person(kwargs: dict, settings=None) -> PersonQuery:
    """The person to look for; ``settings`` (the spider's) give the phone region."""
    first_name = _name(kwargs, "first_name", required=True)
    last_name = _name(kwargs, "last_name", required=True)
    middle_name = _name(kwargs, "middle_name", required=False)
    city = _name(kwargs, "city", required=False)
    state = (kwargs.get("state") or "").strip().upper()
    if state and state not in US_STATES:
        raise SpiderArgumentError("state", "expected a two-letter US state code such as IL")
    age = None
    if raw_age := (kwargs.get("age") or "").strip():
        if not raw_age.isdigit() or not 18 <= int(raw_age) <= 120:
            raise SpiderArgumentError("age", "expected a whole number from 18 to 120")
        age = int(raw_age)
    email = ""
    if raw_email := (kwargs.get("email") or "").strip():
        try:
            email = normalize.email(raw_email)
        except ValueError:
            raise SpiderArgumentError("email", "not a valid e-mail address") from None
    phone = ""
    if raw_phone := (kwargs.get("phone") or "").strip():
        try:
            phone = normalize.phone_e164(raw_phone, phone_region(settings))
        except ValueError:
            raise SpiderArgumentError("phone", "not a valid phone number") from None
    return PersonQuery(
        first_name=first_name,
        last_name=last_name,
        middle_name=middle_name,
        city=city,
        state=state,
        age=age,
        email=email,
        phone=phone,
    )


def parse_scan_id(kwargs: dict) -> str:
    raw = (kwargs.get("scan_id") or "").strip()
    if not raw:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise SpiderArgumentError("scan_id", f"expected a UUID, got {raw!r}") from None


def scrapyd_job(kwargs: dict) -> bool:
    """Was this crawl launched by scrapyd? scrapyd 1.6 passes its job id as the spider argument
    ``_job`` (scrapyd/launcher.py: get_crawl_args); it sets no environment variable naming the job."""
    return "_job" in kwargs


def refuse_job_arguments(kwargs: dict) -> None:
    """Under scrapyd, spider arguments sit in its queue, its log and the process list: refuse the
    person's values and secrets there (one line naming the argument, never its value)."""
    if not scrapyd_job(kwargs):
        return
    for key in PERSONAL_ARGUMENTS:
        if key in kwargs:
            raise SpiderArgumentError(key, f"personal data does not belong in job arguments: {CREATE_SCAN_HINT}")
    for key in SECRET_ARGUMENTS:
        if key in kwargs:
            raise SpiderArgumentError(
                key, "secrets do not belong in job arguments: set EVENTS_API_KEY in scrapyd's environment"
            )


def wants_stored_scan(kwargs: dict) -> bool:
    """``-a scan_id=...`` without the person: the target is loaded from the scans row."""
    return bool((kwargs.get("scan_id") or "").strip()) and not any(key in kwargs for key in PERSONAL_ARGUMENTS)


def parse_http_url(kwargs: dict, key: str, default: str | None = None) -> str:
    """The URL argument (or the default), without a trailing slash; "" when neither is given."""
    value = (kwargs.get(key) or default or "").strip().rstrip("/")
    if value and not re.match(r"^https?://[^\s/]+", value):
        raise SpiderArgumentError(key, f"expected an http(s):// URL, got {value!r}")
    return value
