"""GET /api/scans/{id}/events over a real uvicorn server: Redis messages forwarded as they are
published, the row followed for what publishes nothing, and the end with ``completed``."""

import asyncio
import socket
import uuid

import httpx
import orjson
import psycopg
import pytest
import redis.asyncio
import uvicorn

from support import REDIS_URL

pytestmark = pytest.mark.integration

DEADLINE = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def served():
    """Serve an Api's app on a free port (httpx's ASGI transport would buffer the stream)."""
    servers = []

    async def serve(api):
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(api.app, host="127.0.0.1", port=port, log_level="warning"))
        task = asyncio.create_task(server.serve())
        servers.append((server, task))
        async with asyncio.timeout(DEADLINE):
            while not server.started:  # noqa: ASYNC110 (uvicorn offers a flag, no event)
                await asyncio.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, task in servers:
        server.should_exit = True
        await task


class Events:
    """The stream's events, one at a time: (event, data)."""

    def __init__(self, response):
        self.lines = response.aiter_lines()
        self.comments = 0

    async def next(self) -> tuple[str, dict]:
        event, data = None, None
        async with asyncio.timeout(DEADLINE):
            async for line in self.lines:
                if line.startswith(":"):
                    self.comments += 1
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = orjson.loads(line[6:])
                elif line == "" and event is not None:
                    return event, data
        raise AssertionError("the stream ended")

    async def until(self, name: str) -> dict:
        while True:
            event, data = await self.next()
            if event == name:
                return data


def update(url: str, sql: str, *params) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql, params)


async def test_events_from_redis_and_the_row_end_with_completed(redis_api, served):
    api = redis_api
    user = api.user()
    scan_id = await api.start_scan(user, sites=["fastpeople"])
    base = await served(api)
    channel = api.settings.get("SCAN_EVENTS_CHANNEL").format(
        scan_id=scan_id, prefix=api.settings.get("REDIS_KEY_PREFIX")
    )
    publisher = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        async with (
            httpx.AsyncClient(base_url=base, timeout=DEADLINE) as http,
            http.stream("GET", f"/api/scans/{scan_id}/events", headers=api.auth(user)) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = Events(response)
            event, first = await events.next()
            assert event == "snapshot" and first["status"] == "pending"
            assert [p["site"] for p in first["progress"]] == ["fastpeople"]

            progress = {"event": "progress", "scan_id": scan_id, "site": "fastpeople", "stage": "search", "counts": {}}
            await publisher.publish(channel, orjson.dumps(progress))
            forwarded = await events.until("progress")
            assert forwarded["site"] == "fastpeople" and forwarded["stage"] == "search"

            counters = {"fastpeople": {"listings": 2, "accepted": 1, "stored": 1, "outcome": "found"}}
            update(
                api.settings["DATABASE_URL"],
                "UPDATE scans SET status = 'running', counters = %s, updated_at = now() WHERE id = %s",
                orjson.dumps(counters).decode(),
                scan_id,
            )
            running = await events.until("snapshot")
            assert running["status"] == "running" and running["progress"][0]["listings"] == 2

            done = {"event": "completed", "scan_id": scan_id, "status": "completed", "counters": counters}
            await publisher.publish(channel, orjson.dumps(done))
            completed = await events.until("completed")
            assert completed["status"] == "completed"
            rest = [line async for line in events.lines]
            assert not [line for line in rest if line.startswith("event:")]  # the stream has ended
    finally:
        await publisher.aclose()


async def test_a_failure_that_publishes_nothing_still_ends_the_stream(redis_api, served):
    api = redis_api
    user = api.user()
    scan_id = await api.start_scan(user)
    base = await served(api)
    async with (
        httpx.AsyncClient(base_url=base, timeout=DEADLINE) as http,
        http.stream("GET", f"/api/scans/{scan_id}/events", headers=api.auth(user)) as response,
    ):
        events = Events(response)
        assert (await events.next())[0] == "snapshot"
        update(
            api.settings["DATABASE_URL"],
            "UPDATE scans SET status = 'failed', error = 'crawl process crashed', finished_at = now(), "
            "updated_at = now() WHERE id = %s",
            scan_id,
        )
        completed = await events.until("completed")
        assert completed["status"] == "failed" and completed["error"] == "crawl process crashed"


async def test_without_redis_the_row_is_followed_to_the_end(api, served):
    user = api.user()
    scan_id = await api.start_scan(user, sites=["radaris"])
    base = await served(api)
    async with (
        httpx.AsyncClient(base_url=base, timeout=DEADLINE) as http,
        http.stream("GET", f"/api/scans/{scan_id}/events", headers=api.auth(user)) as response,
    ):
        events = Events(response)
        assert (await events.next())[1]["status"] == "pending"
        update(
            api.settings["DATABASE_URL"],
            "UPDATE scans SET status = 'running', started_at = now(), updated_at = now() WHERE id = %s",
            scan_id,
        )
        assert (await events.until("snapshot"))["status"] == "running"
        counters = {"radaris": {"listings": 1, "accepted": 0, "rejected": 1, "outcome": "no_match"}}
        update(
            api.settings["DATABASE_URL"],
            "UPDATE scans SET status = 'completed', counters = %s, finished_at = now(), updated_at = now() "
            "WHERE id = %s",
            orjson.dumps(counters).decode(),
            scan_id,
        )
        completed = await events.until("completed")
        assert completed["status"] == "completed"
        assert completed["progress"][0]["outcome"] == "no_match"


async def test_a_finished_scan_answers_its_snapshot_and_completed_at_once(api):
    user = api.user()
    scan_id = await api.start_scan(user)
    await api.post(user, f"/api/scans/{scan_id}/cancel")
    response = await api.get(user, f"/api/scans/{scan_id}/events")  # buffered: it must end by itself
    assert response.status_code == 200
    names = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert names == ["snapshot", "completed"]
    assert '"status":"cancelled"' in response.text
    other = await api.get(api.user(), f"/api/scans/{scan_id}/events")
    assert other.status_code == 404
    assert (await api.get(user, f"/api/scans/{uuid.uuid4()}/events")).status_code == 404
