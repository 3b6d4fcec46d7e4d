"""Scheduling: deferred requests now; Redis-shared scheduling arrives with issue 7."""
