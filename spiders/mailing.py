"""The ``mailing`` spider: one e-mail per valid address of a CSV mailing list, exactly once.

    scrapy crawl mailing -a csv=PATH [-a subject="..."] [-a body="... {token} ..."]

The file is read and checked before the crawl starts (crawler/removal/mailing.py: encodings, header,
the address column, invalid rows); a bad argument is one line naming it (exit 2). The job's state is
in PostgreSQL (crawler/store/mailings.py), keyed by the file's content, so running the same file
again continues where the last run stopped and never starts over.

Exactly once: each row is committed ``sending`` before its request leaves and ``sent`` (with the
provider's message id) after the answer. A row a run finds ``sending`` had its request possibly reach
the provider before that run died: it becomes ``unknown`` and is reported for review, never re-sent
unless MAILING_RESEND_UNKNOWN. A lost answer during the run (MailOutcomeUnknown) is ``unknown`` too.

Sending goes through ``provider_from_crawler`` one message at a time; the pace is the rate-limit
middleware's (MAIL_API_MIN_INTERVAL_SECONDS, Retry-After), 401s renew the token and 503s are retried
with backoff by the auth-token and retry middlewares: this spider never sleeps. Requests go straight
through the engine (``download_async``), never through a scheduler.

Logs carry row numbers, counts and reasons: never an address, a token or a body. A progress line
(sent/total, rate, ETA) every MAILING_PROGRESS_SECONDS (default 30) and a summary at the end: sent,
invalid by reason, unknown, and the rows to review.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import scrapy
from scrapy import signals
from scrapy.exceptions import CloseSpider

from crawler.removal.mailing import MailingArguments, parse_arguments, render
from crawler.store import mailings as store

logger = logging.getLogger(__name__)

CLAIM_BATCH = 10
UNAVAILABLE_IN_A_ROW = 3  # the provider refused this many sends in a row after its retries: stop, rerun later
REVIEW_LIST = 50  # row numbers listed per reason in the summary (the rest are counted)


def duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class Progress:
    """sent/total, the rate of this run and the ETA of the rest; ``due`` every ``every`` seconds."""

    def __init__(self, total: int, already_sent: int, every: float, clock: Callable[[], float] = time.monotonic):
        self.total, self.sent, self.every, self.clock = total, already_sent, every, clock
        self.started = clock()
        self.sent_now = 0
        self.last_line = self.started

    def record_sent(self) -> None:
        self.sent += 1
        self.sent_now += 1

    def rate(self) -> float:
        elapsed = self.clock() - self.started
        return self.sent_now / elapsed if elapsed > 0 else 0.0

    def due(self) -> bool:
        return self.clock() - self.last_line >= self.every

    def line(self, remaining: int) -> str:
        self.last_line = self.clock()
        rate = self.rate()
        eta = duration(remaining / rate) if rate > 0 and remaining else ("0m00s" if not remaining else "unknown")
        return f"sent {self.sent}/{self.total}, {rate:.2f}/s, ETA {eta}"


def review_lines(summary: store.Summary) -> list[str]:
    """One line per reason: the rows to look at (numbers only)."""
    by_reason: dict[str, list[str]] = {}
    for row, state, reason in summary.review:
        code = store.reason_code(reason)
        label = f"{state} ({code})"
        shown = f"{row} (of row {reason.rsplit(' ', 1)[1]})" if code == "duplicate" else str(row)
        by_reason.setdefault(label, []).append(shown)
    lines = []
    for label, rows in by_reason.items():
        more = f" and {len(rows) - REVIEW_LIST} more" if len(rows) > REVIEW_LIST else ""
        lines.append(f"{label}: {len(rows)} row(s): {', '.join(rows[:REVIEW_LIST])}{more}")
    return lines


class MailingSpider(scrapy.Spider):
    name = "mailing"
    # its sends and submissions are recorded in its own tables; replaying one outside them could repeat it
    replayable = False

    @classmethod
    def check_arguments(cls, kwargs: dict) -> MailingArguments:
        return parse_arguments(kwargs)

    @classmethod
    def update_settings(cls, settings):
        super().update_settings(settings)
        # see the module docstring: nothing here passes through a scheduler
        settings.set("SCHEDULER", "scrapy.core.scheduler.Scheduler", priority="spider")
        from crawler.removal.mail import mail_spider_settings

        for name, value in mail_spider_settings(settings).items():
            settings.set(name, value, priority="spider")

    def __init__(self, csv: str | None = None, subject: str | None = None, body: str | None = None, **kwargs):
        arguments = {"csv": csv}
        if subject is not None:
            arguments["subject"] = subject
        if body is not None:
            arguments["body"] = body
        parsed = parse_arguments(arguments)
        super().__init__(**kwargs)
        self.mailing_file = parsed.file
        self.subject, self.body = parsed.subject, parsed.body
        self.mailing: store.Mailing | None = None
        self.sender: asyncio.Future | None = None  # the task that sends (see start)
        self.stopping = False  # the crawl is closing: record the send in flight, start no other

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.spider_closed, signal=signals.spider_closed)
        return spider

    async def start(self):
        settings = self.crawler.settings
        file = self.mailing_file
        try:
            self.mailing = await store.open_mailing(settings, file, self.subject, self.body)
        except store.TemplateChanged as exc:
            logger.error(
                "mailing: this file's %s was started with another subject or body; run it with the same ones "
                "(a mailing's message never changes half-way)",
                exc,
            )
            raise CloseSpider("mailing_template_changed") from None
        mailing_id = self.mailing.id
        logger.info(
            "mailing %d: %s file, %d record(s), %s, address column %d: %d valid, %d invalid%s",
            mailing_id,
            file.encoding,
            file.records,
            "a header row" if file.header else "no header row",
            file.column + 1,
            len(file.valid),
            len(file.rows) - len(file.valid),
            "" if self.mailing.created else " (continuing: this file was run before)",
        )
        lock = store.MailingLock(settings, mailing_id)
        if not await lock.acquire():
            logger.error("mailing %d: another run is sending this mailing now; not starting a second one", mailing_id)
            raise CloseSpider("mailing_busy")
        # The sends run in a task of their own: a graceful stop (SIGTERM) cancels start(), and a send
        # cancelled half-way would leave its row 'sending' (unknown to the next run) although it may never
        # have left. Shielded, the send in flight finishes (the engine waits for it), its outcome is
        # recorded, and no further row is started (``stopping``); spider_closed waits for the task.
        self.sender = asyncio.ensure_future(self.send_locked(mailing_id, lock))
        try:
            await asyncio.shield(self.sender)
        except asyncio.CancelledError:
            self.stopping = True
            raise
        return
        yield  # an async generator that yields nothing: every send goes through download_async

    async def send_locked(self, mailing_id: int, lock: store.MailingLock) -> None:
        try:
            await self.send_all(mailing_id)
        finally:
            await lock.release()

    async def spider_closed(self, reason: str) -> None:
        """A stopping crawl: the send in flight ends and is recorded before the pools close."""
        if self.sender is not None and not self.sender.done():
            self.stopping = True
            logger.info("mailing: %s: finishing the send in flight, starting no other", reason)
            with contextlib.suppress(Exception):
                await self.sender

    async def send_all(self, mailing_id: int) -> None:
        settings, stats = self.crawler.settings, self.crawler.stats
        lost, requeued = await store.recover(settings, mailing_id, settings.getbool("MAILING_RESEND_UNKNOWN"))
        if lost:
            logger.warning(
                "mailing %d: %d row(s) were being sent when a run stopped; their outcome is unknown and they are "
                "not sent again (MAILING_RESEND_UNKNOWN): rows %s",
                mailing_id,
                len(lost),
                ", ".join(map(str, lost[:REVIEW_LIST])),
            )
        if requeued:
            logger.warning(
                "mailing %d: MAILING_RESEND_UNKNOWN: %d row(s) of unknown outcome are sent again: rows %s",
                mailing_id,
                len(requeued),
                ", ".join(map(str, requeued[:REVIEW_LIST])),
            )
        before = await store.summary(settings, mailing_id)
        progress = Progress(before.valid, before.counts["sent"], settings.getfloat("MAILING_PROGRESS_SECONDS", 30.0))
        queued = before.counts["queued"]
        logger.info(
            "mailing %d: %d to send, %d sent before, %d unknown, %d invalid",
            mailing_id,
            queued,
            before.counts["sent"],
            before.counts["unknown"],
            before.counts["invalid"],
        )
        from crawler.removal.mail import provider_from_crawler

        provider = provider_from_crawler(self.crawler)
        unavailable = 0
        while not self.stopping and (recipients := await store.claim(settings, mailing_id, CLAIM_BATCH)):
            for recipient in recipients:
                if self.stopping:
                    await store.release_claimed(settings, mailing_id)
                    break
                outcome = await self.send_one(provider, mailing_id, recipient)
                stats.inc_value(f"mailing/{outcome}")
                queued -= 1
                if outcome == "sent":
                    progress.record_sent()
                unavailable = unavailable + 1 if outcome == "unavailable" else 0
                if unavailable >= UNAVAILABLE_IN_A_ROW:
                    await store.release_claimed(settings, mailing_id)
                    await self.report(mailing_id, progress)
                    logger.error(
                        "mailing %d: the mail provider refused %d sends in a row after its retries; stopping "
                        "(the rows left are queued: run the same file again later)",
                        mailing_id,
                        unavailable,
                    )
                    raise CloseSpider("mail_provider_unavailable")
                if progress.due():
                    logger.info("mailing %d: %s", mailing_id, progress.line(max(0, queued)))
        await self.report(mailing_id, progress)

    async def send_one(self, provider, mailing_id: int, recipient: store.Recipient) -> str:
        """One row: 'sending' committed, the send, its outcome recorded. Returns what happened."""
        from crawler.removal.mail import MailOutcomeUnknown, MailRejected, MailUnavailable

        settings = self.crawler.settings
        if not await store.begin_send(settings, mailing_id, recipient.row):
            return "skipped"
        body = render(self.mailing.body_template, recipient.token)
        try:
            message_id = await provider.send(recipient.address, self.mailing.subject, body)
        except MailRejected as exc:
            logger.warning("mailing %d: row %d refused by the provider: %s", mailing_id, recipient.row, exc.reason)
            await store.finish(
                settings, mailing_id, recipient.row, "invalid", reason=f"provider_rejected: {exc.reason}"
            )
            return "rejected"
        except MailOutcomeUnknown as exc:
            logger.warning(
                "mailing %d: row %d: %s; outcome unknown, reported for review", mailing_id, recipient.row, exc.reason
            )
            await store.finish(settings, mailing_id, recipient.row, "unknown", reason=f"answer_lost: {exc.reason}")
            return "unknown"
        except MailUnavailable as exc:
            logger.warning("mailing %d: row %d not sent: %s; left queued", mailing_id, recipient.row, exc.reason)
            await store.finish(settings, mailing_id, recipient.row, "queued", reason=f"unavailable: {exc.reason}")
            return "unavailable"
        await store.finish(settings, mailing_id, recipient.row, "sent", message_id=message_id)
        return "sent"

    async def report(self, mailing_id: int, progress: Progress) -> None:
        """The closing summary: sent, invalid by reason, unknown, and the rows to review."""
        settings, stats = self.crawler.settings, self.crawler.stats
        summary = await store.summary(settings, mailing_id)
        counts = summary.counts
        invalid = summary.invalid_by_reason()
        stats.set_value("mailing/id", mailing_id)
        for state in ("sent", "unknown", "invalid", "queued"):
            stats.set_value(f"mailing/total/{state}", counts[state])
        for reason, n in invalid.items():
            stats.set_value(f"mailing/total/invalid/{reason}", n)
        by_reason = ", ".join(f"{reason} {n}" for reason, n in sorted(invalid.items())) or "none"
        rate = progress.rate()
        logger.info(
            "mailing %d summary: sent %d of %d valid (%d in this run, %.2f/s); invalid %d (%s); unknown %d; "
            "left queued %d",
            mailing_id,
            counts["sent"],
            summary.valid,
            progress.sent_now,
            rate,
            counts["invalid"],
            by_reason,
            counts["unknown"],
            counts["queued"] + counts["claimed"],
        )
        for line in review_lines(summary):
            logger.info("mailing %d for review: %s", mailing_id, line)
        if not counts["queued"] and not counts["claimed"] and not counts["sending"]:
            await store.mark_finished(settings, mailing_id)
