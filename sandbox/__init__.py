"""Simulated outside world (people-search sites, later APIs and an LLM stub) on localhost."""
