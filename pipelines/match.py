"""Decides which candidate listings are the scan's target (between validate and dedup).

Broker spiders yield every detail page they visit as a candidate ``PersonListing``. For a
spider with a ``scan`` (a ScanContext), each candidate is scored against the scan's
PersonQuery (``crawler.matching``):

- confidence >= ``MATCH_THRESHOLD``: accepted. ``listing.accepted`` (the one acceptance flag,
  which the screenshots pipeline reads) and ``listing.confidence`` are set, ``found_data``
  is sent, and the listing goes on down the chain to become findings rows.
- below: rejected. ``candidate_rejected`` is sent and the listing is replaced by a
  ``RejectedCandidate`` (URL, score, per-field evidence; no other personal value), which the
  encrypt pipeline seals into a ``rejected_candidates`` row, so audits can see why.
- the review band, ``MATCH_REVIEW_THRESHOLD`` <= confidence < ``MATCH_THRESHOLD``: rejected too,
  but the person is asked "is this you?" (crawler/store/reviews.py). Unless the scan's owner has
  answered for that listing, the row is sealed here with its extracted listing (encrypted, in
  ``review_ciphertext``) and goes on as TableRows, which the later pipelines pass through. An owner
  who answered yes before has the listing accepted (evidence ``review: yes``), so re-scans follow
  it (removals, reappearances); one who answered no is never asked again.

Nothing is dropped. Listings of spiders without a scan, or with ``match_listings = False``
(spiders whose own search already decided, such as ``example``), pass through accepted,
their confidence as the spider set it.
Stats: ``match/accepted``, ``match/rejected`` (and per site, ``match/accepted/<site>``...).
"""

from __future__ import annotations

import datetime as dt
import logging

from crawler import signals as project_signals
from crawler.items import PersonListing, RejectedCandidate
from crawler.matching import Matcher, Target
from crawler.security import keyring_from_settings
from crawler.store import reviews

logger = logging.getLogger(__name__)


class MatchPipeline:
    def __init__(
        self, crawler, threshold: float, age_tolerance: int, phone_region: str, review_threshold: float | None = None
    ):
        self.crawler = crawler
        self.stats = crawler.stats
        self.threshold = threshold
        # None or >= threshold: no review band
        self.review_threshold = review_threshold
        self.ring = None  # the key ring, read when a review-band candidate first needs it
        self.age_tolerance = age_tolerance
        self.phone_region = phone_region
        self.matchers: dict[str, Matcher] = {}  # scan id -> its matcher (the target's folded values)

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        return cls(
            crawler,
            settings.getfloat("MATCH_THRESHOLD"),
            settings.getint("MATCH_AGE_TOLERANCE"),
            # the validate pipeline's region, by name and by design: listings' phones arrive normalised
            # with it, and the target's must be normalised alike to compare (pipelines/settings_spec.py)
            settings.get("VALIDATE_PHONE_REGION"),
            settings.getfloat("MATCH_REVIEW_THRESHOLD"),
        )

    def keyring(self):
        if self.ring is None:
            self.ring = keyring_from_settings(self.crawler.settings)
        return self.ring

    def in_review_band(self, confidence: float) -> bool:
        band = self.review_threshold
        return band is not None and band < self.threshold and band <= confidence < self.threshold

    async def review_decision(self, item) -> str | None:
        """The scan owner's answer about this listing, None when never asked."""
        settings = self.crawler.settings
        index = self.keyring().blind_index(item.listing_url)
        return await reviews.decision(settings, item.scan_id, item.site, index)

    def matcher(self, scan) -> Matcher:
        if (matcher := self.matchers.get(scan.scan_id)) is None:
            target = Target.from_query(scan.query)
            matcher = self.matchers[scan.scan_id] = Matcher(
                target, self.threshold, self.age_tolerance, self.phone_region, dt.date.today()
            )
        return matcher

    async def process_item(self, item):
        if not isinstance(item, PersonListing):
            return item
        spider = self.crawler.spider
        if hasattr(spider, "original_for"):  # replay_dead_letters: the spider that made the request decides
            spider = spider.original_for(item) or spider
        scan = getattr(spider, "scan", None)
        # a spider whose listings are already its decision opts out with ``match_listings = False``;
        # one without a scan has no target to score against
        if scan is None or getattr(spider, "match_listings", True) is False:
            item.accepted = True  # the spider's own decision
            return item
        result = self.matcher(scan).score(item)
        levels = {name: e["level"] for name, e in result.evidence.items() if "level" in e}
        send = self.crawler.signals.send_catch_log_async
        answer = await self.review_decision(item) if self.in_review_band(result.confidence) else None
        item.accepted = result.accepted or answer == "yes"
        if item.accepted:
            item.confidence, item.evidence = result.confidence, result.evidence
            if not result.accepted:
                item.evidence = {**result.evidence, "review": "yes"}
                self.stats.inc_value("match/review_yes")
            self.stats.inc_value("match/accepted")
            self.stats.inc_value(f"match/accepted/{item.site}")
            logger.debug("accepted a %s listing: confidence %.3f %s", item.site, result.confidence, levels)
            if item.held:  # read under a quarantined definition: found only once a person accepts the heal
                self.stats.inc_value("match/held")
                return item
            await send(
                project_signals.found_data,
                scan_id=item.scan_id,
                site=item.site,
                listing=item,
                confidence=result.confidence,
            )
            return item
        self.stats.inc_value("match/rejected")
        self.stats.inc_value(f"match/rejected/{item.site}")
        logger.debug("rejected a %s listing: confidence %.3f %s", item.site, result.confidence, levels)
        await send(
            project_signals.candidate_rejected,
            scan_id=item.scan_id,
            site=item.site,
            listing=item,
            confidence=result.confidence,
        )
        candidate = RejectedCandidate(
            site=item.site,
            scan_id=item.scan_id,
            listing_url=item.listing_url,
            confidence=result.confidence,
            threshold=self.threshold,
            evidence=result.evidence,
        )
        if self.in_review_band(result.confidence) and answer is None:
            self.stats.inc_value("match/review")
            self.stats.inc_value(f"match/review/{item.site}")
            return reviews.sealed_review_rows(self.keyring(), item, candidate, self.stats)
        return candidate
