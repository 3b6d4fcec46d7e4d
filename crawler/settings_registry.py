"""Every component's declared settings, in the order the README documents them.

``crawler.settings`` reads each from the environment (``from_environment``),
``crawler.config`` validates them and renders the README's tables. The modules
listed here declare settings only (no heavy imports), so loading Scrapy's
settings stays fast and free of import cycles.
"""

from __future__ import annotations

from collections.abc import Mapping

import crawler.ai.settings_spec as ai
import crawler.api.settings_spec as api
import crawler.db.settings_spec as database
import crawler.healing.settings_spec as healing
import crawler.observability.settings_spec as observability
import crawler.removal.settings_spec as removal
import crawler.scheduling.settings_spec as scheduling
import crawler.security.settings_spec as security
import crawler.settings_spec as core
import crawler.worker.settings_spec as worker
import middlewares.settings_spec as middlewares
import pipelines.settings_spec as pipelines
import spiders.settings_spec as spiders
from crawler.setting import Component, Setting

COMPONENTS: tuple[Component, ...] = (
    core.REDIS,
    *database.COMPONENTS,
    *security.COMPONENTS,
    *observability.COMPONENTS,
    core.SCANS,
    *api.COMPONENTS,
    *worker.COMPONENTS,
    *removal.COMPONENTS,
    *pipelines.COMPONENTS,
    *scheduling.COMPONENTS,
    *middlewares.COMPONENTS,
    core.BROWSER,
    *spiders.COMPONENTS,
    *healing.COMPONENTS,
    *ai.COMPONENTS,
)


def declared() -> dict[str, Setting]:
    """Every declared setting by name."""
    return {setting.name: setting for component in COMPONENTS for setting in component.settings}


def from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Each declared setting's raw value: the environment variable of its name, else its default."""
    return {name: environ.get(name, setting.default) for name, setting in declared().items()}
