"""Scrapy project package: settings, items and the shared services."""
