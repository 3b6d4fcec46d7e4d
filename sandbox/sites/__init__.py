"""Simulated services, one module each; importing this package registers them all.

Websites live here and in ``sandbox/brokers`` (the five people-search sites);
the events API and the resilience lab are packages of their own
(``sandbox/events``, ``sandbox/lab``). Import order is registration order,
which is the order services start and are listed in.
"""

from sandbox.sites import directory  # isort: skip
from sandbox.events import app as events  # isort: skip
from sandbox.lab import app as lab  # isort: skip
from sandbox.brokers import fastpeople, truepeople, spa, radaris, thatsthem  # isort: skip
from sandbox import mail  # isort: skip

__all__ = ["directory", "events", "fastpeople", "lab", "mail", "radaris", "spa", "thatsthem", "truepeople"]
