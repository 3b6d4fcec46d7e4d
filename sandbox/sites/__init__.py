"""Simulated services, one module each; importing this package registers them all.

Websites live here; the events API and the resilience lab are packages of their own
(``sandbox/events``, ``sandbox/lab``).
Import order is registration order, which is the order services start and are listed in.
"""

from sandbox.sites import directory  # isort: skip
from sandbox.events import app as events  # isort: skip
from sandbox.lab import app as lab  # isort: skip

__all__ = ["directory", "events", "lab"]
