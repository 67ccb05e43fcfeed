"""Course structure: every notebook follows the design's contract (../shared/COURSE_DESIGN.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers.course.notebooks import NOTEBOOK_NAME, exercise_names, is_solution_cell, notebook_paths, source

ROOT = Path(__file__).resolve().parent.parent
BOOKS = notebook_paths(ROOT / "notebooks")
SLIDE_TYPES = {"slide", "subslide", "fragment", "-", "skip", "notes"}
NBGRADER_FIELDS = {"grade", "grade_id", "locked", "schema_version", "solution", "task"}


def graded_points(exercise: str) -> int:
    """An exercise's points under nbgrader: 2 for a class (named with a capital letter), 1 for a function."""
    return 2 if exercise[:1].isupper() else 1


def load(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def markdown(nb) -> str:
    return "\n".join(source(c) for c in nb.cells if c.cell_type == "markdown")


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and source(c).strip()]


def test_notebooks_are_named_and_numbered_in_order():
    names = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert names, "no notebooks"
    assert all(NOTEBOOK_NAME.match(n) for n in names), names
    numbers = [int(n[:2]) for n in names]
    assert numbers == list(range(len(numbers))), f"notebooks must be numbered 00, 01, ... without gaps: {numbers}"


@pytest.fixture(params=BOOKS, ids=[p.name for p in BOOKS])
def nb(request):
    return load(request.param)


def test_title_objectives_prerequisites(nb):
    first = source(nb.cells[0])
    assert nb.cells[0].cell_type == "markdown" and first.startswith("# "), "the first cell is the title"
    text = markdown(nb)
    assert re.search(r"^#+ Learning objectives", text, re.M)
    assert re.search(r"^#+ Prerequisites", text, re.M)


def test_ends_with_summary_and_korean_summary(nb):
    text = markdown(nb)
    assert re.search(r"^#+ Summary", text, re.M)
    last = source(nb.cells[-1])
    assert re.search(r"^#+ 정리", last, re.M), "the last cell is the Korean summary (정리)"
    bullets = [line for line in last.splitlines() if line.startswith("- ")]
    assert len(bullets) >= 3 and all(re.search(r"[가-힣]", b) for b in bullets), "정리 is Korean bullet points"


def test_check_your_understanding_with_folded_answers(nb):
    text = markdown(nb)
    assert re.search(r"^#+ Check your understanding", text, re.M)
    section = text.split("Check your understanding", 1)[1]
    assert section.count("<details>") >= 2


def test_starts_with_the_setup_call(nb):
    first_code = source(code_cells(nb)[0])
    assert "helpers.setup(" in first_code, "the first code cell calls helpers.setup()"


def test_every_cell_has_slide_metadata(nb):
    missing = [i for i, c in enumerate(nb.cells)
               if c.metadata.get("slideshow", {}).get("slide_type") not in SLIDE_TYPES]
    assert not missing, f"cells without slideshow.slide_type: {missing}"
    assert nb.cells[0].metadata.slideshow.slide_type == "slide"


def test_has_a_figure(nb):
    images = [o for c in code_cells(nb) for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "every notebook shows at least one figure"


def test_executed_in_order_without_errors(nb):
    cells = code_cells(nb)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), "run top to bottom once"
    for c in cells:
        for o in c.outputs:
            assert o.output_type != "error", f"stored error: {o.get('ename')}"
            if o.output_type == "stream" and o.name == "stderr":
                assert "Warning" not in o.text, f"a warning in a stored output: {o.text[:120]}"
    assert nb.metadata.kernelspec.name == "python3"


def test_exercises_carry_nbgrader_metadata_and_are_checked_next(nb):
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), "nbgrader grade_ids are unique"
    for i, cell in enumerate(nb.cells):
        text = source(cell)
        if "### BEGIN SOLUTION" in text:
            assert is_solution_cell(cell), f"cell {i} has a solution region but no nbgrader solution metadata"
        if not is_solution_cell(cell):
            continue
        meta = cell.metadata.nbgrader
        assert NBGRADER_FIELDS <= set(meta), f"cell {i}: nbgrader metadata lacks {NBGRADER_FIELDS - set(meta)}"
        assert meta.schema_version == 3 and meta.solution is True and meta.grade is False
        name = meta.grade_id
        assert text.count("### BEGIN SOLUTION") == text.count("### END SOLUTION") >= 1
        assert re.search(rf"^(def|class) {name}\b", text, re.M), f"exercise {name} is a function or class"
        assert not [o for o in cell.outputs], "an exercise cell shows no output"
        following = next(c for c in nb.cells[i + 1:] if c.cell_type == "code")
        assert f"checks.check_{name}({name})" in source(following), f"the cell after {name} checks it"
        check_meta = following.metadata.get("nbgrader", {})
        assert check_meta.get("grade_id") == f"check_{name}", "course progress finds the check cell by this id"
        # nbgrader's autograded test cell (schema 3): graded, locked, with points (2 for a class exercise).
        graded = {"grade": True, "locked": True, "solution": False, "task": False, "schema_version": 3,
                  "points": graded_points(name)}
        assert {k: check_meta.get(k) for k in graded} == graded, (
            f"the check cell of {name} is a graded, locked nbgrader test cell: its nbgrader metadata needs {graded}"
        )
        shown = [o for o in following.outputs if "application/vnd.attention-course.check+json" in o.get("data", {})]
        assert shown and shown[0]["data"]["application/vnd.attention-course.check+json"]["status"] == "passed", (
            f"the complete notebook passes its own check of {name}"
        )


def test_every_notebook_after_00_has_an_exercise(nb):
    if nb.cells and "00 ·" not in source(nb.cells[0]):
        assert exercise_names(nb), "from 01 on, every notebook has at least one exercise"


def test_no_machine_specific_paths(nb):
    pattern = re.compile(r"(/home/|/root/|/tmp/|/work/|[A-Z]:\\\\Users)")
    for c in nb.cells:
        assert not pattern.search(source(c))
        for o in c.get("outputs", []):
            assert not pattern.search(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")))


def test_shared_course_lint_finds_nothing():
    lint = ROOT.parent / "shared" / "tools" / "course_lint.py"
    if not lint.exists():
        pytest.skip("../shared/tools/course_lint.py is not beside this checkout")
    run = subprocess.run([sys.executable, str(lint), str(ROOT / "notebooks")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout


def test_readme_syllabus_lists_every_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d\d) \|", readme, re.M)
    assert rows == [f"{i:02d}" for i in range(len(BOOKS))], rows
    for path in BOOKS:
        assert f"notebooks/{path.name}" in readme, f"README links {path.name}"
