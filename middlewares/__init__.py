"""Downloader and spider middlewares, one class per module."""
