"""The ``scan`` spider: one person over every enabled site definition, in one crawl.

    scrapy crawl scan -a first_name=Jane -a last_name=Doe [-a state=IL -a city=... -a age=...
                      -a email=... -a phone=... -a scan_id=UUID -a sites=fastpeople,thatsthem]
    scrapy crawl scan -a scan_id=UUID      # a scan created with python -m crawler.store create-scan

With ``scan_id`` alone the person and the sites are read from the scans row (the target decrypted).

``sites`` picks definitions by id (disabled ones included when named); without it every ``enabled``
definition runs. Each request carries its site in ``meta["site"]`` with that site's rate, block
signatures and download slot, so the sites proceed side by side at their own pace.
"""

from __future__ import annotations

from crawler.extraction import SiteDefinition
from crawler.spider_args import SpiderArgumentError
from spiders.broker import BrokerSpider
from spiders.sites import SPIDERS


class ScanSpider(BrokerSpider):
    name = "scan"
    runs_all_sites = True

    @classmethod
    def site_definitions(cls, settings=None, only: list[str] | None = None) -> dict[str, SiteDefinition]:
        sites = {}
        for site_id, spidercls in SPIDERS.items():
            if only is None and not spidercls.definition.enabled:
                continue
            if only is not None and site_id not in only:
                continue
            sites.update(spidercls.site_definitions(settings))
        return sites

    @classmethod
    def chosen_sites(cls, kwargs: dict, settings=None) -> dict[str, SiteDefinition]:
        if "base_url" in kwargs:
            raise SpiderArgumentError("base_url", "not for scan: set SITES_BASE_URLS (id=url,id=url)")
        raw = (kwargs.get("sites") or "").strip()
        if not raw:
            return cls.site_definitions(settings)
        only = [s.strip() for s in raw.split(",") if s.strip()]
        if unknown := [s for s in only if s not in SPIDERS]:
            raise SpiderArgumentError("sites", f"unknown site {unknown[0]!r} (known: {', '.join(sorted(SPIDERS))})")
        return cls.site_definitions(settings, only)
