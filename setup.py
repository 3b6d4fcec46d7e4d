"""The egg `scrapyd-deploy` builds and uploads to scrapyd (see scrapyd/README.md).

It holds the project's code only: the `crawler` package (with its SQL
migrations), the spiders, pipelines and middlewares. The sandbox, tests,
benches and development tools (`tools/`: the demo, the matching evaluator)
stay out, and no module in the egg imports them (tests/e2e/test_egg.py);
dependencies are installed on the scrapyd host from requirements.txt.
"""

from setuptools import find_packages, setup

setup(
    name="crawler",
    version="1.0",
    packages=find_packages(include=["crawler", "crawler.*", "spiders", "spiders.*", "pipelines", "middlewares"]),
    package_data={
        "crawler.db": ["migrations/*.sql"],
        "crawler.api": ["templates/*.html", "static/*.css", "static/js/*.js"],  # the scans page
        "spiders.sites": ["*.yaml", "FORMAT.md"],
    },
    entry_points={"scrapy": ["settings = crawler.settings"]},
    zip_safe=False,
)
