"""`scrapy shell <url>` in the project: the page is fetched and the site-definition helper runs on it."""

from support import run_scrapy

HELPER = "__import__('crawler.extraction.shell', fromlist=['run']).run('fastpeople', response)"


def test_scrapy_shell_runs_a_site_definition_on_a_live_page(crawl_env, sandbox):
    result = run_scrapy(
        ["shell", f"{sandbox['fastpeople']}/name/john-smith_chicago-il", "-c", HELPER], crawl_env, timeout=60
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fastpeople list: " in result.stdout and "candidate(s)" in result.stdout
    assert "'full_name': 'John" in result.stdout
    assert "Traceback" not in result.stderr  # no component breaks inside the shell's thread
