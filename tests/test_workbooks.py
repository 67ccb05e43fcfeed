"""Blank workbooks: stubs instead of solutions, they run top to bottom, every check is not passed,
a student's edits survive, and filling in an exercise turns its ⏳ into ✅.

Every blank workbook runs its exercise path (helpers/course/exercise_path.py): the cells a stub can
reach, with the set-up they need, executed as `course progress` executes a workbook (`execute`, then
`rows_for`); the thirteen paths share one kernel, its namespace reset between them. The other cells
run in a workbook as in its complete notebook, which strict nbval runs; so the two together run the
whole workbook once, not twice. Each path shows no error cell and every check ⏳.

Memory: one more job runs `course progress` itself, as a user does, over the first workbooks, the
warm-up filled in (it turns ✅): one kernel at a time, and how much the command holds besides its
kernel. Each notebook's strict run bounds its kernel (helpers/course/pytest_plugin.py,
KERNEL_MEMORY_LIMIT). The two together bound the whole course's peak (see MEMORY_LIMIT).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest

from helpers.course.exercise_path import path_notebook
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
from helpers.course.pytest_plugin import KERNEL_MEMORY_LIMIT, own_job
from helpers.course.workbook import CODE_STUB, is_edited, make_workbook, stub_solution, write_workbooks

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
COURSE = Path(sys.executable).parent / "course"

@pytest.fixture(scope="module")
def workbook_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("course") / "workbooks"
    report = write_workbooks(NOTEBOOKS, out)
    assert report.written == [p.name for p in notebook_paths(NOTEBOOKS)]
    return out


#: What `course progress` (the command and its kernel) may hold in memory at once, for the whole course.
#: The command runs one kernel at a time and keeps only the rows of the workbooks it has run, so its
#: peak is its own memory plus the largest kernel's: the command run shows the first under
#: COMMAND_ALLOWANCE, and each notebook's strict run shows its kernel under what is left.
MEMORY_LIMIT = 1.5 * 2**30
COMMAND_ALLOWANCE = MEMORY_LIMIT - KERNEL_MEMORY_LIMIT

#: The workbooks the one `course progress` job runs: the first (the quickest) two.
COMMAND_RUN = 2


@dataclass
class Watched:
    """A finished command and what its process tree used while it ran."""

    returncode: int
    stdout: str
    stderr: str
    peak_bytes: int  # the largest sum of resident memory over the command and all its descendants
    most_kernels: int  # the most kernel processes alive at one time
    command_peak_bytes: int  # the largest resident memory of the command's own process
    cpu_seconds: float  # CPU time of the command and its descendants (as last seen alive)


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
    peak = kernels = own = 0
    cpu: dict[int, float] = {}
    while proc.poll() is None:
        total = alive = 0
        for member in tree(root):
            try:
                rss = member.memory_info().rss
                times = member.cpu_times()
            except psutil.Error:
                continue  # it ended between listing and measuring
            cpu[member.pid] = times.user + times.system
            total += rss
            own = max(own, rss) if member.pid == root.pid else own
            alive += is_kernel(member)
        peak, kernels = max(peak, total), max(kernels, alive)
        time.sleep(interval)
    reader.join()
    return Watched(proc.returncode, outputs.get("out", ""), outputs.get("err", ""), peak, kernels, own,
                   sum(cpu.values()))


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


def kernel_watch(interval: float = 0.1) -> Callable[[], tuple[int, int, float]]:
    """Sample this process's descendants (a notebook's kernel and whatever it forks) until the returned
    function is called; it returns their peak resident memory, the most kernels alive at once, and their
    CPU seconds (as last seen alive)."""
    me = psutil.Process()
    seen = {"peak": 0, "kernels": 0}
    cpu: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            total = alive = 0
            for member in me.children(recursive=True):
                try:
                    total += member.memory_info().rss
                    times = member.cpu_times()
                    cpu[member.pid] = times.user + times.system
                except psutil.Error:
                    continue  # it ended between listing and measuring
                alive += is_kernel(member)
            seen["peak"], seen["kernels"] = max(seen["peak"], total), max(seen["kernels"], alive)
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    def stop() -> tuple[int, int, float]:
        done.set()
        sampler.join()
        return seen["peak"], seen["kernels"], sum(cpu.values())

    return stop


def error_cells(nb: nbformat.NotebookNode) -> list[str]:
    return [f"cell {i}: {out.get('ename')}: {out.get('evalue')}" for i, cell in enumerate(nb.cells)
            for out in cell.get("outputs", []) if out.get("output_type") == "error"]


#: Marks each cell of the joined run with the workbook it comes from.
FROM_WORKBOOK = "attention_course_test_workbook"


#: The joined run's name for the warm-up workbook with a wrong answer (test_a_wrong_answer_shows_its_hint_in_progress).
WRONG_WARM_UP = "wrong answer: 00_welcome.ipynb"


@pytest.fixture(scope="module")
def blank_paths(tmp_path_factory) -> dict[str, tuple[nbformat.NotebookNode, nbformat.NotebookNode]]:
    """Every blank workbook's exercise path, run as `course progress` runs a workbook (`execute`), one
    after another in one kernel: `%reset -f` empties its namespace (and history) before each workbook,
    so each starts from nothing but the modules already imported, and thirteen kernel start-ups (torch,
    matplotlib: about 3 s each) become one. Last, the whole warm-up workbook with a wrong answer
    (WRONG_WARM_UP), in the same kernel for the same reason. {name: (the workbook, its executed run)}."""
    names = [p.name for p in notebook_paths(NOTEBOOKS)]
    blanks = {name: make_workbook(read_notebook(NOTEBOOKS / name), name) for name in names}
    joined = nbformat.v4.new_notebook(metadata=blanks[names[0]].metadata)
    runs_of = {name: path_notebook(blank) for name, blank in blanks.items()}
    blanks[WRONG_WARM_UP] = runs_of[WRONG_WARM_UP] = wrong_warm_up()  # all of it, as `execute` runs a workbook
    for name, run in runs_of.items():
        cells = [nbformat.v4.new_code_cell("%reset -f"), *run.cells]
        for cell in cells:
            cell.metadata[FROM_WORKBOOK] = name
        joined.cells += cells
    stop = kernel_watch()
    try:
        executed = execute(joined, cwd=tmp_path_factory.mktemp("blank paths"), allow_errors=True)
    finally:
        _, kernels, cpu_seconds = stop()
    assert kernels == 1, "one kernel ran them"
    assert not [p for p in psutil.Process().children(recursive=True) if is_kernel(p)], "its kernel is gone"
    print(f"{len(names)} blank workbooks' paths and a wrong warm-up: "
          f"{sum(c.cell_type == 'code' for c in joined.cells)} code cells, "
          f"{cpu_seconds:.0f} s of CPU")
    runs = {}
    for name, blank in blanks.items():
        path = nbformat.v4.new_notebook(metadata=blank.metadata)
        path.cells = [c for c in executed.cells if c.metadata.get(FROM_WORKBOOK) == name][1:]  # less the reset
        runs[name] = (blank, path)
    return runs


@pytest.mark.parametrize("name", [p.name for p in notebook_paths(NOTEBOOKS)])
def test_blank_workbook_runs_and_no_check_passes(name, blank_paths):
    """One blank workbook's exercise path: no error cell, every exercise's check ⏳."""
    blank, executed = blank_paths[name]
    assert not error_cells(executed), f"the blank {name} stopped: {error_cells(executed)[0]}"
    rows = rows_for(name, executed)
    assert [r.exercise for r in rows] == exercise_names(blank) and rows, "every exercise has its row"
    for row in rows:
        assert row.status == "not attempted", f"{row.notebook}: {row.exercise} is ⏳ on the stub, not {row}"


def test_a_stub_that_stops_its_workbook_shows_in_its_row_and_the_next_runs_from_nothing(tmp_path):
    """The joined run tells workbooks apart: an error stays in its own, and `%reset -f` leaves no name behind."""
    first = [nbformat.v4.new_code_cell("mine = 1"), nbformat.v4.new_code_cell("1 / 0")]
    second = [nbformat.v4.new_code_cell("%reset -f"), nbformat.v4.new_code_cell("print('mine' in dir())")]
    executed = execute(nbformat.v4.new_notebook(cells=first + second), cwd=tmp_path, allow_errors=True)
    assert error_cells(executed) == ["cell 1: ZeroDivisionError: division by zero"]
    assert executed.cells[3].outputs[0]["text"] == "False\n"


def filled_in_warm_up() -> nbformat.NotebookNode:
    """The blank warm-up workbook, with its exercise done as a student might."""
    nb = make_workbook(read_notebook(NOTEBOOKS / "00_welcome.ipynb"), "00_welcome.ipynb")
    cell = next(c for c in nb.cells if is_solution_cell(c) and c.metadata.nbgrader.grade_id == "batched_dot")
    cell.source = source(cell).replace(CODE_STUB.replace("\n", "\n    "), "return torch.einsum('...d,...d->...', a, b)")
    assert "einsum" in cell.source
    return nb


@pytest.mark.parametrize("count", [COMMAND_RUN], ids=lambda count: own_job(f"progress-over-{count}"))
def test_progress_runs_one_kernel_at_a_time_in_little_memory(count, tmp_path, record_property):
    """`course progress --json`, watched, over the first workbooks as a user runs it, the warm-up filled in:
    its exercise turns ✅, the others stay ⏳, one kernel at a time, in little memory, the files untouched."""
    folder = tmp_path / "workbooks"
    folder.mkdir()
    names = [path.name for path in notebook_paths(NOTEBOOKS)[:count]]
    assert names[0] == "00_welcome.ipynb"
    nbformat.write(filled_in_warm_up(), folder / names[0])
    for name in names[1:]:
        nbformat.write(make_workbook(read_notebook(NOTEBOOKS / name), name), folder / name)
    before = {name: (folder / name).read_bytes() for name in names}
    run = watch([str(COURSE), "progress", str(folder), "--json"], cwd=tmp_path)
    record_property("peak_bytes", run.peak_bytes)
    record_property("command_peak_bytes", run.command_peak_bytes)
    record_property("cpu_seconds", round(run.cpu_seconds, 1))
    print(f"course progress over {count} workbooks: peak {run.peak_bytes / 2**20:.0f} MiB "
          f"(the command alone {run.command_peak_bytes / 2**20:.0f} MiB), "
          f"at most {run.most_kernels} kernel(s), {run.cpu_seconds:.0f} s of CPU")

    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    rows = [Row(**row) for row in json.loads(run.stdout)]
    expected = [(name, e) for name in names for e in exercise_names(read_notebook(folder / name))]
    assert [(r.notebook, r.exercise) for r in rows] == expected, "every exercise of every workbook has its row"
    assert [(r.exercise, r.status) for r in rows if r.notebook == names[0]] == [("batched_dot", "passed")]
    assert {r.status for r in rows if r.notebook != names[0]} == {"not attempted"}, rows
    table = format_table(rows)
    assert "✅ passed" in table and "⏳ not attempted" in table and f"1 of {len(rows)} exercises passed." in table
    assert run.most_kernels == 1, "each workbook's kernel is shut down before the next starts"
    assert 0 < run.command_peak_bytes < COMMAND_ALLOWANCE, f"the command: {run.command_peak_bytes / 2**20:.0f} MiB"
    assert 0 < run.peak_bytes < MEMORY_LIMIT, f"peak {run.peak_bytes / 2**20:.0f} MiB"
    assert {name: (folder / name).read_bytes() for name in names} == before, "progress changes no workbook"


def wrong_warm_up() -> nbformat.NotebookNode:
    """The blank warm-up workbook, its exercise answered wrong: the product without the sum."""
    nb = make_workbook(read_notebook(NOTEBOOKS / "00_welcome.ipynb"), "00_welcome.ipynb")
    cell = next(c for c in nb.cells if is_solution_cell(c))
    cell.source = source(cell).replace(CODE_STUB.replace("\n", "\n    "), "return a * b")
    assert "return a * b" in cell.source
    return nb


def test_a_wrong_answer_shows_its_hint_in_progress(blank_paths):
    """The whole warm-up workbook with a wrong answer, run by `execute` (in blank_paths' kernel): no cell raises
    (a failed check shows ❌ and the notebook goes on, as `execute` without allow_errors required), and
    progress's row for it is ❌ with the hint that names the mistake."""
    _, executed = blank_paths[WRONG_WARM_UP]
    assert not error_cells(executed), f"the wrong warm-up stopped: {error_cells(executed)}"
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
