"""Associated data (AAD) for every ciphertext the project stores, in one place.

The AAD binds a ciphertext to its row: decrypting it with another row's context
fails, so a value copied or moved between rows is detected. Rotation rebuilds
the same AAD to re-encrypt.
"""


def finding_value(scan_id: str, data_type: str) -> bytes:
    return f"finding|{scan_id}|{data_type}".encode()


def finding_listing_url(scan_id: str) -> bytes:
    return f"finding|{scan_id}|listing_url".encode()


def rejected_listing_url(scan_id: str) -> bytes:
    """A rejected candidate's listing URL (distinct from a finding's)."""
    return f"rejected_candidate|{scan_id}|listing_url".encode()


def rejected_review(scan_id: str) -> bytes:
    """A review-band candidate's extracted listing, kept for the person's "is this you?"."""
    return f"rejected_candidate|{scan_id}|review".encode()


def scan_target(scan_id: str) -> bytes:
    return f"scan|{scan_id}|target".encode()


def dead_letter(kind: str, spider: str) -> bytes:
    return f"dead_letter|{kind}|{spider}".encode()


def screenshot(sha256: str) -> bytes:
    return f"screenshot|{sha256}".encode()


def mailing_row(mailing_id: int, row: int, field: str) -> bytes:
    """A mailing list row's address or token (``field``), bound to its mailing and row number."""
    return f"mailing_row|{mailing_id}|{row}|{field}".encode()
