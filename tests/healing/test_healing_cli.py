"""``python -m crawler.healing`` as a person runs it: list, diff, accept, reject and export versions, and
``check`` on sandbox pages (v1: every field ok and the memory learned; the structural redesign: healed,
printed as YAML that reads the pages, stored as a version). Bad input is one line and exit 2.

The module has a database of its own: the versions and memory it makes never reach other tests' crawls.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import sys
import urllib.request
import uuid

import psycopg
import pytest

from crawler.extraction.definitions import DEFAULT_DIRECTORY, load_definition, load_definition_text
from crawler.extraction.engine import extract_detail
from crawler.healing import cli_check, versions
from crawler.healing.__main__ import main as healing_main
from crawler.healing.cli_fetch import HttpFetcher
from crawler.healing.heal import heal_list
from sandbox.population import default_population, ground_truth
from support import ROOT, create_database, drop_database

SITE = "fastpeople"
FIELDS = ("full_name", "age", "aliases", "addresses", "locations", "phones", "emails", "relatives")


@pytest.fixture(scope="module")
def cli_database():
    name, url = create_database()
    yield url
    drop_database(name)


@pytest.fixture
def env(cli_database):
    """The command's environment: this module's database, no Redis, no LLM key (heuristics only)."""
    drop = ("REDIS_URL", "LOG_FILE", "LOG_FORMAT", "OPENAI_API_KEY", "OPENAI_BASE_URL")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "DATABASE_URL": cli_database}


def cli(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "crawler.healing", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def site_yaml():
    return load_definition(DEFAULT_DIRECTORY / f"{SITE}.yaml")


def quarantined_heal(database_url: str) -> versions.Version:
    """A heuristic heal of fastpeople's age field, quarantined (unique per call: its selector)."""
    yaml = site_yaml()
    raw = copy.deepcopy(yaml.raw)
    old, new = raw["detail"]["fields"]["age"], {"css": f"dd.age-{uuid.uuid4().hex[:8]}::text", "filters": ["int"]}
    raw["detail"]["fields"]["age"] = new

    async def record():
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            return await versions.record(
                conn,
                site=SITE,
                definition=raw,
                parent_sha256=yaml.sha256,
                base_sha256=yaml.sha256,
                origin="heuristic",
                confidence=0.6,
                changes={"detail.fields.age": {"old": old, "new": new, "score": 0.6, "margin": 0.2}},
                verified_on=[{"kind": "detail", "pages": 2}],
                auto_accept=0.75,
            )

    return asyncio.run(record())


def hold(database_url: str, version: versions.Version, count: int) -> str:
    """``count`` held findings under the version, inserted directly (random ciphertexts)."""
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute(
            "INSERT INTO websites (id, name, base_url) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (SITE, SITE, "http://127.0.0.1:8401"),
        )
        scan_id = db.execute("INSERT INTO scans (spider) VALUES ('scan') RETURNING id").fetchone()[0]
        for _ in range(count):
            db.execute(
                """INSERT INTO held_findings (scan_id, website_id, data_type, value_ciphertext, value_index,
                   listing_url_ciphertext, listing_url_index, key_id, confidence, definition_sha256)
                   VALUES (%s, %s, 'phone', %s, %s, %s, %s, 'test1', 0.9, %s)""",
                (scan_id, SITE, os.urandom(24), os.urandom(32), os.urandom(24), os.urandom(32), version.sha256),
            )
    return str(scan_id)


def held_and_found(database_url: str, scan_id: str) -> tuple[int, int]:
    with psycopg.connect(database_url, autocommit=True) as db:
        held = db.execute("SELECT count(*) FROM held_findings WHERE scan_id = %s", (scan_id,)).fetchone()[0]
        found = db.execute("SELECT count(*) FROM findings WHERE scan_id = %s", (scan_id,)).fetchone()[0]
    return held, found


def status_of(database_url: str, version_id: int) -> tuple[str, str | None]:
    with psycopg.connect(database_url, autocommit=True) as db:
        return db.execute(
            "SELECT status, decided_by FROM site_definition_versions WHERE id = %s", (version_id,)
        ).fetchone()


# ---- list, diff, export, accept, reject ----------------------------------------------------------


