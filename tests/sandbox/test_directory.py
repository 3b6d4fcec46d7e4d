import json
import signal
import socket
import subprocess
import sys

import pytest
from aiohttp.test_utils import TestClient, TestServer
from parsel import Selector

import sandbox.sites  # noqa: F401 - registers the services
from sandbox.population import default_population
from sandbox.server import SERVICES, build_app
from support import ROOT


@pytest.fixture
async def client():
    async with TestClient(TestServer(build_app(SERVICES["directory"], {}))) as test_client:
        yield test_client


async def get_html(client, path, status=200):
    response = await client.get(path)
    assert response.status == status
    return Selector(text=await response.text())


async def test_health(client):
    response = await client.get("/health")
    assert await response.json() == {"status": "ok", "service": "directory"}


async def test_search_pages_ten_results_with_a_next_link(client):
    total = len(default_population().search("John", "Smith"))
    first = await get_html(client, "/search?first=john&last=SMITH")
    assert first.css("p.count::text").get() == f"{total} records found"
    assert len(first.css("div.result")) == 10
    last_page = -(-total // 10)
    assert first.css("a.next::attr(href)").get().endswith("page=2")
    final = await get_html(client, f"/search?first=John&last=Smith&page={last_page}")
    assert len(final.css("div.result")) == total - 10 * (last_page - 1) and not final.css("a.next")


async def test_search_errors_and_empty_results(client):
    await get_html(client, "/search?first=John", status=400)
    await get_html(client, "/search?first=John&last=Smith&page=x", status=400)
    empty = await get_html(client, "/search?first=Nobody&last=Atall")
    assert empty.css("p.empty::text").get() == "No records found"
    home = await get_html(client, "/")
    assert home.css("form[action='/search']")


async def test_detail_page_matches_the_population(client):
    person = next(p for p in default_population().people if p.emails and p.relatives)
    page = await get_html(client, f"/person/{person.id}")
    assert page.css("h1.name::text").get() == person.full_name
    assert page.css("span.age::text").get() == f"Age {person.age}"
    assert page.css("ul.emails li::text").getall() == person.emails
    assert page.css("ul.phones li::text").getall() == [p.formatted() for p in person.phones]
    assert page.css("ul.addresses li::text").getall() == [a.line() for a in person.addresses]
    assert len(page.css("ul.relatives a")) == len(person.relatives)
    await get_html(client, "/person/P999999", status=404)


def test_cli_writes_the_ports_file_and_stops_on_sigterm(tmp_path):
    ports_file = tmp_path / "ports.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--only",
            "directory",
            "--directory-port",
            "0",
            "--ports-file",
            str(ports_file),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    first_line = process.stdout.readline()
    urls = json.loads(ports_file.read_text())
    assert urls["directory"] in first_line and "/health" in first_line
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_cli_port_in_use_is_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sandbox", "--directory-port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.strip() == f"sandbox: directory: port {port} is already in use"
    bad = subprocess.run(
        [sys.executable, "-m", "sandbox", "--only", "nope"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and "unknown service(s) nope" in bad.stderr
