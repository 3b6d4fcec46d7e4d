"""The mailing job's CSV reading (crawler/removal/mailing.py): encodings (UTF-8, BOM, Latin-1), header or
not, the address column, invalid / empty / duplicate rows with their row numbers, case in the domain
only, plus-tags distinct, and the arguments' one-line errors."""

from __future__ import annotations

import codecs

import pytest

from crawler.removal.mailing import (
    DEFAULT_BODY,
    DEFAULT_SUBJECT,
    DUPLICATE,
    EMPTY,
    SYNTAX,
    MailingFileError,
    canonical_address,
    decode,
    new_token,
    parse_arguments,
    read_mailing_file,
    render,
)
from crawler.spider_args import SpiderArgumentError

pytestmark = pytest.mark.unit


def write(tmp_path, content: bytes, name: str = "list.csv"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def outcome(mailing_file) -> list[tuple[int, str | None, str | None]]:
    return [(row.number, row.address, row.describe() or None) for row in mailing_file.rows]


def test_utf8_with_header_and_other_columns(tmp_path):
    path = write(tmp_path, b"name,Email,city\nAnn,ann@example.com,Springfield\nBob,bob@example.org,Peoria\n")
    found = read_mailing_file(path)
    assert (found.encoding, found.header, found.column, found.records) == ("utf-8", True, 1, 3)
    assert outcome(found) == [(2, "ann@example.com", None), (3, "bob@example.org", None)]


def test_utf8_bom_header_row_is_recognised(tmp_path):
    path = write(tmp_path, codecs.BOM_UTF8 + "e-mail;Nom\r\nzoé@example.com;Zoé\r\nzoe@example.com;Zoé\r\n".encode())
    found = read_mailing_file(path)
    assert (found.encoding, found.header, found.column) == ("utf-8-sig", True, 0)
    # a non-ASCII local part is refused (the APIs take ASCII addresses); the next row is fine
    assert outcome(found) == [(2, None, SYNTAX), (3, "zoe@example.com", None)]


def test_latin1_file_without_header(tmp_path):
    path = write(tmp_path, "José Núñez,jose@example.com\nRenée,renee@example.net\n".encode("latin-1"))
    found = read_mailing_file(path)
    assert found.encoding in ("windows-1252", "latin-1")
    assert (found.header, found.column) == (False, 1)
    assert outcome(found) == [(1, "jose@example.com", None), (2, "renee@example.net", None)]


def test_one_column_without_header(tmp_path):
    found = read_mailing_file(write(tmp_path, b"a@example.com\nb@example.com"))
    assert (found.header, found.column, found.records) == (False, 0, 2)
    assert [row.address for row in found.rows] == ["a@example.com", "b@example.com"]


def test_invalid_empty_and_duplicate_rows_keep_their_row_numbers(tmp_path):
    content = (
        b"email,name\n"  # 1: header
        b"ann@example.com,Ann\n"  # 2
        b"not-an-address,X\n"  # 3: syntax
        b",Nobody\n"  # 4: empty cell
        b"\n"  # 5: blank line
        b"ANN@EXAMPLE.COM,Ann again\n"  # 6: another local part (case kept): a distinct address
        b"ann@EXAMPLE.com,Ann\n"  # 7: duplicate of 2 (domain case does not count)
        b"ann+news@example.com,Ann\n"  # 8: plus-tag: distinct
        b"  ann+news@example.com  ,Ann\n"  # 9: duplicate of 8 (spaces trimmed)
        b"a@b,short\n"  # 10: syntax (no top-level domain)
        b"x@example.c,tld\n"  # 11: syntax (one-letter TLD)
        b'"""quoted""@example.com",q\n'  # 12: syntax (quoted local part)
        b"two@@example.com,q\n"  # 13: syntax
        b"Ann <ann@example.com>,display\n"  # 14: syntax (a display name is not an address)
    )
    found = read_mailing_file(write(tmp_path, content))
    assert found.header and found.column == 0
    assert outcome(found) == [
        (2, "ann@example.com", None),
        (3, None, SYNTAX),
        (4, None, EMPTY),
        (5, None, EMPTY),
        (6, "ANN@example.com", None),
        (7, None, f"{DUPLICATE} of row 2"),
        (8, "ann+news@example.com", None),
        (9, None, f"{DUPLICATE} of row 8"),
        (10, None, SYNTAX),
        (11, None, SYNTAX),
        (12, None, SYNTAX),
        (13, None, SYNTAX),
        (14, None, SYNTAX),
    ]
    assert found.invalid_counts() == {SYNTAX: 6, EMPTY: 2, DUPLICATE: 2}
    assert len(found.valid) == 3


def test_quoted_fields_with_delimiters_and_line_breaks_count_as_one_record(tmp_path):
    content = b'email,note\na@example.com,"one, two"\nb@example.com,"line\nbreak"\nc@example.com,x\n'
    found = read_mailing_file(write(tmp_path, content))
    assert outcome(found) == [(2, "a@example.com", None), (3, "b@example.com", None), (4, "c@example.com", None)]


def test_first_row_without_at_and_without_header_name_is_data(tmp_path):
    found = read_mailing_file(write(tmp_path, b"nothing here\nb@example.com\n"))
    assert not found.header
    assert outcome(found) == [(1, None, SYNTAX), (2, "b@example.com", None)]


def test_international_domain_becomes_ascii_and_lower_case():
    assert canonical_address("Ann@Bücher.Example") == "Ann@xn--bcher-kva.example"
    assert canonical_address("ann@例え.jp") == "ann@xn--r8jz45g.jp"
    assert canonical_address("ann@example.test") is None  # special-use names never deliver
    assert canonical_address("ann@[127.0.0.1]") is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "is empty"),
        (b"  \n\n", "is empty"),
        (b"email\n", "has a header row and nothing else"),
        (b"a@example.com\x00\x01\n", "is not a text CSV"),
        (codecs.BOM_UTF16_LE + "a@example.com".encode("utf-16-le"), "UTF-16 or UTF-32"),
        (codecs.BOM_UTF8 + b"a@example.com\xff\n", "UTF-8 byte order mark"),
    ],
)
def test_unusable_files_are_one_line_errors(tmp_path, content, reason):
    with pytest.raises(MailingFileError, match=reason) as caught:
        read_mailing_file(write(tmp_path, content))
    assert "\n" not in str(caught.value)
    assert "a@example.com" not in str(caught.value)


