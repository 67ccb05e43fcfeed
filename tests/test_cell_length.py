"""No code walls (issue 14): every code cell of every notebook fits on a slide, at most 25 lines.

Exercise solution cells (nbgrader `solution: true`) are exempt: a class exercise is one cell by
design (notebook 09 reads it whole). Drawing code belongs in `helpers/plotting.py`.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from helpers.course.notebooks import is_solution_cell, notebook_paths, source

ROOT = Path(__file__).resolve().parent.parent
BOOKS = notebook_paths(ROOT / "notebooks")
MAX_LINES = 25


def too_long(nb: nbformat.NotebookNode, name: str) -> list[str]:
    """One line per code cell over MAX_LINES (solution cells excepted): notebook, cell index, first line, length."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or is_solution_cell(cell):
            continue
        lines = source(cell).splitlines()
        if len(lines) > MAX_LINES:
            problems.append(f"{name}, cell {index} ({lines[0].strip()!r}): {len(lines)} lines, at most {MAX_LINES}")
    return problems


@pytest.mark.parametrize("path", BOOKS, ids=[p.stem for p in BOOKS])
def test_code_cells_are_at_most_25_lines(path: Path) -> None:
    problems = too_long(nbformat.read(path, as_version=4), path.name)
    assert not problems, ("code cells too long for a slide (move drawing code into helpers/plotting.py, or split "
                          "the cell at a natural break):\n" + "\n".join(problems))


def test_the_rule_catches_a_long_cell_and_spares_solutions() -> None:
    # The rule must fail on the wrong notebook, name the cell, and leave exercise solutions alone.
    long_code = "\n".join(f"x{i} = {i}" for i in range(MAX_LINES + 1))
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(long_code),  # markdown is never counted
        nbformat.v4.new_code_cell("\n".join(f"y{i} = {i}" for i in range(MAX_LINES)) + "\n"),  # exactly 25: fine
        nbformat.v4.new_code_cell(long_code),
        nbformat.v4.new_code_cell(long_code, metadata={"nbgrader": {"solution": True, "grade_id": "f"}}),
    ])
    assert too_long(nb, "99_example.ipynb") == [
        f"99_example.ipynb, cell 2 ('x0 = 0'): {MAX_LINES + 1} lines, at most {MAX_LINES}"
    ]
