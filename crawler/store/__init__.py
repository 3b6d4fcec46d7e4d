"""The storage layer: the only SQL for scans (and, as they move here, findings, screenshots and jobs).

Callers (the ScanTracker extension, the spiders, the CLIs) go through these functions; personal
values are encrypted here, with the project's key ring, before they reach a table.
"""
