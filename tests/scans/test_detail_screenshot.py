"""A browser-rendered site's evidence is captured on its detail page while it is open
(spiders/broker.py): the accepted listing's finding has its screenshot, stored encrypted, and the
screenshots pipeline did not render the page a second time."""

from __future__ import annotations

import re
import uuid

import pytest

from crawler.security.evidence import ScreenshotStore
from sandbox.population import default_population
from support import ROOT, crawl_keyring, http

pytestmark = pytest.mark.e2e

SITE = "spa"


def test_spa_listing_screenshot_comes_from_the_detail_render(scrapy_cmd, crawl_env, sandbox, db):
    reply = http(f"{sandbox[SITE]}/_sandbox/config", data={"defaults": True, "reset": True})
    assert reply.status == 200, reply.body
    target = default_population().get("P000129")  # listed on spa (tests/e2e/test_sites_spa.py)
    scan_id = str(uuid.uuid4())
    env = {**crawl_env, "SITES_BASE_URLS": f"{SITE}={sandbox[SITE]}", "LOG_LEVEL": "INFO"}
    arguments = [
        *("-a", f"first_name={target.first_name}", "-a", f"last_name={target.last_name}"),
        *("-a", f"state={target.current.state}", "-a", f"age={target.age}"),
        *("-a", f"scan_id={scan_id}"),
    ]
    result = scrapy_cmd(["crawl", SITE, *arguments], env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = dict(re.findall(r"'(screenshots/[^']+)': (\d+)", result.stderr.rpartition("Dumping Scrapy stats")[2]))
    assert stats.get("screenshots/stored") == "1", stats
    assert "screenshots/captured" not in stats  # no second render by the pipeline
    shas = {r[0] for r in db.execute("SELECT screenshot_sha256 FROM findings WHERE scan_id = %s", (scan_id,))}
    assert len(shas) == 1 and None not in shas
    store = ScreenshotStore(ROOT / env["DATA_DIR"] / "screenshots", crawl_keyring())
    assert store.load(shas.pop()).startswith(b"\x89PNG")
