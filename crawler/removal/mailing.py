"""The CSV mailing job's input: the file, its addresses and the message (spiders/mailing.py sends it).

A mailing list is read whole before anything is sent, so every problem with the file is known up
front and a bad argument stops the crawl before it starts (``parse_arguments``, one line naming it).

- Encoding: UTF-8 (with or without a byte order mark); anything that is not UTF-8 is read as
  Windows-1252 / Latin-1 (every byte is a character there). A file with NUL or other control bytes is
  not a text CSV and is refused, as are UTF-16/32 files (their byte order mark names them).
- Delimiter: sniffed among ``, ; TAB |`` (a one-column file has none: a comma).
- Header: the first record is a header when none of its cells holds an ``@`` and one of them names an
  address column (``email``, ``e-mail``, ``mail``, ``address``, ``recipient``, ``to``... or anything with
  "mail" in it); the address column is that one. Without a header it is the column where most of the
  first records hold an ``@``. A first record that is neither (no ``@``, no such name) is data, and so
  reported invalid: nothing is silently skipped.
- Rows are numbered as a spreadsheet shows them: records, 1-based, the header included.
- Validity, with reason codes (never the address itself in a reason): ``empty`` (no address), ``syntax``
  (email-validator's syntax rules, deliverability checks off: dot-atom ASCII local part, no quoting, no
  IP literal, a real top-level domain; plus a top-level domain of 2-63 letters, as the e-mail APIs
  require), ``duplicate`` (the same address as an earlier row, named in ``duplicate_of``).
- Equality: the domain is compared case-insensitively (lower-cased, IDNA to ASCII), the local part
  exactly, so ``Ann@Example.com`` = ``Ann@example.com`` but ``ann@`` and ``ann+news@`` are two
  recipients (plus-tags are distinct mailboxes to us), as are ``Ann@`` and ``ann@`` (RFC 5321: the local
  part is the receiving server's to interpret).

The message: ``{token}`` in the body is replaced by the recipient's own random token (``new_token``);
nothing else in the body is a placeholder, so braces elsewhere are kept as written.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import secrets
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from crawler.spider_args import SpiderArgumentError

DEFAULT_SUBJECT = "Complete your registration"
DEFAULT_BODY = "Thank you for signing up. Please verify your token {token} to continue."
TOKEN_FIELD = "{token}"  # noqa: S105 (a placeholder, not a secret)
TOKEN_BYTES = 16  # 128 bits; token_urlsafe -> 22 characters
MAX_SUBJECT = 250
MAX_BODY = 100_000

EMPTY, SYNTAX, DUPLICATE = "empty", "syntax", "duplicate"
REASONS = (EMPTY, SYNTAX, DUPLICATE)

DELIMITERS = ",;\t|"
SNIFF_BYTES = 64 * 1024
COLUMN_SAMPLE = 1000  # records looked at to choose the address column of a file without a header
HEADER_NAMES = frozenset({"email", "emails", "mail", "address", "emailaddress", "recipient", "to", "courriel"})
TLD = re.compile(r"^[a-z]{2,63}$")
# C0 control characters other than TAB, LF, CR (and NUL): a binary file, not text
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
UTF16_32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class MailingFileError(ValueError):
    """The file cannot be used; ``str()`` is one line (the reason, without the file's content)."""


@dataclass(frozen=True)
class Row:
    number: int
    address: str | None  # canonical address of a valid row; None for an invalid one
    reason: str | None = None  # EMPTY, SYNTAX or DUPLICATE for an invalid row
    duplicate_of: int | None = None

    @property
    def valid(self) -> bool:
        return self.address is not None

    def describe(self) -> str:
        """The reason as shown to a person: ``duplicate of row 3``, ``syntax``, ``empty``."""
        if self.reason == DUPLICATE and self.duplicate_of is not None:
            return f"{DUPLICATE} of row {self.duplicate_of}"
        return self.reason or ""


@dataclass(frozen=True)
class MailingFile:
    sha256: str
    encoding: str
    header: bool
    column: int
    rows: tuple[Row, ...]  # data records only (not the header), in file order

    @property
    def records(self) -> int:
        """Records in the file, the header included."""
        return len(self.rows) + (1 if self.header else 0)

    @property
    def valid(self) -> list[Row]:
        return [row for row in self.rows if row.valid]

    def invalid_counts(self) -> Counter:
        return Counter(row.reason for row in self.rows if not row.valid)


@dataclass(frozen=True)
class MailingArguments:
    path: Path
    subject: str
    body: str
    file: MailingFile


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding name) of a CSV file's bytes; MailingFileError when it is not text we read."""
    if data.startswith(codecs.BOM_UTF8):
        try:
            text, encoding = data[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise MailingFileError(
                f"starts with a UTF-8 byte order mark but byte {exc.start + 3} is not UTF-8"
            ) from None
    elif data.startswith(UTF16_32_BOMS):
        raise MailingFileError("is UTF-16 or UTF-32 (byte order mark); save it as UTF-8")
    else:
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            try:
                text, encoding = data.decode("cp1252"), "windows-1252"
            except UnicodeDecodeError:
                text, encoding = data.decode("latin-1"), "latin-1"
    if bad := CONTROL.search(text):
        raise MailingFileError(
            f"is not a text CSV in UTF-8 or Latin-1 (control byte 0x{ord(bad.group()):02x} at character {bad.start()})"
        )
    return text, encoding


def canonical_address(value: str) -> str | None:
    """The address as it is sent and compared (local part as written, domain lower-cased ASCII),
    or None when it is not a valid address."""
    try:
        found = validate_email(
            value,
            check_deliverability=False,
            allow_smtputf8=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
        )
    except EmailNotValidError:
        return None
    domain = found.ascii_domain.lower()
    if not TLD.match(domain.rpartition(".")[2]):
        return None
    return f"{found.local_part}@{domain}"


def header_name(cell: str) -> bool:
    name = re.sub(r"[\s_\-.]", "", cell.strip().lower())
    return name in HEADER_NAMES or "mail" in name


def dialect_of(text: str):
    try:
        return csv.Sniffer().sniff(text[:SNIFF_BYTES], delimiters=DELIMITERS)
    except csv.Error:
        return csv.excel  # one column (or nothing to tell by): commas


def choose_layout(records: list[list[str]]) -> tuple[bool, int]:
    """(has a header, address column)."""
    first = records[0] if records else []
    if first and not any("@" in cell for cell in first):
        named = [i for i, cell in enumerate(first) if header_name(cell)]
        if named:
            # "email" beats a column that merely mentions mail ("mailing_date")
            exact = [i for i in named if re.sub(r"[\s_\-.]", "", first[i].strip().lower()) in HEADER_NAMES]
            return True, (exact or named)[0]
    at_counts = Counter(i for record in records[:COLUMN_SAMPLE] for i, cell in enumerate(record) if "@" in cell)
    column = min(at_counts, key=lambda i: (-at_counts[i], i)) if at_counts else 0
    return False, column


def parse_text(text: str) -> tuple[bool, int, list[Row]]:
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), dialect_of(text)))
    except csv.Error as exc:
        raise MailingFileError(f"is not a readable CSV ({exc})") from None
    if not records:
        raise MailingFileError("has no rows")
    header, column = choose_layout(records)
    rows, seen = [], {}
    for number, record in enumerate(records, 1):
        if header and number == 1:
            continue
        cell = record[column].strip() if column < len(record) else ""
        if not cell:
            rows.append(Row(number, None, EMPTY))
            continue
        address = canonical_address(cell)
        if address is None:
            rows.append(Row(number, None, SYNTAX))
        elif address in seen:
            rows.append(Row(number, None, DUPLICATE, seen[address]))
        else:
            seen[address] = number
            rows.append(Row(number, address))
    return header, column, rows


