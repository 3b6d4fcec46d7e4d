"""The scrapyd egg holds the product only, and every module in it imports in a clean interpreter that sees the
egg and the installed third-party packages, nothing of the repository (no sandbox, tools or tests)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support import ROOT

# scrapyd-deploy (test_scrapyd.py) builds and cleans in the repository: never beside this test's check
# that nothing is left there (`make test` distributes with --dist loadgroup)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("repository_build")]

PRODUCT = {"crawler", "spiders", "pipelines", "middlewares"}
DEVELOPMENT = {"sandbox", "tools", "tests", "support", "bench"}

# Run with `python -I` in an empty directory: no PYTHONPATH, no user site, no current directory on sys.path.
IMPORT_ALL = """
import importlib, json, sys
egg, modules = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, egg)
failed = {}
for name in modules:
    try:
        module = importlib.import_module(name)
        if not (getattr(module, "__file__", "") or "").startswith(egg):
            failed[name] = f"imported from {module.__file__}, not the egg"
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
loaded = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"failed": failed, "loaded": loaded}))
"""


@pytest.fixture(scope="module")
def egg(tmp_path_factory) -> Path:
    """``setup.py bdist_egg`` as scrapyd-deploy runs it, with every build directory outside the repository."""
    out = tmp_path_factory.mktemp("egg")
    artefacts = [ROOT / "build", ROOT / "crawler.egg-info", ROOT / "dist"]
    before = {path for path in artefacts if path.exists()}
    result = subprocess.run(
        [
            sys.executable,
            "setup.py",
            "egg_info",
            "--egg-base",
            str(out),
            "build",
            "--build-base",
            str(out / "build"),
            "bdist_egg",
            "--bdist-dir",
            str(out / "bdist"),
            "-d",
            str(out / "dist"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert {path for path in artefacts if path.exists()} == before  # nothing left in the repository
    (path,) = (out / "dist").glob("*.egg")
    return path


def modules(egg: Path) -> dict[str, str]:
    """Dotted module name -> source, for every .py file in the egg."""
    found = {}
    with zipfile.ZipFile(egg) as archive:
        for name in archive.namelist():
            if name.endswith(".py"):
                dotted = name[: -len(".py")].replace("/", ".").removesuffix(".__init__")
                found[dotted] = archive.read(name).decode()
    return found


def test_the_egg_holds_the_product_packages_only(egg):
    with zipfile.ZipFile(egg) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert tops == PRODUCT | {"EGG-INFO"}
    names = modules(egg)
    assert "spiders.events" in names and "crawler.db.writer" in names
    assert not [name for name in names if name.split(".")[-1] in ("demo", "evaluate", "evaluate_matching")]


def test_no_module_in_the_egg_imports_development_code(egg):
    """Also the imports a module makes only inside a function (they would fail on the scrapyd host later)."""
    offending = []
    for name, source in modules(egg).items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            else:
                continue
            offending += [(name, target) for target in targets if target.split(".")[0] in DEVELOPMENT]
    assert offending == []


def test_every_module_of_the_egg_imports_in_a_clean_interpreter(egg, tmp_path):
    names = sorted(modules(egg))
    result = subprocess.run(
        [sys.executable, "-I", "-c", IMPORT_ALL, str(egg), json.dumps(names)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failed"] == {}
    assert not set(report["loaded"]) & DEVELOPMENT, report["loaded"]
