"""The consent core and the demo shop stay apart (shared/DESIGN.md): nothing
under consents/ imports the shop, and the shop learns consent only through
the API's services and consents' registries, never its models."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What the shop may use of consents: the registries it declares itself to.
SHOP_MAY_IMPORT = {"consents.personal_data", "consents.value_exchange"}


def imports_of(package: str) -> dict[str, set[str]]:
    """Every module each file of the package imports (absolute names)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
                names.update(
                    arg.value
                    for arg in node.args
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                )
        found[str(path.relative_to(ROOT))] = names
    return found


def test_no_module_under_consents_imports_the_shop():
    modules = imports_of("consents")
    assert "consents/personal_data.py" in modules and "consents/panel.py" in modules
    offending = {
        path: sorted(n for n in names if n == "shop" or n.startswith("shop."))
        for path, names in modules.items()
    }
    assert {path: names for path, names in offending.items() if names} == {}


def test_the_shop_reads_consent_only_through_the_api_and_the_registries():
    offending = {}
    for path, names in imports_of("shop").items():
        if "/migrations/" in path:
            continue
        used = {
            n
            for n in names
            if n.startswith("consents.")
            and not any(n == allowed or n.startswith(allowed + ".") for allowed in SHOP_MAY_IMPORT)
        }
        if used:
            offending[path] = sorted(used)
    assert offending == {}
    assert "integrations.api.selectors" in imports_of("shop")["shop/benefits.py"]


def test_the_checks_see_an_import_of_the_shop(tmp_path, monkeypatch):
    """The walker itself: a file that imports the shop is named."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("from shop.models import Interest\n")
    (package / "b.py").write_text("import shop.benefits as b\n")
    (package / "c.py").write_text("import importlib\nimportlib.import_module('shop.demo')\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    found = imports_of("pkg")
    assert "shop.models" in found["pkg/a.py"]
    assert "shop.benefits" in found["pkg/b.py"]
    assert "shop.demo" in found["pkg/c.py"]
