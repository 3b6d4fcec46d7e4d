"""Ingestion from paginated, cursor-based APIs: response shapes, partitions, progress."""
