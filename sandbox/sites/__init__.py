"""Simulated websites, one module each."""
