"""One BrokerSpider subclass per site definition (``spiders/sites/<id>.yaml``), named by its id.

Adding a site is adding a YAML file: ``scrapy list`` shows it and ``scrapy crawl <id>`` runs it. A
definition that does not validate is left out with one line on stderr naming the file, key and reason.
"""

from __future__ import annotations

import sys
from importlib.resources import files

from crawler.extraction import DefinitionError
from crawler.extraction.definitions import load_definition_text
from spiders.broker import BrokerSpider


def _spider_class(definition) -> type[BrokerSpider]:
    class_name = "".join(part.title() for part in definition.id.split("_")) + "Spider"
    return type(
        class_name,
        (BrokerSpider,),
        {
            "name": definition.id,
            "definition": definition,
            "__module__": __name__,
            "__doc__": f"{definition.name}: spiders/sites/{definition.id}.yaml",
        },
    )


SPIDERS: dict[str, type[BrokerSpider]] = {}
# importlib.resources: the files are also read from inside a scrapyd egg (a zip)
for _path in sorted((p for p in files(__name__).iterdir() if p.name.endswith(".yaml")), key=lambda p: p.name):
    try:
        _definition = load_definition_text(_path.read_bytes(), f"spiders/sites/{_path.name}")
    except DefinitionError as _error:
        print(f"error: {_error} (site left out)", file=sys.stderr)
        continue
    _cls = _spider_class(_definition)
    SPIDERS[_definition.id] = globals()[_cls.__name__] = _cls
for _name in ("_path", "_definition", "_cls", "_error"):
    globals().pop(_name, None)  # the spider loader lists every class in the module namespace: each once
del _name
