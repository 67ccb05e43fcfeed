"""The two wings of `helpers`: the notebooks and the content modules never import the tooling wing
(`helpers.course`), and every content module is named in the package's map."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

import helpers

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "helpers"
TOOLING = "helpers.course"
CONTENT_MODULES = sorted(p for p in PACKAGE.rglob("*.py") if PACKAGE / "course" not in p.parents)


def imported_modules(code: str) -> set[str]:
    """Every module an `import` or `from ... import` in `code` names (`from helpers import x` names helpers.x)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def tooling(names: set[str]) -> list[str]:
    return sorted(n for n in names if n == TOOLING or n.startswith(TOOLING + "."))


def notebook_code(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    # IPython magics and shell escapes are not Python; they import nothing.
    lines = [
        line
        for cell in nb.cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if not line.lstrip().startswith(("%", "!"))
    ]
    return "\n".join(lines)


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_never_import_the_tooling_wing(path):
    assert not tooling(imported_modules(notebook_code(path))), f"{path.name} imports the tooling wing"


@pytest.mark.parametrize("path", CONTENT_MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_content_modules_never_import_the_tooling_wing(path):
    assert not tooling(imported_modules(path.read_text(encoding="utf-8"))), f"{path.name} imports the tooling wing"


def test_the_import_reader_sees_tooling_imports():
    # The two tests above are only as good as this reader: it must catch every spelling.
    for code in ("import helpers.course.cli", "from helpers.course import bench", "from helpers import course",
                 "from helpers.course.notebooks import course_root"):
        assert tooling(imported_modules(code)), code
    assert not tooling(imported_modules("from helpers import checks\nimport helpers.measure"))


def test_the_package_map_names_every_content_module():
    doc = helpers.__doc__ or ""
    top_level = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    missing = [m for m in top_level if f"helpers.{m}" not in doc]
    assert not missing, f"helpers/__init__.py's map does not name {missing}"
    assert "helpers.checks" in doc and TOOLING in doc
