"""``python -m crawler.extraction check PATH.yaml [--url URL] [--kind list|detail]`` as a newcomer runs it."""

import functools
import json
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
DRAFT = {
    "id": "draft",
    "name": "Draft",
    "base_url": "http://draft.test",
    "search": [{"requires": ["first_name", "last_name"], "url": "/s/{first_name|slug}-{last_name|slug}"}],
    "list": {
        "items": {"css": "div.card"},
        "fields": {"url": {"css": "a.name::attr(href)"}, "full_name": {"css": "a.name::text"}},
    },
    "detail": {
        "fields": {
            "full_name": {"css": "h1::text"},
            "age": {"regex": "Age:? (\\d+)"},
            "locations": {"join": [{"jsonld": "address.addressLocality"}, {"jsonld": "address.addressRegion"}]},
        }
    },
}


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "crawler.extraction", "check", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write(tmp_path: Path, raw: dict, name: str = "draft") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(raw))  # JSON is YAML
    return path


@pytest.fixture
def fixture_server():
    """tests/extraction/fixtures/ over HTTP on a free port."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(FIXTURES)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=30)
    server.server_close()


def test_a_valid_draft_anywhere_is_ok(tmp_path):
    path = write(tmp_path, DRAFT)
    result = check(str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: ok (site 'draft'")


def test_a_bad_draft_is_one_line_naming_file_and_reason(tmp_path):
    broken = json.loads(json.dumps(DRAFT))
    broken["search"][0]["url"] = "s/{last_name}"
    path = write(tmp_path, broken)
    result = check(str(path))
    assert result.returncode == 1
    assert result.stderr == f"{path}: search.0.url: must start with '/' (a path joined to base_url)\n"
    assert result.stdout == ""
    missing = check(str(tmp_path / "absent.yaml"))
    assert missing.returncode == 1
    assert missing.stderr.startswith(f"{tmp_path / 'absent.yaml'}: cannot read")


def test_the_id_must_still_equal_the_file_name(tmp_path):
    result = check(str(write(tmp_path, DRAFT, name="newsite")))
    assert result.returncode == 1
    assert result.stderr.strip().endswith("id: must equal the file name 'newsite'")


def test_url_prints_what_each_field_extracted(tmp_path, fixture_server):
    path = str(write(tmp_path, DRAFT))
    detail = check(path, "--url", f"{fixture_server}/split_address.html", "--kind", "detail")
    assert detail.returncode == 0, detail.stderr
    assert "draft detail:" in detail.stdout
    assert "'full_name': 'Jane Roe'" in detail.stdout
    assert "'age': 45" in detail.stdout
    assert "'locations': ['Springfield, IL', 'Peoria, IL']" in detail.stdout
    listing = check(path, "--url", f"{fixture_server}/cards.html")
    assert listing.returncode == 0, listing.stderr
    assert "draft list: 2 candidate(s)" in listing.stdout
    assert f"'url': '{fixture_server}/p/2'" in listing.stdout
    missing = check(path, "--url", f"{fixture_server}/absent.html")
    assert missing.returncode == 1
    assert "HTTP 404 (the spider reports this page as not_found, unread)" in missing.stderr
