"""Spider classes, one module each (``scrapy list`` shows them)."""
