"""Helpers of the API tests: an in-process client with a key per user, and findings written the way
the crawl's pipelines write them."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import psycopg

from crawler.api.app import create_app
from crawler.db.pool import close_pools
from crawler.items import PersonListing
from crawler.security.evidence import ScreenshotStore
from crawler.store.keys import create_key
from pipelines.encrypt import EncryptPipeline
from support import crawl_keyring


class Api:
    """An app over ASGI with a key per user: ``await api.get(user, path)``."""

    def __init__(self, settings):
        self.settings = settings
        self.app = create_app(settings)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://api.test")
        self.keys: dict[str, str] = {}

    def user(self, name: str | None = None) -> str:
        """A new user (unique name) with a key of its own."""
        name = name or f"user-{uuid.uuid4().hex[:8]}"
        self.keys[name] = create_key(self.settings, name)
        return name

    def auth(self, user: str | None) -> dict:
        return {"Authorization": f"Bearer {self.keys[user]}"} if user else {}

    async def request(self, method: str, user: str | None, path: str, **kwargs) -> httpx.Response:
        headers = {**self.auth(user), **kwargs.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def get(self, user, path, **kwargs):
        return await self.request("GET", user, path, **kwargs)

    async def post(self, user, path, **kwargs):
        return await self.request("POST", user, path, **kwargs)

    async def delete(self, user, path, **kwargs):
        return await self.request("DELETE", user, path, **kwargs)

    async def start_scan(self, user, person=None, **body) -> str:
        response = await self.post(user, "/api/scans", json={"person": person or PERSON, **body})
        assert response.status_code == 202, response.text
        return response.json()["id"]

    async def aclose(self):
        await self.http.aclose()
        if self.app.state.redis is not None:
            await self.app.state.redis.aclose()
        await close_pools()


PERSON = {"first_name": "Jane", "last_name": "Doe", "state": "IL", "age": 42}


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)


class _Stats:
    def inc_value(self, *args, **kwargs):
        pass


def write_listing(settings, scan_id: str, site: str, listing: dict, screenshot: bytes | None = None) -> list[int]:
    """Seal a listing with the encrypt pipeline (the crawl's contexts and key ring), store its screenshot
    with ScreenshotStore, insert the rows; returns the finding ids."""
    ring = crawl_keyring()
    shot = None
    with psycopg.connect(settings["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO websites (id, name, base_url) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (site, site, f"http://127.0.0.1/{site}"),
        )
        if screenshot is not None:
            shot = ScreenshotStore(Path(settings["SCREENSHOTS_DIR"]), ring).save(screenshot)
            conn.execute(
                "INSERT INTO screenshots (sha256, path, mime_type, bytes, key_id) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                shot.row(),
            )
        item = PersonListing(
            site=site,
            scan_id=scan_id,
            accepted=True,
            confidence=listing.get("confidence", 0.9),
            evidence={"name": {"level": "exact", "weight": 1.0}},
            screenshot_sha256=shot.sha256 if shot else None,
            **{k: v for k, v in listing.items() if k != "confidence"},
        )
        rows = EncryptPipeline(ring, _Stats()).process_item(item)
        columns = ", ".join(rows.columns)
        marks = ", ".join(["%s"] * len(rows.columns))
        ids = []
        for row in rows.rows:
            ids.append(
                conn.execute(f"INSERT INTO findings ({columns}) VALUES ({marks}) RETURNING id", row).fetchone()[0]
            )
    return ids
