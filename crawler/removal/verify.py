"""Verification by re-scan: the listing page itself, never the broker's "success" page.

Once a request's steps are all done and REMOVAL_CONFIRM_RESCAN_HOURS have passed since its submission
(or its confirmation), the listing URL is fetched as the scan fetches it (the site's own render mode
and detail actions, in a cookiejar or browser context of its own):

- gone (HTTP 404/410, or the site's ``detail.not_found`` marker): ``removed``, and its findings;
- still there: a new attempt (``requested``, attempt + 1, step 0) while attempt < REMOVAL_MAX_ATTEMPTS,
  else ``failed`` "still listed after N attempts";
- the page could not be read (another HTTP error, a timeout, a CAPTCHA, a page that is neither the
  listing nor the not-found answer): a failed step, retried with backoff; never a new submission.
"""

from __future__ import annotations

from crawler.extraction import detail_not_found, extract_detail
from crawler.extraction.actions import page_methods
from crawler.extraction.templates import query_values
from crawler.removal.drivers import BrowserDriver, HttpDriver, StepError
from crawler.store import removal_flow

GONE_STATUSES = (404, 410)


def still_listed(definition, page) -> bool:
    """Whether the page is the listing: its detail fields read a name, as the scan read it."""
    try:
        return bool(extract_detail(definition, page).get("full_name"))
    except Exception:  # a page the definition cannot read at all is not the listing
        return False


async def verify(runner) -> None:
    """Look at the listing (runner: crawler.removal.runner.FlowRunner) if its verification is due."""
    request, services, definition = runner.request, runner.services, runner.definition
    due = runner.verification_due()
    if services.now() < due:
        await removal_flow.wait_until(runner.settings, request.id, due)
        return
    jar = f"verify-{request.id}-{request.attempt}"
    browser = definition.render == "browser"
    driver = (BrowserDriver if browser else HttpDriver)(runner.crawler, definition, jar)
    try:
        methods = ()
        if browser:
            actions = definition.raw.get("detail", {}).get("actions")
            methods = page_methods(actions, query_values(request.person) if request.person else {})
        try:
            page = await driver.get(request.listing_url, page_methods=methods)
        except StepError as error:
            await runner.failed_step(len(runner.flow.steps), str(error))
        status = driver.status
        if status in GONE_STATUSES or (status < 400 and detail_not_found(definition, page)):
            await removal_flow.mark_removed(runner.settings, request.id, {"status": status})
            runner.count("removed")
            runner.log("verified: the listing is gone (removed)")
            return
        if status >= 400:
            await runner.failed_step(len(runner.flow.steps), f"HTTP {status} on the listing")
        # "still listed" starts a new attempt (a second submission): only for the listing itself, not
        # for a CAPTCHA or any other page the site answered with
        if driver.captcha():
            await runner.failed_step(len(runner.flow.steps), "a CAPTCHA instead of the listing: not verified")
        if not still_listed(definition, page):
            await runner.failed_step(len(runner.flow.steps), "neither the listing nor the site's not-found page")
        after = await removal_flow.verification_failed(runner.settings, request.id, {"attempt": request.attempt})
        runner.count("still_listed")
        runner.log("verified: still listed (%s)", "a new attempt" if after == "requested" else after)
    finally:
        await driver.close()
