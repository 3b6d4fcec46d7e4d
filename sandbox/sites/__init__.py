"""Simulated websites, one module each; importing this package registers them all."""

from sandbox.sites import directory

__all__ = ["directory"]