@pytest.mark.integration
def test_list_diff_and_export_a_version(env, cli_database, tmp_path):
    version = quarantined_heal(cli_database)
    listed = cli(env, "list", "--site", SITE)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == [
        "id",
        "site",
        "sha",
        "parent",
        "origin",
        "status",
        "confidence",
        "fields",
        "pages",
        "created",
    ]
    row = next(r.split() for r in rows if r.split()[0] == str(version.id))
    assert row[1:7] == [SITE, version.sha256[:12], version.parent_sha256[:12], "heuristic", "quarantined", "0.60"]
    assert row[7:9] == ["detail:age", "2"]
    assert str(version.id) not in cli(env, "list", "--status", "active").stdout.split()

    diff = cli(env, "diff", str(version.id))
    assert diff.returncode == 0, diff.stderr
    changed = [line for line in diff.stdout.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert diff.stdout.startswith(f"--- spiders/sites/{SITE}.yaml\n+++ version {version.id} (heuristic, quarantined)")
    assert any(version.definition["detail"]["fields"]["age"]["css"] in line for line in changed if line[0] == "+")
    assert any("following-sibling" in line for line in changed if line[0] == "-")  # the YAML's age
    assert not any("full_name" in line or "phones" in line for line in changed)  # nothing else moved

    exported = cli(env, "export", str(version.id))
    assert exported.returncode == 0, exported.stderr
    loaded = load_definition_text(exported.stdout, f"{SITE}.yaml")
    assert loaded.sha256 == version.sha256  # what is committed is what was verified
    assert list(loaded.raw) == list(site_yaml().raw)  # the YAML's key order, not jsonb's
    target = tmp_path / f"{SITE}.yaml"
    assert cli(env, "export", str(version.id), "-o", str(target)).returncode == 0
    assert target.read_text() == exported.stdout


@pytest.mark.integration
def test_accept_releases_the_held_findings(env, cli_database):
    version = quarantined_heal(cli_database)
    scan_id = hold(cli_database, version, 3)
    accepted = cli(env, "accept", str(version.id), "--by", "reviewer")
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.strip() == f"version {version.id} ({SITE}): active; 3 held finding(s) released into findings"
    assert held_and_found(cli_database, scan_id) == (0, 3)
    assert status_of(cli_database, version.id) == ("active", "reviewer")
    again = cli(env, "accept", str(version.id))
    assert again.returncode == 2 and again.stderr.strip().endswith("only a quarantined or rejected one can be accepted")


@pytest.mark.integration
def test_reject_deletes_the_held_findings(env, cli_database):
    version = quarantined_heal(cli_database)
    scan_id = hold(cli_database, version, 2)
    rejected = cli(env, "reject", str(version.id), "--by", "reviewer")
    assert rejected.returncode == 0, rejected.stderr
    assert rejected.stdout.strip() == f"version {version.id} ({SITE}): rejected; 2 held finding(s) deleted"
    assert held_and_found(cli_database, scan_id) == (0, 0)
    assert status_of(cli_database, version.id) == ("rejected", "reviewer")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["check", "nosuchsite", "--url", "http://127.0.0.1:9/"], "error: nosuchsite: no such site"),
        (["check", "{tmp}/fastpeople.yaml", "--url", "http://127.0.0.1:9/"], "invalid YAML"),
        (["check", "{tmp}/missing.yaml", "--url", "http://127.0.0.1:9/"], "missing.yaml: no such file"),
        (["check", SITE, "--url", "file:///etc/passwd"], "error: --url 1: expected an http(s):// URL"),
        (["diff", "abc"], "error: version 'abc': expected a version number"),
        (["export", "987654321"], "error: version 987654321: no such version"),
        (["accept", "987654321"], "error: version 987654321: no such version"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(env, tmp_path, args, says):
    (tmp_path / "fastpeople.yaml").write_text("id: fastpeople\nname: [unclosed\n")
    result = cli(env, *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and says in result.stderr, result.stderr
    assert result.stdout == ""


# ---- check on sandbox pages ----------------------------------------------------------------------


def configure(base: str, **changes) -> None:
    request = urllib.request.Request(
        base + "/_sandbox/config", data=json.dumps(changes).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


@pytest.fixture
def fastpeople(sandbox, cli_database):
    """fastpeople without its rate limit, restored to its defaults after; no versions yet (the pages are read
    with the YAML)."""
    with psycopg.connect(cli_database, autocommit=True) as db:
        db.execute("DELETE FROM site_definition_versions WHERE site = %s", (SITE,))
    base = sandbox[SITE]
    configure(base, defaults=True, reset=True, rate_limit_per_minute=0)
    yield base
    configure(base, defaults=True, reset=True)


def detail_pages(base: str, n: int = 3) -> tuple[list[str], list]:
    """URLs of the detail pages of the first ``n`` people listed on fastpeople, and those people."""
    people = [(p, ground_truth(p).get(SITE)) for p in default_population().people]
    chosen = [(p, path) for p, path in people if path][:n]
    return [base + path for _, path in chosen], [p for p, _ in chosen]


def memory_pages(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url, autocommit=True) as db:
        rows = db.execute("SELECT field, pages FROM heal_memory WHERE site = %s AND kind = 'detail'", (SITE,))
        return dict(rows.fetchall())


def report_lines(stderr: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in stderr.splitlines() if line.startswith("  ")}


def assert_nothing_personal(text: str, people: list, urls: list[str]) -> None:
    for person in people:
        assert person.last_name not in text and person.first_name not in text
    for url in urls:
        assert url not in text


def test_check_v1_detail_pages_are_all_ok_and_teach_the_memory(env, cli_database, fastpeople):
    urls, people = detail_pages(fastpeople)
    before = memory_pages(cli_database)
    result = cli(env, "check", SITE, *[a for url in urls for a in ("--url", url)])
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # the report is on stderr
    lines = report_lines(result.stderr)
    assert set(lines) == set(FIELDS)
    assert all(line[1] == "ok" for line in lines.values()), result.stderr
    assert lines["full_name"][2] == "3/3" and lines["phones"][2] == "3/3"
    assert f"{SITE} detail: 3 page(s), read with the YAML" in result.stderr
    assert_nothing_personal(result.stderr, people, urls)
    after = memory_pages(cli_database)
    assert all(after[name] == before.get(name, 0) + 3 for name in FIELDS), after
    with psycopg.connect(cli_database, autocommit=True) as db:
        (memory,) = db.execute(
            "SELECT memory FROM heal_memory WHERE site = %s AND kind = 'detail' AND field = 'phones'", (SITE,)
        ).fetchone()
        versions_made = db.execute(
            "SELECT count(*) FROM site_definition_versions WHERE site = %s AND origin <> 'yaml' "
            "AND base_sha256 = %s AND status = 'active'",
            (SITE, site_yaml().sha256),
        ).fetchone()
    assert memory["prints"] and memory["signature"]["kind"] == "phone"
    assert_nothing_personal(json.dumps(memory), people, urls)
    assert versions_made == (0,)


def test_check_heals_the_structural_layout_prints_and_writes_it(env, cli_database, fastpeople, tmp_path):
    urls, people = detail_pages(fastpeople)
    url_args = [a for url in urls for a in ("--url", url)]
    fetcher = HttpFetcher()
    v1 = [extract_detail(site_yaml(), fetcher.get(n, url)) for n, url in enumerate(urls, 1)]
    yaml_copy = tmp_path / f"{SITE}.yaml"  # a YAML outside spiders/sites/
    yaml_copy.write_text((DEFAULT_DIRECTORY / f"{SITE}.yaml").read_text())
    assert cli(env, "check", str(yaml_copy), *url_args).returncode == 0  # v1 teaches the memory

    configure(fastpeople, layout="structural")
    result = cli(env, "check", str(yaml_copy), *url_args, "--print", "--write")
    assert result.returncode == 0, result.stderr
    lines = report_lines(result.stderr)
    healed = [name for name, line in lines.items() if "healed" in line]
    assert {"full_name", "age", "phones", "addresses"} <= set(healed), result.stderr
    assert_nothing_personal(result.stderr, people, urls)

    definition = load_definition_text(result.stdout, f"{SITE}.yaml")
    structural = [extract_detail(definition, fetcher.get(n, url)) for n, url in enumerate(urls, 1)]
    for before, after in zip(v1, structural, strict=True):
        for name in healed:
            assert after[name] == before[name], name

    with psycopg.connect(cli_database, autocommit=True) as db:
        row = db.execute(
            "SELECT id, origin, status, base_sha256, verified_on, changes, sha256 FROM site_definition_versions "
            "WHERE site = %s ORDER BY id DESC LIMIT 1",
            (SITE,),
        ).fetchone()
        try:
            version_id, origin, status, base, verified_on, changes, sha = row
            assert origin == "heuristic" and status == "active" and base == site_yaml().sha256
            assert sha == definition.sha256
            assert verified_on[0]["kind"] == "detail" and verified_on[0]["pages"] == 3
            assert "http" not in json.dumps(verified_on)
            assert {f"detail.fields.{name}" for name in healed} == set(changes)
            assert f"--write: version {version_id} (heuristic, active" in result.stderr
        finally:  # later checks of v1 pages read with the YAML again
            db.execute("DELETE FROM site_definition_versions WHERE site = %s", (SITE,))


def test_check_asks_the_llm_for_what_heuristics_cannot_heal(
    env, cli_database, fastpeople, sandbox, monkeypatch, capsys
):
    """Result pages of the structural layout, the heuristics made to fail on the cards' places (in process, so
    the test does not depend on how good they are): the LLM (the sandbox's scripted double) proposes a selector,
    verified on the pages like a heuristic one, and the version says it came from the LLM."""
    llm = sandbox["llm"]
    urls = [f"{fastpeople}/name/john-smith", f"{fastpeople}/name/mary-johnson", f"{fastpeople}/name/james-brown"]
    url_args = [a for url in urls for a in ("--url", url)]
    assert cli(env, "check", SITE, *url_args).returncode == 0  # v1 teaches the memory of the cards
    configure(fastpeople, layout="structural")
    answer = {"content": {"fields": {"locations": {"css": "div.result-place::text"}}}}
    for path, body in (("reset", {}), ("script", {"answers": [answer]})):
        request = urllib.request.Request(
            f"{llm}/_sandbox/llm/{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=5).close()

    def heuristics_without_places(raw, pages, memory):
        heal = heal_list(raw, pages, memory)
        if heal.proposals.pop("locations", None) is not None:
            heal.definition["list"]["fields"]["locations"] = copy.deepcopy(raw["list"]["fields"]["locations"])
        heal.failed["locations"] = "no candidate with a clear margin"
        return heal

    monkeypatch.setattr(cli_check, "heal_list", heuristics_without_places)
    settings = [f"DATABASE_URL={cli_database}", "OPENAI_API_KEY=test-key", f"OPENAI_BASE_URL={llm}/v1", "REDIS_URL="]
    code = healing_main(
        ["check", SITE, *url_args, "--kind", "list", "--write", *[a for s in settings for a in ("-s", s)]]
    )
    stderr = capsys.readouterr().err
    assert code == 0, stderr
    lines = report_lines(stderr)
    assert "healed (llm," in " ".join(lines["locations"]) and lines["locations"][-1] == "3/3", stderr
    assert "healed (heuristic," in " ".join(lines["_card"])
    with urllib.request.urlopen(f"{llm}/_sandbox/llm/received", timeout=5) as reply:
        assert len(json.loads(reply.read())["requests"]) == 1
    with psycopg.connect(cli_database, autocommit=True) as db:
        origin, changes, verified_on = db.execute(
            "SELECT origin, changes, verified_on FROM site_definition_versions WHERE site = %s "
            "ORDER BY id DESC LIMIT 1",
            (SITE,),
        ).fetchone()
        db.execute("DELETE FROM site_definition_versions WHERE site = %s", (SITE,))
    assert origin == "llm" and changes["list.fields.locations"]["new"] == {"css": "div.result-place::text"}
    assert changes["list.fields.locations"]["method"] == "llm"
    assert verified_on[0]["kind"] == "list" and verified_on[0]["pages"] == 3


@pytest.mark.parametrize("site", ["truepeople", "spa"])
def test_check_reads_sites_behind_an_interstitial_and_in_a_browser(env, sandbox, site):
    """truepeople answers 503 "Just a moment..." with its clearance cookie first; spa is rendered in Chromium
    (its terms modal clicked, its wait run): both read every field."""
    base = sandbox[site]
    paths = [path for p in default_population().people if (path := ground_truth(p).get(site))][:2]
    result = cli(env, "check", site, *[a for path in paths for a in ("--url", base + path)])
    assert result.returncode == 0, result.stderr
    lines = report_lines(result.stderr)
    assert lines and all(line[1] == "ok" for line in lines.values()), result.stderr
    assert f"{site} detail: 2 page(s)" in result.stderr and "page action(s) failed" not in result.stderr
