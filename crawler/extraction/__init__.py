"""The declarative site-definition engine (format: spiders/sites/FORMAT.md).

    load_definitions(directory=None) -> {id: SiteDefinition}
    extract_list(definition, response) -> ListPage(candidates, next_url, empty)
    extract_detail(definition, response) -> record dict
    listing_from_record(record, site, scan_id, url) -> PersonListing

Pure functions over Scrapy responses, so saved pages are enough to test a site.
"""

from crawler.extraction.definitions import (
    DefinitionError,
    SiteDefinition,
    load_definition,
    load_definitions,
    parse_base_urls,
)
from crawler.extraction.engine import (
    ListPage,
    detail_not_found,
    extract_detail,
    extract_list,
    listing_from_record,
    marker_matches,
    record_from_candidate,
)

__all__ = [
    "DefinitionError",
    "ListPage",
    "SiteDefinition",
    "detail_not_found",
    "extract_detail",
    "extract_list",
    "listing_from_record",
    "load_definition",
    "load_definitions",
    "marker_matches",
    "parse_base_urls",
    "record_from_candidate",
]
