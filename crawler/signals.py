"""The project's own Scrapy signals (sent with ``crawler.signals.send_catch_log``).

They live here, not in the middlewares that send them, so extensions such as the
scan tracker can listen without importing the middlewares.
"""

block_detected = object()  # (request, kind, domain): a captcha / interstitial / rate-limit / block page
circuit_changed = object()  # (domain, state): a circuit breaker opened, went half-open or closed
