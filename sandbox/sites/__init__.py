"""Simulated services, one module each; importing this package registers them all.

Websites live here; the events API is a package of its own (``sandbox/events``).
Import order is registration order, which is the order services start and are listed in.
"""

from sandbox.sites import directory  # isort: skip
from sandbox.events import app as events  # isort: skip

__all__ = ["directory", "events"]
