"""Without DATABASE_URL, a crawl uses (and migrates) the embedded PostgreSQL under DATA_DIR."""

import psycopg

from crawler.db.embedded import embedded_url
from support import options


def test_crawl_without_database_url_uses_the_embedded_server(scrapy_cmd, crawl_env, sandbox, tmp_path):
    del crawl_env["DATABASE_URL"]
    crawl_env["DATA_DIR"] = str(tmp_path / "d")  # short: the server's socket lives here
    result = scrapy_cmd(
        ["crawl", "example", *options({"first_name": "John", "last_name": "Smith", "base_url": sandbox["directory"]})],
        crawl_env,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "using the embedded PostgreSQL" in result.stderr
    assert (tmp_path / "d" / "postgres" / "PG_VERSION").exists()
    with psycopg.connect(embedded_url(tmp_path / "d")) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 1
        assert conn.execute("SELECT status FROM scans").fetchone()[0] == "completed"
        assert conn.execute("SELECT count(*) FROM findings").fetchone()[0] > 0
