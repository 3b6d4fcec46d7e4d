"""Deduplication: exact fingerprints, Bloom filters, fuzzy person matching."""
