"""The exercise path of a workbook (helpers/course/exercise_path.py): the cells a stub can reach, and
what they need, so that strict nbval and the path's run of the blank workbook together run it all."""

from __future__ import annotations

from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers.course.exercise_path import exercise_path, path_notebook
from helpers.course.notebooks import is_check_cell, is_solution_cell, notebook_paths, read_notebook
from helpers.course.workbook import make_workbook

GRADING = {"schema_version": 3, "locked": False, "task": False}


def solution(code: str, name: str):
    return new_code_cell(code, metadata={"nbgrader": {**GRADING, "grade": False, "solution": True, "grade_id": name}})


def check(code: str, name: str):
    return new_code_cell(code, metadata={"nbgrader": {**GRADING, "grade": True, "solution": False, "locked": True,
                                                      "grade_id": f"check_{name}", "points": 1}})


def notebook(*cells):
    return new_notebook(cells=[new_markdown_cell("# 99 · A notebook"), *cells])


CELLS = {
    "setup": new_code_cell("import torch\nfrom helpers import checks\nfrom helpers.attention import softmax as ref"),
    "data": new_code_cell("x = torch.randn(4, 5)"),
    "unused": new_code_cell("import time\ntime.sleep(60)  # a long training nobody downstream reads"),
    "exercise": solution("def softmax(s, dim=-1):\n    ### BEGIN SOLUTION\n"
                         "    return s.exp() / s.exp().sum(dim, keepdim=True)\n    ### END SOLUTION", "softmax"),
    "check": check("checks.check_softmax(softmax)", "softmax"),
    "reference": new_code_cell("weights = ref(x)  # the reference: no stub reaches it"),
    "uses": new_code_cell("mine = softmax(x)"),
    "uses_uses": new_code_cell("print(mine.sum(-1))"),
    "by_name": new_code_cell('print(yours_by_name("softmax"))'),
    "local": new_code_cell("def double(softmax):\n    return 2 * softmax  # a parameter, not the exercise\n"
                           "print([softmax for softmax in range(3)])"),
    "rebinds": new_code_cell("softmax = ref"),
    "after": new_code_cell("print(softmax(x))  # the reference again"),
}


def path_of(*names: str) -> list[str]:
    nb = notebook(*(CELLS[name] for name in names))
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    on_path = set(exercise_path(nb))
    return [name for name, i in zip(names, code) if i in on_path]


def test_the_path_holds_the_set_up_the_exercise_its_check_and_what_uses_it():
    names = ["setup", "data", "unused", "exercise", "check", "reference", "uses", "uses_uses", "by_name"]
    assert path_of(*names) == ["setup", "data", "exercise", "check", "uses", "uses_uses", "by_name"]


def test_parameters_and_comprehension_variables_are_not_the_exercise():
    assert path_of("setup", "exercise", "check", "local") == ["setup", "exercise", "check"]


def test_rebinding_a_name_ends_its_dependence():
    assert path_of("setup", "data", "exercise", "check", "rebinds", "after") == ["setup", "exercise", "check"]


def test_a_cell_that_is_not_python_is_on_the_path():
    """It may read anything: better run once more than miss what a stub does to it."""
    broken = new_code_cell("def oops(:\n    pass")
    nb = notebook(CELLS["setup"], CELLS["unused"], broken)
    assert exercise_path(nb) == [1, 3]


def test_magics_are_read_as_python():
    nb = notebook(CELLS["setup"], CELLS["exercise"], new_code_cell("%timeit softmax(torch.ones(3))"))
    assert exercise_path(nb) == [1, 2, 3]


def test_the_path_notebook_keeps_markdown_and_only_the_path_s_code():
    nb = notebook(CELLS["setup"], CELLS["unused"], new_markdown_cell("Text."), CELLS["exercise"], CELLS["check"])
    path = path_notebook(nb)
    assert [c.cell_type for c in path.cells] == ["markdown", "code", "markdown", "code", "code"]
    assert "time.sleep" not in "".join(c.source for c in path.cells) and len(nb.cells) == 6, "the original is kept"


NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.mark.parametrize("path", notebook_paths(NOTEBOOKS), ids=lambda p: p.stem)
def test_every_course_workbook_path_holds_its_exercises_and_leaves_out_its_long_cells(path):
    complete = read_notebook(path)
    blank = make_workbook(complete, path.name)
    on_path = exercise_path(blank)
    assert on_path == exercise_path(complete), "stubs define what their solutions define"
    for i, cell in enumerate(blank.cells):
        if is_solution_cell(cell) or is_check_cell(cell):
            assert i in on_path, f"cell {i} of {path.name}"
    training = [i for i, cell in enumerate(blank.cells) if "train(" in cell.source and "def " not in cell.source]
    assert not set(training) & set(on_path), f"{path.name}: the path runs a training no exercise reaches"
