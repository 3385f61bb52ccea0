"""Every ``from tenantkit... import ...`` the documentation teaches must work."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([*ROOT.joinpath("docs").rglob("*.md"), ROOT / "README.md"])
BLOCK = re.compile(r"```(?:python|py)\n(.*?)```", re.S)


def _ours(module: str) -> bool:
    return module == "tenantkit" or module.startswith("tenantkit.")


def _imports() -> list[tuple[str, str, str | None]]:
    found: list[tuple[str, str, str | None]] = []
    for page in PAGES:
        for block in BLOCK.findall(page.read_text(encoding="utf-8")):
            lines = [line for line in block.splitlines() if re.match(r"\s*(from|import)\s+tenantkit", line)]
            # Statements may span lines in parentheses: parse the block's import statements only.
            try:
                tree = ast.parse(block)
            except SyntaxError:
                tree = ast.parse("\n".join(lines))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and _ours(node.module or ""):
                    for alias in node.names:
                        found.append((page.name, node.module or "", alias.name))
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if _ours(alias.name):
                            found.append((page.name, alias.name, None))
    return found


IMPORTS = _imports()


def test_the_docs_teach_imports() -> None:
    assert len(IMPORTS) > 20


@pytest.mark.parametrize(("page", "module", "name"), IMPORTS, ids=[f"{p}:{m}:{n}" for p, m, n in IMPORTS])
def test_documented_import_works(page: str, module: str, name: str | None) -> None:
    imported = importlib.import_module(module)
    if name is not None and name != "*":
        assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}") is not None, (
            f"{page}: from {module} import {name} fails"
        )