def test_decode_prefers_utf8():
    assert decode("é".encode()) == ("é", "utf-8")
    assert decode("é".encode("latin-1")) == ("é", "windows-1252")
    assert decode(b"\x81x") == ("\x81x", "latin-1")  # undefined in windows-1252


def test_arguments_defaults_and_content_identity(tmp_path):
    first = write(tmp_path, b"a@example.com\n", "one.csv")
    second = write(tmp_path, b"a@example.com\n", "two.csv")
    parsed = parse_arguments({"csv": str(first)})
    assert (parsed.subject, parsed.body) == (DEFAULT_SUBJECT, DEFAULT_BODY)
    # identity is the content, not the path
    assert parse_arguments({"csv": str(second)}).file.sha256 == parsed.file.sha256
    custom = parse_arguments({"csv": str(first), "subject": " Hi ", "body": "Code {token}\\nBye {other}"})
    assert (custom.subject, custom.body) == ("Hi", "Code {token}\nBye {other}")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "-a csv: required"),
        ({"csv": "/nonexistent/list.csv"}, "-a csv: /nonexistent/list.csv: no such file"),
        ({"csv": "."}, "is a directory"),
        ({"csv": "FILE", "subject": "two\nlines"}, "-a subject: a subject is one line"),
        ({"csv": "FILE", "subject": "  "}, "-a subject: empty"),
        ({"csv": "FILE", "body": ""}, "-a body: empty"),
    ],
)
def test_bad_arguments_name_the_argument(tmp_path, arguments, message):
    path = write(tmp_path, b"a@example.com\n")
    arguments = {k: (str(path) if v == "FILE" else v) for k, v in arguments.items()}
    with pytest.raises(SpiderArgumentError, match=message):
        parse_arguments(arguments)


def test_unreadable_encoding_names_the_file(tmp_path):
    path = write(tmp_path, b"\x00\x00binary")
    with pytest.raises(SpiderArgumentError, match=r"^-a csv: .*list\.csv: is not a text CSV"):
        parse_arguments({"csv": str(path)})


def test_tokens_are_fresh_and_only_the_token_field_is_replaced():
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(len(t) >= 20 for t in tokens)
    assert render("a {token} b {token} {x}", "T") == "a T b T {x}"
