"""Settings are declared by their components: every one read is declared, documented in the
README from the declarations, and read from the environment with its declared default."""

import ast
import re
from pathlib import Path

import pytest
import scrapy.settings.default_settings as scrapy_defaults

from crawler import config
from crawler import settings as project_settings
from crawler.settings_registry import COMPONENTS, declared, from_environment

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("crawler", "middlewares", "pipelines", "spiders")
# set in code, never from the environment: the job digest the scan command computes, and
# scrapy-redis's serializer hook (a module, not a value)
INTERNAL = {"SCHEDULER_JOB_ARGUMENTS", "SCHEDULER_SERIALIZER"}


def test_names_are_unique_and_every_declaration_is_documented_in_one_line():
    names = [s.name for component in COMPONENTS for s in component.settings]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    for component in COMPONENTS:
        for setting in component.settings:
            assert setting.doc and "\n" not in setting.doc, setting.name
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", setting.name)


def test_each_declared_setting_comes_from_the_environment_or_its_default():
    values = from_environment({"PG_BATCH_ROWS": "7", "UNRELATED": "x"})
    assert values["PG_BATCH_ROWS"] == "7"
    assert values["REDIS_CONNECT_TIMEOUT"] == declared()["REDIS_CONNECT_TIMEOUT"].default == "5"
    assert "UNRELATED" not in values
    for name in declared():
        assert hasattr(project_settings, name), f"{name} is declared but not a project setting"


def test_readme_tables_are_generated_from_the_declarations():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert config.readme_with_tables(readme) == readme, (
        "README.md's settings tables differ from the declarations: run `python -m crawler.config --write-readme`"
    )
    for name in declared():
        assert f"| `{name}` |" in readme


def test_env_example_names_only_declared_settings():
    names = re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE)
    assert names
    assert not set(names) - set(declared()), "undeclared names in .env.example"


def _setting_names_read(path: Path) -> set[str]:
    """Names passed as string literals to settings.get*(...) / flag(settings, ...)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        getter = isinstance(func, ast.Attribute) and func.attr.startswith("get") and "settings" in ast.unparse(func)
        is_flag = isinstance(func, ast.Name) and func.id == "flag"
        args = node.args[1:] if is_flag else node.args
        literal = args[0].value if args and isinstance(args[0], ast.Constant) else None
        if (getter or is_flag) and isinstance(literal, str) and re.fullmatch(r"[A-Z][A-Z0-9_]+", literal):
            names.add(literal)
    return names


def test_every_setting_the_product_reads_is_declared_or_scrapys_own():
    known = set(declared()) | {n for n in dir(scrapy_defaults) if n.isupper()} | INTERNAL
    known |= {n for n in dir(project_settings) if n.isupper()}  # Scrapy's own, written out there
    read = {}
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            for name in _setting_names_read(path):
                read.setdefault(name, path.relative_to(ROOT).as_posix())
    assert "RATELIMIT_DEFAULT_RPS" in read  # the scan sees the reads
    undeclared = {name: where for name, where in read.items() if name not in known}
    assert not undeclared, f"read but not declared (add them to a settings_spec module): {undeclared}"


def test_the_cli_prints_the_tables(capsys):
    assert config.main(["--markdown"]) == 0
    assert capsys.readouterr().out.strip() == config.markdown()
