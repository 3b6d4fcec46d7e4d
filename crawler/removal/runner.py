"""One removal request through its site's opt-out flow, from the step it is at (one call per crawl).

    FlowRunner(crawler, request, definition, services).run()

The request (crawler.store.removals.load_request: listing URL and person decrypted, in memory only)
runs from its ``step``. Steps that work on a page (fill, click, submit, expect) need the page the
steps before them opened, so a request resumed at one replays the navigation since the last
``navigate`` (navigate, click and fill only: nothing is submitted again). Every step's outcome is in
the store before the next one starts:

- a submission (``submit``, ``send_email``): ``begin_submission`` (committed) before it leaves,
  ``finish_submission`` after its answer; False from begin = made already: never again this attempt.
  An ``expect`` right after a submission made earlier (by a crash-interrupted crawl, or by a person
  behind a CAPTCHA) cannot be checked any more and is passed.
- a CAPTCHA on any page, or a ``human`` step: ``needs_human`` with a task (the broker's opt-out page,
  no personal data); done, the flow resumes after it (after the submission the person made).
- ``email_confirmation``: ``awaiting_confirmation``; the inbox is polled for mail to the request's
  tagged address; the link opened -> ``confirmed``; not there yet -> looked at again after
  MAIL_INBOX_POLL_SECONDS; none within the step's hours -> a new attempt.
- a failed step: backoff (REMOVAL_RETRY_BASE_HOURS doubling, capped), ``failed`` after
  REMOVAL_STEP_FAILURES in a row.
- no steps left: the re-scan (crawler/removal/verify.py) once REMOVAL_CONFIRM_RESCAN_HOURS have passed
  since the submission (or its confirmation).

Log lines and stored reasons name the request id, the site, the step and its kind, never a value.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from crawler.removal import flows
from crawler.removal.drivers import BrowserDriver, HttpDriver, StepError, SubmissionNotSent
from crawler.store import removal_flow, removals

logger = logging.getLogger(__name__)

# in-run looks at the inbox before the request is left for a later crawl
INBOX_LOOKS_IN_RUN = 3
CAPTCHA_INSTRUCTIONS = (
    "Open the broker's opt-out page, solve the CAPTCHA and submit the form for this listing "
    "with the listing's address and the e-mail address shown here; then mark this task done."
)


class Stop(Exception):
    """The request waits (a task, the inbox, a backoff) or is over: this run ends here."""


@dataclass
class Services:
    """What the flows share in one crawl: settings, stats, the mail provider and the inbox."""

    settings: object
    stats: object
    mail: object = None  # crawler.removal.mail.MailProvider
    inbox: object = None  # crawler.removal.inbox
    clock: object = None  # () -> aware datetime; tests inject one

    def now(self) -> datetime:
        return self.clock() if self.clock else datetime.now(UTC)

    def hours(self, name: str) -> timedelta:
        return timedelta(hours=self.settings.getfloat(name))


class FlowRunner:
    def __init__(self, crawler, request: removals.RemovalRequest, definition, services: Services):
        self.crawler = crawler
        self.request = request
        self.definition = definition
        self.flow = flows.flow_of(definition)
        self.services = services
        self.settings = services.settings
        self.site = definition.id
        self.driver = None
        self.values: dict[str, str] = {}
        self.ran: set[int] = set()  # the steps this run made (replays excluded)

    # ---- bookkeeping ------------------------------------------------------------------------------

    def count(self, what: str) -> None:
        self.services.stats.inc_value(f"optout/{what}")
        self.services.stats.inc_value(f"optout/{self.site}/{what}")

    def log(self, message: str, *args) -> None:
        logger.info("removal %d (%s): " + message, self.request.id, self.site, *args)

    async def failed_step(self, index: int, reason: str) -> None:
        """Backoff, or failed after REMOVAL_STEP_FAILURES in a row."""
        where = f"step {index} {self.flow.steps[index].kind}" if index < len(self.flow.steps) else "verification"
        text = f"{where}: {reason}"
        status = await removal_flow.step_failed(
            self.settings,
            self.request.id,
            text,
            self.settings.getfloat("REMOVAL_RETRY_MAX_HOURS"),
            self.settings.getfloat("REMOVAL_RETRY_BASE_HOURS"),
        )
        self.count("failed" if status == "failed" else "step_failed")
        self.log("%s (%s)", text, "failed" if status == "failed" else "retried later")
        raise Stop

    # ---- the run ----------------------------------------------------------------------------------

    async def run(self) -> None:
        request = self.request
        if self.flow is None:
            await removal_flow.fail(self.settings, request.id, "no opt-out flow for the site")
            self.count("failed")
            return
        if request.listing_url is None:
            await removal_flow.fail(self.settings, request.id, "the listing is no longer stored")
            self.count("failed")
            return
        address = removals.tagged_address(self.settings, request.reference)
        self.values = flows.flow_values(self.flow, request.listing_url, request.person, address, request.reference)
        step = await self.check_flow_version()
        jar = f"optout-{request.id}-{request.attempt}"
        driver_class = BrowserDriver if self.flow.render == "browser" else HttpDriver
        self.driver = driver_class(self.crawler, self.definition, jar, self.flow.captcha)
        try:
            if step >= len(self.flow.steps):
                from crawler.removal.verify import verify

                await verify(self)
                return
            await self.replay_to(step)
            for index in range(step, len(self.flow.steps)):
                await self.run_step(index)
            await self.flow_done()
        except Stop:
            pass
        finally:
            await self.driver.close()

    async def check_flow_version(self) -> int:
        """The step to start at: 0 when the flow changed and this attempt made no submission."""
        request = self.request
        if request.flow_sha256 == self.flow.sha256:
            return min(request.step, len(self.flow.steps))
        restart = request.flow_sha256 is not None and request.submission == "none"
        step = 0 if restart else min(request.step, len(self.flow.steps))
        await removal_flow.advance(self.settings, request.id, step, flow_sha256=self.flow.sha256)
        if restart and request.step:
            self.log("the opt-out flow changed: restarting at step 0")
            self.count("flow_restarted")
        self.request.step = step
        return step

    def made_submission(self) -> bool:
        return self.request.submission in ("sent", "unknown")

    async def replay_to(self, step: int) -> None:
        """Open the page a resumed page step works on: navigate/click/fill since the last navigate."""
        if not self.flow.steps[step].needs_page or self.after_earlier_submission(step):
            return
        start = self.flow.last_navigate(step)
        if start is None:
            return
        for index in range(start, step):
            kind = self.flow.steps[index].kind
            if kind in ("navigate", "click", "fill"):
                await self.run_step(index, replay=True)

    async def run_step(self, index: int, replay: bool = False) -> None:
        step = self.flow.steps[index]
        handler = getattr(self, f"step_{step.kind}")
        if not replay:
            self.ran.add(index)
        try:
            await handler(index, step)
        except StepError as error:
            await self.failed_step(index, str(error))
        if not replay and not step.submission and step.kind != "email_confirmation":
            await removal_flow.advance(self.settings, self.request.id, index + 1)
            self.request.step = index + 1

    async def after_page(self, index: int) -> None:
        """Every page the flow opens is checked for a CAPTCHA (a task, never solved)."""
        if self.driver.captcha():
            await self.captcha_task(index)

    # ---- steps ------------------------------------------------------------------------------------

    async def step_navigate(self, index: int, step: flows.Navigate) -> None:
        response = await self.driver.get(flows.url_of(self.flow, step.url, self.values))
        if self.driver.status in (404, 410) and step.moved_page:
            await self.driver.get(flows.url_of(self.flow, step.moved_page, self.values))
            if self.driver.status >= 400:
                raise StepError(f"HTTP {self.driver.status} on the page the opt-out moved from")
            if self.driver.captcha():
                await self.captcha_task(index)
            response = await self.driver.follow(step.moved_link)
            self.count("moved_page_followed")
        if self.driver.status >= 400:
            raise StepError(f"HTTP {self.driver.status}")
        await self.after_page(index)
        return response

    async def step_fill(self, index: int, step: flows.Fill) -> None:
        await self.driver.fill({name: flows.fill_in(value, self.values) for name, value in step.fields})

    async def step_click(self, index: int, step: flows.Click) -> None:
        target = flows.Selector(
            flows.fill_in(step.target.css, self.values) if step.target.css else None,
            flows.fill_in(step.target.xpath, self.values) if step.target.xpath else None,
        )
        await self.driver.click(target)
        if self.driver.status >= 400:
            raise StepError(f"HTTP {self.driver.status}")
        await self.after_page(index)

    def after_earlier_submission(self, index: int) -> bool:
        """An expect right after a submission or a confirmation this run did not make (a crashed run,
        a person behind a CAPTCHA, an earlier run): the page it checked is gone, it cannot be checked."""
        step = self.flow.steps[index]
        if step.kind != "expect" or index == 0 or (index - 1) in self.ran:
            return False
        previous = self.flow.steps[index - 1]
        return previous.submission or previous.kind == "email_confirmation"

    async def step_expect(self, index: int, step: flows.Expect) -> None:
        if self.after_earlier_submission(index):
            self.log("step %d expect: its page was answered before this run, not checked again", index)
            return
        markers = tuple(
            {kind: flows.fill_in(value, self.values) for kind, value in marker.items()} for marker in step.marker
        )
        if not await self.driver.expect(markers):
            if self.driver.captcha():
                await self.captcha_task(index)
            raise StepError("the expected marker is not on the page")

    async def step_submit(self, index: int, step: flows.Submit) -> None:
        if not await self.begin(index):
            return
        try:
            await self.driver.submit(step.form, step.css)
        except SubmissionNotSent as error:
            await removal_flow.finish_submission(self.settings, self.request.id, self.request.attempt, "none")
            await self.failed_step(index, str(error))
        except StepError as error:
            await self.finish(index, "unknown", reason=str(error))
            return
        await self.finish(index, "sent")
        await self.after_page(index + 1)

    async def step_send_email(self, index: int, step: flows.SendEmail) -> None:
        from crawler.removal.mail import MailOutcomeUnknown, MailRejected, MailUnavailable

        # the letter first: a template that cannot be filled must not leave a submission 'sending'
        to, subject, body = (flows.fill_in(text, self.values) for text in (step.to, step.subject, step.body))
        if not await self.begin(index):
            return
        try:
            message_id = await self.services.mail.send(to, subject, body)
        except MailRejected as error:
            await removal_flow.finish_submission(self.settings, self.request.id, self.request.attempt, "none")
            await removal_flow.fail(
                self.settings, self.request.id, f"the mail provider rejected the letter: {error.reason}"
            )
            self.count("failed")
            raise Stop from None
        except MailUnavailable as error:
            await removal_flow.finish_submission(self.settings, self.request.id, self.request.attempt, "none")
            await self.failed_step(index, f"mail unavailable: {error.reason}")
        except MailOutcomeUnknown as error:
            await self.finish(index, "unknown", reason=error.reason)
            return
        await self.finish(index, "sent", message_id=str(message_id))

    async def begin(self, index: int) -> bool:
        """Record the submission before it leaves; False: made already this attempt (go on after it)."""
        if await removal_flow.begin_submission(self.settings, self.request.id, self.request.attempt, index):
            return True
        self.log(
            "step %d %s: this attempt's submission was made already, not again", index, self.flow.steps[index].kind
        )
        self.ran.discard(index)  # not made by this run: an expect after it is not checked
        await removal_flow.advance(self.settings, self.request.id, index + 1)
        return False

    async def finish(self, index: int, outcome: str, **detail) -> None:
        info = {"kind": self.flow.steps[index].kind, **detail}
        await removal_flow.finish_submission(self.settings, self.request.id, self.request.attempt, outcome, info)
        self.request.submission = outcome
        self.request.submitted_at = self.services.now()
        self.request.step = index + 1
        self.count("submitted" if outcome == "sent" else "submission_unknown")
        self.log("step %d %s: submitted (%s)", index, self.flow.steps[index].kind, outcome)

    async def step_human(self, index: int, step: flows.Human) -> None:
        task_values = {name: self.values[name] for name in ("opt_out_url", "base_url")}
        url = flows.url_of(self.flow, step.url or "{opt_out_url}", task_values)
        instructions = flows.fill_in(step.instructions, task_values)
        # a flow with no submission step of its own (a phone call, a letter by post): what the person
        # does is the request, so "done" counts as the submission and verification follows
        by_person = self.flow.submission_after(0) is None and not self.made_submission()
        await self.task(index, step.task, instructions, url, index + 1, by_person=by_person)

    async def captcha_task(self, index: int) -> None:
        """A CAPTCHA stands in the way: the person makes the submission (if one is left) themselves."""
        submission = None if self.made_submission() else self.flow.submission_after(index)
        resume, by_person = (submission + 1, True) if submission is not None else (index + 1, False)
        await self.task(index, "captcha", CAPTCHA_INSTRUCTIONS, self.flow.url, resume, by_person=by_person)

    async def task(self, index: int, kind: str, instructions: str, url: str, resume: int, by_person: bool) -> None:
        task_id = await removal_flow.create_task(
            self.settings, self.request.id, kind, instructions, url, index, resume, by_person, {"step": index}
        )
        self.count("needs_human")
        self.log("step %d: needs a person (%s task %s)", index, kind, task_id)
        raise Stop

    async def step_email_confirmation(self, index: int, step: flows.EmailConfirmation) -> None:
        request, services = self.request, self.services
        poll = timedelta(seconds=self.settings.getfloat("MAIL_INBOX_POLL_SECONDS"))
        if request.status != "awaiting_confirmation":
            await removal_flow.wait_until(
                self.settings, request.id, services.now() + poll, status="awaiting_confirmation", step=index
            )
            request.status = "awaiting_confirmation"
        started = request.submitted_at or services.now()
        deadline = started + timedelta(hours=step.within_hours)
        address = self.values["email"]
        for look in range(INBOX_LOOKS_IN_RUN):
            link = await self.confirmation_link(address, step)
            if link is not None:
                await self.open_confirmation(index, link)
                return
            if services.now() > deadline:
                reason = f"no confirmation e-mail within {step.within_hours:g} h"
                status = await removal_flow.restart_attempt(self.settings, request.id, reason, {"step": index})
                self.count("confirmation_missing")
                self.log("step %d email_confirmation: %s (%s)", index, reason, status)
                raise Stop
            if look < INBOX_LOOKS_IN_RUN - 1:
                await asyncio.sleep(poll.total_seconds())
        await removal_flow.wait_until(self.settings, request.id, services.now() + poll)
        self.count("waiting_for_email")
        self.log("step %d email_confirmation: no e-mail yet, looking again later", index)
        raise Stop

    async def confirmation_link(self, address: str, step: flows.EmailConfirmation) -> str | None:
        """The newest matching link in mail to the request's address (older ones: earlier attempts)."""
        inbox = self.services.inbox
        messages = await inbox.find(address)
        for message in reversed(messages):
            link = inbox.confirmation_link(message, step.sender, step.link)
            if link:
                return link
        return None

    async def open_confirmation(self, index: int, link: str) -> None:
        await self.driver.get(link)
        status = self.driver.status
        if status >= 500:
            raise StepError(f"HTTP {status} opening the confirmation link")
        if status >= 400:  # expired or used: the broker wants a new request
            reason = f"the confirmation link was refused (HTTP {status})"
            await removal_flow.restart_attempt(self.settings, self.request.id, reason, {"step": index})
            self.count("confirmation_refused")
            raise Stop
        await self.after_page(index)
        now = self.services.now()
        await removal_flow.advance(self.settings, self.request.id, index + 1, status="confirmed", confirmed_at=now)
        self.request.status, self.request.confirmed_at, self.request.step = "confirmed", now, index + 1
        self.count("confirmed")
        self.log("step %d email_confirmation: link opened, confirmed", index)

    async def flow_done(self) -> None:
        """Every step ran: the verifying re-scan is due REMOVAL_CONFIRM_RESCAN_HOURS after the
        submission (or its confirmation)."""
        due = self.verification_due()
        await removal_flow.wait_until(self.settings, self.request.id, due)
        self.log("flow done, verification re-scan due in %.0f s", max(0.0, (due - self.services.now()).total_seconds()))

    def verification_due(self) -> datetime:
        request = self.request
        moments = [m for m in (request.submitted_at, request.confirmed_at) if m is not None]
        since = max(moments) if moments else self.services.now()
        return since + self.services.hours("REMOVAL_CONFIRM_RESCAN_HOURS")
