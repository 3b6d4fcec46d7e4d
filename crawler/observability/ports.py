"""METRICS_PORT parsing, apart from the server so that validating settings imports nothing heavy."""

from __future__ import annotations


class PortsError(ValueError):
    pass


def parse_ports(value) -> list[int] | None:
    """METRICS_PORT -> the ports to try in order ([0] = any free one), or None when off."""
    text = str(value if value is not None else "").strip()
    if not text:
        return None
    low, sep, high = text.partition("-")
    try:
        first, last = int(low), int(high if sep else low)
    except ValueError:
        raise PortsError(f"expected a port, a range like 9410-9419, or 0, got {text!r}") from None
    if not (0 <= first <= 65535 and 0 <= last <= 65535) or first > last or (sep and first == 0):
        raise PortsError(f"expected ports in 1-65535 (or 0 alone), got {text!r}")
    return list(range(first, last + 1))
