"""Logs (structured, redacted); later: metrics, health, scan events."""
