"""Every exercise has three folded hints in tiers, and neither the first two nor a ❌ hint hands the answer over.

Hint 1 is the idea, Hint 2 the concept and the family of functions, Hint 3 nearly the answer. Each
check module lists, per exercise, pieces of its solution's code (`SOLUTION_FRAGMENTS`): a Hint 1 or
Hint 2 that contains one gives the answer away, and so does a named mistake's ❌ hint.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import pytest

import helpers.checks
from helpers.checks.core import Mistake, Term

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
HINT = re.compile(r"<details><summary>Hint (\d)\b[^<]*</summary>(.*?)</details>", re.DOTALL)
MODULES = [importlib.import_module(f"helpers.checks.{m.name}")
           for m in pkgutil.iter_modules(helpers.checks.__path__) if re.match(r"nb\d\d_", m.name)]
FRAGMENTS: dict[str, list[str]] = {name: pieces for module in MODULES
                                   for name, pieces in getattr(module, "SOLUTION_FRAGMENTS", {}).items()}


def exercises() -> list[tuple[str, str, str]]:
    """(notebook, exercise, its statement's markdown) for every solution cell of every notebook."""
    found = []
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for i, cell in enumerate(cells):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if not (meta.get("solution") and cell["cell_type"] == "code"):
                continue
            before = [c for c in cells[:i] if c["cell_type"] == "markdown" and "<summary>Hint" in "".join(c["source"])]
            statement = "".join(before[-1]["source"]) if before else ""
            found.append((path.name[:2], meta["grade_id"], statement))
    return found


EXERCISES = exercises()
IDS = [f"{nb} {name}" for nb, name, _ in EXERCISES]


@pytest.mark.parametrize(("notebook", "name", "statement"), EXERCISES, ids=IDS)
def test_three_hints_in_tiers(notebook, name, statement):
    tiers = [int(n) for n, _ in HINT.findall(statement)]
    assert tiers == [1, 2, 3], f"{notebook} {name}: the hints are {tiers}, expected Hint 1, Hint 2, Hint 3"


@pytest.mark.parametrize(("notebook", "name", "statement"), EXERCISES, ids=IDS)
def test_first_two_hints_give_nothing_away(notebook, name, statement):
    assert FRAGMENTS.get(name), f"{notebook} {name}: no SOLUTION_FRAGMENTS listed in its check module"
    for tier, text in HINT.findall(statement):
        if tier in ("1", "2"):
            leaked = [piece for piece in FRAGMENTS[name] if piece in text]
            assert not leaked, f"{notebook} {name}, Hint {tier} contains the solution's {leaked}"


def named_hints(module: object) -> list[str]:
    """Every ❌ hint a module names: its mistakes', its terms' words, and its module-level hint strings."""
    hints = []
    for value in vars(module).values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, Mistake):
                hints.append(item.hint)
            elif isinstance(item, Term):
                hints.append(item.named)
    return hints


MODULE_HINTS = [(module.__name__.rsplit(".", 1)[-1], hint) for module in MODULES for hint in named_hints(module)]


@pytest.mark.parametrize(("module", "hint"), MODULE_HINTS, ids=[f"{m}: {h[:40]}" for m, h in MODULE_HINTS])
def test_no_failure_hint_prints_solution_code(module, hint):
    pieces = {p for m in MODULES if m.__name__.endswith(module) for ps in getattr(m, "SOLUTION_FRAGMENTS", {}).values()
              for p in ps}
    leaked = [piece for piece in pieces if piece in hint]
    assert not leaked, f"{module}: the hint prints {leaked}: {hint}"


def test_every_exercise_is_found():
    assert len(EXERCISES) == sum(1 for name in helpers.checks.__all__ if name.startswith("check_")), IDS
