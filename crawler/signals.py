"""The project's own Scrapy signals (sent with ``crawler.signals.send_catch_log``).

They live here, not in the middlewares that send them, so extensions such as the
scan tracker can listen without importing the middlewares.
"""

block_detected = object()  # (request, kind, domain): a captcha / interstitial / rate-limit / block page
circuit_changed = object()  # (domain, state): a circuit breaker opened, went half-open or closed
shutdown_requested = object()  # (signal_name): the first SIGTERM/SIGINT; the engine drains. Components waiting on
#                                 requests the scheduler will no longer hand out (screenshots) should stop waiting

# Scan lifecycle (person scans over broker sites). Arguments never carry personal values in the clear
# except the PersonListing objects, which stay in memory.
scan_progress = object()  # (scan_id, site, stage, counts): a site's search / result page / detail page was handled
found_data = object()  # (scan_id, site, listing, confidence): a listing was accepted as the scan's target
candidate_rejected = object()  # (scan_id, site, listing, confidence): a listing scored below the threshold
scan_error = object()  # (scan_id, site, kind, request): not_found | timeout | parse_error | captcha | interstitial
#                        | rate_limited | blocked, never reported as "no results"
scan_completed = object()  # (scan_id, status, counters): the scan row reached its final status
