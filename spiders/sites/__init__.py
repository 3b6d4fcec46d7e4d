"""One BrokerSpider subclass per site definition (``spiders/sites/<id>.yaml``), named by its id.

Adding a site is adding a YAML file: ``scrapy list`` shows it and ``scrapy crawl <id>`` runs it. A
definition that does not validate is left out with one line on stderr naming the file, key and reason.
"""

from __future__ import annotations

import sys
from pathlib import Path

from crawler.extraction import DefinitionError, load_definition
from spiders.broker import BrokerSpider

DIRECTORY = Path(__file__).resolve().parent


def _spider_class(definition) -> type[BrokerSpider]:
    class_name = "".join(part.title() for part in definition.id.split("_")) + "Spider"
    return type(class_name, (BrokerSpider,), {
        "name": definition.id, "definition": definition, "__module__": __name__,
        "__doc__": f"{definition.name}: spiders/sites/{definition.id}.yaml",
    })  # fmt: skip


SPIDERS: dict[str, type[BrokerSpider]] = {}
for _path in sorted(DIRECTORY.glob("*.yaml")):
    try:
        _definition = load_definition(_path)
    except DefinitionError as _error:
        print(f"error: {_error} (site left out)", file=sys.stderr)
        continue
    _cls = _spider_class(_definition)
    SPIDERS[_definition.id] = globals()[_cls.__name__] = _cls
for _name in ("_path", "_definition", "_cls", "_error"):
    globals().pop(_name, None)  # the spider loader lists every class in the module namespace: each once
del _name
