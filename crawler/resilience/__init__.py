"""Shared state behind the resilience middlewares: rate-limit buckets, server
budgets, circuit breakers. Each comes in a Redis form (shared by every worker)
and an in-process form with the same interface (no REDIS_URL)."""
