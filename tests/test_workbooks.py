"""Blank workbooks: stubs instead of solutions, they run top to bottom, every check is not passed,
a student's edits survive, and filling in an exercise turns its ⏳ into ✅."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from helpers.course.notebooks import (
    BEGIN_SOLUTION,
    CourseError,
    execute,
    exercise_names,
    is_solution_cell,
    notebook_paths,
    read_notebook,
    source,
)
from helpers.course.progress import Row, check_results, collect, format_table, rows_for
from helpers.course.workbook import CODE_STUB, is_edited, make_workbook, stub_solution, write_workbooks

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture(scope="module")
def workbook_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("course") / "workbooks"
    report = write_workbooks(NOTEBOOKS, out)
    assert report.written == [p.name for p in notebook_paths(NOTEBOOKS)]
    return out


@pytest.fixture(scope="module")
def executed(workbook_dir) -> dict[str, nbformat.NotebookNode]:
    """Every blank workbook, executed top to bottom; nbclient raises on the first error."""
    return {p.name: execute(read_notebook(p), cwd=workbook_dir) for p in notebook_paths(workbook_dir)}


def test_stub_keeps_indentation_and_surrounding_code():
    code = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n"
    assert stub_solution(code) == "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"


@pytest.mark.parametrize(
    "broken", ["### BEGIN SOLUTION\nx", "x\n### END SOLUTION", "### BEGIN SOLUTION\n### BEGIN SOLUTION"]
)
def test_unbalanced_markers_are_an_error(broken):
    with pytest.raises(ValueError):
        stub_solution(broken)


def test_workbooks_hold_stubs_no_solutions_and_no_outputs(workbook_dir):
    for path in notebook_paths(workbook_dir):
        complete = read_notebook(NOTEBOOKS / path.name)
        blank = read_notebook(path)
        assert len(blank.cells) == len(complete.cells)
        for before, after in zip(complete.cells, blank.cells):
            assert after.metadata.get("nbgrader") == before.metadata.get("nbgrader"), "nbgrader metadata kept"
            if after.cell_type == "code":
                assert after.outputs == [] and after.execution_count is None
            if is_solution_cell(after):
                assert BEGIN_SOLUTION not in source(after)
                assert CODE_STUB.split("\n")[1] in source(after)
            else:
                assert source(after) == source(before)
        assert not is_edited(blank)


def test_blank_workbooks_run_and_no_check_passes(executed):
    for name, nb in executed.items():
        results = check_results(nb)
        exercises = exercise_names(nb)
        assert set(exercises) <= set(results), f"{name}: every exercise's check ran"
        for exercise in exercises:
            assert results[exercise]["status"] == "not attempted", f"{name}: {exercise} is ⏳ on the stub"


def test_progress_rows_for_blank_workbooks(executed):
    rows = [row for name, nb in executed.items() for row in rows_for(name, nb)]
    assert rows and all(row.status == "not attempted" for row in rows)
    table = format_table(rows)
    assert "⏳ not attempted" in table and f"0 of {len(rows)} exercises passed." in table


def test_filling_in_the_warm_up_turns_it_green(tmp_path):
    out = tmp_path / "wb"
    write_workbooks(NOTEBOOKS, out)
    path = out / "00_welcome.ipynb"
    nb = read_notebook(path)
    cell = next(c for c in nb.cells if is_solution_cell(c) and c.metadata.nbgrader.grade_id == "batched_dot")
    cell.source = source(cell).replace(CODE_STUB.replace("\n", "\n    "), "return torch.einsum('...d,...d->...', a, b)")
    assert "einsum" in cell.source
    nbformat.write(nb, path)
    # Only run the warm-up notebook: move the others away.
    for other in notebook_paths(out):
        if other.name != path.name:
            other.unlink()
    rows = collect(out, show_bar=False)
    assert [(r.exercise, r.status) for r in rows] == [("batched_dot", "passed")]


def test_a_wrong_answer_shows_its_hint_in_progress(tmp_path):
    nb = make_workbook(read_notebook(NOTEBOOKS / "00_welcome.ipynb"), "00_welcome.ipynb")
    cell = next(c for c in nb.cells if is_solution_cell(c))
    cell.source = source(cell).replace(CODE_STUB.replace("\n", "\n    "), "return a * b")
    executed = execute(nb, cwd=tmp_path)
    [row] = rows_for("00_welcome.ipynb", executed)
    assert row.status == "failed" and "did not sum" in row.hint
    assert "❌ failed" in format_table([row])


def test_edited_workbook_survives_a_second_run(tmp_path):
    out = tmp_path / "wb"
    write_workbooks(NOTEBOOKS, out)
    path = out / "00_welcome.ipynb"
    nb = read_notebook(path)
    nb.cells[0].source += "\n\nMy own note."
    nbformat.write(nb, path)
    edited = path.read_text(encoding="utf-8")

    report = write_workbooks(NOTEBOOKS, out)
    assert "00_welcome.ipynb" in report.kept
    assert path.read_text(encoding="utf-8") == edited

    report = write_workbooks(NOTEBOOKS, out, force=True)
    assert "00_welcome.ipynb" in report.written
    [backup] = report.backups
    assert (out / backup).read_text(encoding="utf-8") == edited
    assert "My own note." not in path.read_text(encoding="utf-8")


def test_unchanged_workbook_is_left_alone(tmp_path):
    out = tmp_path / "wb"
    write_workbooks(NOTEBOOKS, out)
    report = write_workbooks(NOTEBOOKS, out)
    assert report.written == [] and report.kept == []
    assert report.unchanged == [p.name for p in notebook_paths(NOTEBOOKS)]


def test_unreadable_workbook_is_kept(tmp_path):
    out = tmp_path / "wb"
    out.mkdir()
    (out / "00_welcome.ipynb").write_text("{ not json", encoding="utf-8")
    report = write_workbooks(NOTEBOOKS, out)
    assert "00_welcome.ipynb" in report.kept
    assert (out / "00_welcome.ipynb").read_text(encoding="utf-8") == "{ not json"


def test_bad_output_paths_change_nothing(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for bad, words in [(a_file, "is a file"), (tmp_path / "missing" / "wb", "does not exist"),
                       (a_file / "wb", "does not exist"), (NOTEBOOKS, "complete notebooks")]:
        before = sorted(tmp_path.rglob("*"))
        with pytest.raises(CourseError, match=words):
            write_workbooks(NOTEBOOKS, bad)
        assert sorted(tmp_path.rglob("*")) == before


def test_progress_on_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CourseError, match="no workbook folder"):
        collect(tmp_path / "nope", show_bar=False)
    with pytest.raises(CourseError, match="no workbooks"):
        collect(tmp_path, show_bar=False)


def test_row_for_a_check_that_never_ran():
    row = Row("00_welcome.ipynb", "batched_dot", "not checked", "its check did not run")
    assert row.icon == "⚠️" and "⚠️ not checked" in format_table([row])


def test_workbook_is_valid_nbformat(workbook_dir):
    for path in notebook_paths(workbook_dir):
        nbformat.validate(nbformat.read(path, as_version=4))
        assert json.loads(path.read_text(encoding="utf-8"))["metadata"]["attention_course"]["made_from"] == path.name
