"""Scheduling: deferred requests (deferring.py) and, with REDIS_URL, the Redis-shared
lease-based scheduler (shared.py, lease_queue.py, dupefilter.py), its start-URL feed
(spiders.py) and shared stats (stats.py)."""
