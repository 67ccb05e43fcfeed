"""Blank workbooks: stubs instead of solutions, they run top to bottom, every check is not passed,
a student's edits survive, and filling in an exercise turns its ⏳ into ✅.

The blank workbooks of the whole course run once, through `course progress` as a user runs it,
and that one run serves three tests: they run top to bottom, every check says ⏳, and the
command's processes (it and the kernel it starts) stay small enough for a student's laptop.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
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
from helpers.course.progress import Row, collect, format_table, rows_for
from helpers.course.workbook import CODE_STUB, is_edited, make_workbook, stub_solution, write_workbooks

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
COURSE = Path(sys.executable).parent / "course"

#: What `course progress` (the command and its kernel) may hold in memory at once, for the whole course.
MEMORY_LIMIT = 1.5 * 2**30


@pytest.fixture(scope="module")
def workbook_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("course") / "workbooks"
    report = write_workbooks(NOTEBOOKS, out)
    assert report.written == [p.name for p in notebook_paths(NOTEBOOKS)]
    return out


@dataclass
class Watched:
    """A finished command and what its process tree used while it ran."""

    returncode: int
    stdout: str
    stderr: str
    peak_bytes: int  # the largest sum of resident memory over the command and all its descendants
    most_kernels: int  # the most kernel processes alive at one time


def tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def is_kernel(process: psutil.Process) -> bool:
    try:
        return "ipykernel_launcher" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def watch(command: list[str], interval: float = 0.1, **popen) -> Watched:
    """Run `command`, sampling its process tree's memory every `interval` seconds until it ends."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    outputs: dict[str, str] = {}
    reader = threading.Thread(target=lambda: outputs.update(zip(("out", "err"), proc.communicate())))
    reader.start()
    root = psutil.Process(proc.pid)
    peak = kernels = 0
    while proc.poll() is None:
        total = alive = 0
        for member in tree(root):
            try:
                total += member.memory_info().rss
            except psutil.Error:
                continue  # it ended between listing and measuring
            alive += is_kernel(member)
        peak, kernels = max(peak, total), max(kernels, alive)
        time.sleep(interval)
    reader.join()
    return Watched(proc.returncode, outputs.get("out", ""), outputs.get("err", ""), peak, kernels)


@pytest.fixture(scope="module")
def progress_run(workbook_dir) -> Watched:
    """`course progress --json` over every blank workbook of the course, watched."""
    return watch([str(COURSE), "progress", str(workbook_dir), "--json"], cwd=workbook_dir.parent)


# The tests of the shared run. One worker runs a whole module (--dist loadfile), so the run happens once.
blank_run = pytest.mark.long_running


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


@blank_run
def test_blank_workbooks_run_and_no_check_passes(progress_run, workbook_dir):
    assert progress_run.returncode == 0, progress_run.stderr
    rows = [Row(**row) for row in json.loads(progress_run.stdout)]
    expected = [(p.name, e) for p in notebook_paths(workbook_dir) for e in exercise_names(read_notebook(p))]
    assert [(r.notebook, r.exercise) for r in rows] == expected, "every exercise of every workbook has its row"
    for row in rows:
        # "not checked" would mean the workbook stopped before the exercise's check cell ran.
        assert row.status == "not attempted", f"{row.notebook}: {row.exercise} is ⏳ on the stub, not {row}"
    table = format_table(rows)
    assert "⏳ not attempted" in table and f"0 of {len(rows)} exercises passed." in table


@blank_run
def test_progress_runs_one_kernel_at_a_time_in_little_memory(progress_run, record_property):
    record_property("peak_bytes", progress_run.peak_bytes)
    print(f"course progress over the course: peak {progress_run.peak_bytes / 2**20:.0f} MiB, "
          f"at most {progress_run.most_kernels} kernel(s) at once")
    assert progress_run.most_kernels == 1, "each workbook's kernel is shut down before the next starts"
    assert 0 < progress_run.peak_bytes < MEMORY_LIMIT, f"peak {progress_run.peak_bytes / 2**20:.0f} MiB"


@blank_run
def test_progress_shows_no_traceback_and_leaves_the_workbooks_unchanged(progress_run, workbook_dir):
    assert "Traceback" not in progress_run.stderr
    for path in notebook_paths(workbook_dir):
        assert not is_edited(read_notebook(path)), f"{path.name} is as `course workbook` wrote it"


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