def read_mailing_file(path: Path) -> MailingFile:
    """The mailing list in ``path``; MailingFileError (one line, no content) when it cannot be used."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MailingFileError("no such file") from None
    except IsADirectoryError:
        raise MailingFileError("is a directory, not a file") from None
    except OSError as exc:
        raise MailingFileError(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    if not data.strip():
        raise MailingFileError("is empty")
    text, encoding = decode(data)
    header, column, rows = parse_text(text)
    if not rows:
        raise MailingFileError("has a header row and nothing else")
    return MailingFile(hashlib.sha256(data).hexdigest(), encoding, header, column, tuple(rows))


def parse_subject(kwargs: dict) -> str:
    raw = kwargs.get("subject")
    subject = DEFAULT_SUBJECT if raw is None else str(raw).strip()
    if not subject:
        raise SpiderArgumentError("subject", "empty; leave it out for the default")
    if "\r" in subject or "\n" in subject:
        raise SpiderArgumentError("subject", "a subject is one line (no line breaks)")
    if len(subject) > MAX_SUBJECT:
        raise SpiderArgumentError("subject", f"longer than {MAX_SUBJECT} characters")
    return subject


def parse_body(kwargs: dict) -> str:
    raw = kwargs.get("body")
    body = DEFAULT_BODY if raw is None else str(raw)
    if not body.strip():
        raise SpiderArgumentError("body", "empty; leave it out for the default")
    if len(body) > MAX_BODY:
        raise SpiderArgumentError("body", f"longer than {MAX_BODY} characters")
    # the spider's -a cannot carry a line break easily: \n in the argument is one
    return body.replace("\\n", "\n")


def parse_arguments(kwargs: dict) -> MailingArguments:
    """The job's arguments, the file read and checked; SpiderArgumentError names the bad one."""
    raw = str(kwargs.get("csv") or "").strip()
    if not raw:
        raise SpiderArgumentError("csv", "required: the path of the CSV mailing list")
    path = Path(raw).expanduser()
    try:
        mailing_file = read_mailing_file(path)
    except MailingFileError as exc:
        raise SpiderArgumentError("csv", f"{raw}: {exc}") from None
    return MailingArguments(path, parse_subject(kwargs), parse_body(kwargs), mailing_file)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def render(body_template: str, token: str) -> str:
    return body_template.replace(TOKEN_FIELD, token)


def template_sha256(subject: str, body: str) -> str:
    return hashlib.sha256(f"{subject}\0{body}".encode()).hexdigest()
