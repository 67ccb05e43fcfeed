"""The `course` command as a user meets it: the installed entry point, one-line errors, no changes on error,
no traceback from any subcommand whatever it is fed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from helpers.course import cli
from helpers.course.cli import main, open_command
from helpers.course.workbook import write_workbooks

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
COURSE = Path(sys.executable).parent / "course"
AS_ROOT = cli.is_root()


def course(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The installed command, in a process of its own, as a user runs it (about 4 s: it imports torch)."""
    return subprocess.run([str(COURSE), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture
def run_main(capsys, monkeypatch):
    """`course ARGS` in this process (the entry point is `main`; `course` above shows the two agree):
    its exit status and what it printed, as `course` returns them, without a new interpreter."""

    def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's own errors and --help
            code = exc.code if isinstance(exc.code, int) else 2
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["course", *args], code, out, err)

    return run


def test_entry_point_is_installed(run_main):
    """The installed command runs: test_the_installed_command_prints_the_same_one_line_error starts it."""
    assert COURSE.exists(), "pip install -e . installs the `course` command"
    run = run_main("--help")
    assert run.returncode == 0
    for sub in ("open", "workbook", "progress"):
        assert sub in run.stdout


def test_open_starts_jupyterlab_on_the_course_folder(run_main):
    command = open_command(ROOT)
    assert command[1:3] == ["-m", "jupyterlab"] and f"--ServerApp.root_dir={ROOT}" in command
    run = run_main("open", "--dry-run", "--port", "8899", *(["--allow-root"] if AS_ROOT else []))
    assert run.returncode == 0 and "jupyterlab" in run.stdout and "--ServerApp.port=8899" in run.stdout


def test_open_as_root_says_how_to_proceed(monkeypatch, capsys):
    started = []
    monkeypatch.setattr(cli, "is_root", lambda: True)
    monkeypatch.setattr(cli.subprocess, "call", lambda command: started.append(command) or 0)
    assert main(["open"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "course open --allow-root" in error
    assert started == [], "JupyterLab is not started only to refuse"
    assert main(["open", "--allow-root"]) == 0
    assert "--allow-root" in started[0], "the option goes on to JupyterLab"
    monkeypatch.setattr(cli, "is_root", lambda: False)
    assert main(["open", "--dry-run"]) == 0


def test_test_runs_pytest_in_the_course_folder_with_its_options(monkeypatch):
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda command, cwd: calls.append((command, cwd)) or 5)
    assert main(["test", "-k", "softmax", "-x"]) == 5, "pytest's exit status is the command's"
    [(command, cwd)] = calls
    assert command[1:] == ["-m", "pytest", "-k", "softmax", "-x"] and Path(cwd) == ROOT


def test_workbook_then_progress_which_reports_a_broken_workbook_as_a_row_and_checks_the_others(tmp_path, run_main):
    """`course workbook`, then `course progress` over the warm-up's workbook beside a broken one and a notebook
    of the student's own: one run of progress (one kernel, about 3 s) shows both what it reports of a workbook
    and that a file it cannot check is a row of its own, not the end of the run."""
    out = tmp_path / "my workbooks"
    run = run_main("workbook", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout and (out / "00_welcome.ipynb").exists()
    # Every workbook runs in tests/test_workbooks.py already; here the warm-up's is enough.
    for other in out.glob("*.ipynb"):
        if other.name != "00_welcome.ipynb":
            other.unlink()
    (out / "01_corrupted.ipynb").write_text("{not json", encoding="utf-8")
    nbformat.write(new_notebook(cells=[new_code_cell("print('mine')")]), out / "02_my_notes.ipynb")
    run = run_main("progress", str(out), "--no-bar")
    assert run.returncode == 0 and "Traceback" not in run.stdout + run.stderr, run.stderr
    assert "batched_dot" in run.stdout and "⏳ not attempted" in run.stdout
    assert "By notebook:\n  00 Welcome to Attention, step by step: 0/1 done ⏳" in run.stdout, run.stdout
    lines = run.stdout.splitlines()
    [welcome] = [line for line in lines if line.startswith("00_welcome.ipynb")]
    [corrupted] = [line for line in lines if line.startswith("01_corrupted.ipynb")]
    [notes] = [line for line in lines if line.startswith("02_my_notes.ipynb")]
    assert "batched_dot" in welcome and "⏳ not attempted" in welcome
    assert "not checked" in corrupted and "not a readable notebook: NotJSONError" in corrupted
    assert "not checked" in notes and "not a course workbook" in notes


def test_workbook_reports_kept_copies_and_how_to_force(tmp_path, run_main):
    out = tmp_path / "wb"
    assert main(["workbook", "--out", str(out)]) == 0
    path = out / "00_welcome.ipynb"
    path.write_text(path.read_text(encoding="utf-8").replace("Welcome", "Welcome (my copy)", 1), encoding="utf-8")
    run = run_main("workbook", "--out", str(out))
    assert run.returncode == 0
    assert "kept 1 workbook(s) you have edited: 00_welcome.ipynb" in run.stdout
    assert "--force" in run.stdout
    assert "(my copy)" in path.read_text(encoding="utf-8")


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this user cannot write in: root may write anywhere, except in /sys."""
    if AS_ROOT:
        return Path("/sys")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def bad_inputs(tmp_path: Path) -> dict[str, str]:
    """Files and folders each subcommand is fed: {name: path}."""
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json", encoding="utf-8")
    not_a_notebook = tmp_path / "data.ipynb"
    not_a_notebook.write_text('{"cells": 3}', encoding="utf-8")
    failing = tmp_path / "failing.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("1 / 0")]), failing)
    return {"file": str(a_file), "tmp": str(tmp_path), "ro": str(unwritable_folder(tmp_path)),
            "broken": str(broken), "not_a_notebook": str(not_a_notebook), "failing": str(failing)}


# (arguments, words of the one-line message). Exit status 2: the user can fix it.
BAD_INPUT = [
    (["workbook", "--out", "{file}"], "is a file, not a folder"),
    (["workbook", "--out", "{tmp}/no/such/folder"], "does not exist"),
    (["workbook", "--out", "{ro}/wb"], "cannot create"),
    (["progress", "{tmp}/nowhere"], "no workbook folder"),
    (["progress", "{file}"], "no workbook folder"),
    (["progress", "{ro}"], "no workbooks"),
    (["execute", "{tmp}/missing.ipynb"], "no notebook at"),
    (["execute", "{broken}"], "broken.ipynb is not a readable notebook: NotJSONError"),
    (["execute", "{not_a_notebook}"], "data.ipynb is not a readable notebook"),
    (["execute", "{failing}"], "was left unchanged: a cell raised ZeroDivisionError: division by zero"),
    (["slides", "99"], "no notebook 99: the notebooks are 00,"),
    (["slides", "00", "--out", "{file}"], "is a file, not a folder"),
    (["slides", "00", "--out", "{ro}"], "cannot write to"),
    (["bench", "--quick", "--no-notebooks", "--repeats", "0"], "repeats must be at least 1"),
    (["bench", "--quick", "--no-notebooks", "--device", "gpu-please"], "unknown device 'gpu-please'"),
]


@pytest.mark.parametrize(("args", "words"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_gets_a_one_line_error_and_changes_nothing(tmp_path, args, words, run_main):
    paths = bad_inputs(tmp_path)
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    run = run_main(*[a.format(**paths) for a in args])
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and words in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == before


def test_the_installed_command_prints_the_same_one_line_error(tmp_path, run_main):
    """The cases above call `main` in this process; the installed command, in its own, says the same."""
    paths = bad_inputs(tmp_path)
    args = ["execute", paths["broken"]]
    run, same = course(*args), run_main(*args)
    assert run.returncode == same.returncode == 2 and run.stderr == same.stderr, (run.stderr, same.stderr)
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr and run.stdout == ""


def test_ctrl_c_stops_progress_with_one_line_and_no_kernel_left(tmp_path):
    out = tmp_path / "wb"
    write_workbooks(NOTEBOOKS, out)
    # As a terminal does: SIGINT to the whole foreground process group, once a kernel is running.
    proc = subprocess.Popen([str(COURSE), "progress", str(out), "--no-bar"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    kernels: list[psutil.Process] = []
    deadline = time.monotonic() + 120
    while not kernels and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            kernels = [p for p in psutil.Process(proc.pid).children(recursive=True)
                       if "ipykernel_launcher" in " ".join(p.cmdline())]
        except psutil.Error:
            pass
    assert kernels, "a kernel started"
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.strip() == "course progress: interrupted", stderr
    gone, alive = psutil.wait_procs(kernels, timeout=10)
    assert not alive, "the kernel was shut down"


# ---- course progress: per notebook, and whether notebook 09 trained the learner's own model ---------

def executed_notebook(title: str, checks: dict[str, str], *extra_outputs: dict) -> nbformat.NotebookNode:
    """A synthetic executed workbook: each exercise's solution cell, then its check cell showing `status`."""
    from nbformat.v4 import new_markdown_cell, new_output

    from helpers.checks.core import MIME_TYPE

    cells = [new_markdown_cell(f"# {title}\n\nText.")]
    for name, status in checks.items():
        cells.append(new_code_cell(f"def {name}():\n    pass", metadata={"nbgrader": {
            "grade": False, "grade_id": name, "locked": False, "schema_version": 3, "solution": True, "task": False}}))
        payload = {"name": name, "status": status, "summary": "s.", "hint": "h." if status == "failed" else ""}
        cells.append(new_code_cell(f"checks.check_{name}({name})", outputs=[
            new_output("display_data", data={MIME_TYPE: payload, "text/plain": status})],
            metadata={"nbgrader": {"grade": True, "grade_id": f"check_{name}", "locked": True, "points": 1,
                                   "schema_version": 3, "solution": False, "task": False}}))
    cells.append(new_code_cell("show()", outputs=[new_output("display_data", data=d) for d in extra_outputs]))
    return new_notebook(cells=cells)


def own_model(trained: bool, accuracy: object, **components: str) -> dict:
    from helpers.course.progress import OWN_MODEL_MIME_TYPE

    return {OWN_MODEL_MIME_TYPE: {"trained": trained, "accuracy": accuracy, "components": components},
            "text/plain": "a table"}


def workbook(name: str, nb: nbformat.NotebookNode):
    from helpers.course.progress import Workbook, first_error, own_model_of, rows_for, title_of

    return Workbook(name, title_of(name, nb), rows_for(name, nb), own_model_of(name, nb), first_error(nb))


def test_progress_counts_the_exercises_done_per_notebook():
    from helpers.course.progress import format_report

    books = [
        workbook("00_welcome.ipynb", executed_notebook("00 · Welcome to *Attention, step by step*",
                                                       {"batched_dot": "passed"})),
        workbook("05_multi_head_attention.ipynb", executed_notebook(
            "05 · Multi-head attention", {"split_heads": "passed", "merge_heads": "passed",
                                          "MultiHeadAttention": "passed", "multi_head_attention": "not attempted"})),
        workbook("04_softmax.ipynb", executed_notebook("04 · Softmax", {"softmax": "passed", "causal_mask": "failed"})),
    ]
    report = format_report(books)
    assert "00 Welcome to Attention, step by step: 1/1 done ✅" in report
    assert "05 Multi-head attention: 3/4 done ⏳" in report
    assert "04 Softmax: 1/2 done ❌" in report
    assert "5 of 7 exercises passed." in report, "the table and its total stay"
    assert "Your own model" not in report, "no capstone among these workbooks: no line about it"


def test_progress_says_whose_components_notebook_09_trained():
    from helpers.course.progress import format_summary

    capstone = "09_full_transformer.ipynb"
    title = "09 · The full Transformer, trained on a CPU"
    mine = dict(MultiHeadAttention="yours", PositionalEncoding="yours", EncoderLayer="yours", DecoderLayer="yours")
    cases = [
        (own_model(True, 0.984, **mine), "✅ trained your own model, accuracy 98.4% (every component yours: "
                                         "MultiHeadAttention, PositionalEncoding, EncoderLayer, DecoderLayer)"),
        (own_model(True, 0.97, **{**mine, "DecoderLayer": "reference"}),
         "✅ trained a model partly yours, accuracy 97.0% (yours: MultiHeadAttention, PositionalEncoding, "
         "EncoderLayer; the reference's: DecoderLayer)"),
        (own_model(True, 0.99, **dict.fromkeys(mine, "reference")),
         "⏳ trained the reference's model only, accuracy 99.0%: no component of it is yours yet"),
        (own_model(False, None, **mine), "⏳ the model was not trained (yours: MultiHeadAttention, "
                                         "PositionalEncoding, EncoderLayer, DecoderLayer; the reference's: none)"),
        # A payload that is not what the capstone promises: read leniently, never a crash.
        (own_model("yes", "high", MultiHeadAttention="mine", EncoderLayer="yours"),
         "⏳ the model was not trained (yours: EncoderLayer; the reference's: none)"),
    ]
    for payload, words in cases:
        summary = format_summary([workbook(capstone, executed_notebook(title, {"greedy_decode": "passed"}, payload))])
        assert f"09 The full Transformer, trained on a CPU: {words}" in summary, summary


def test_progress_says_notebook_09_trained_nothing_when_it_stopped_before():
    from nbformat.v4 import new_output

    from helpers.course.progress import format_summary

    nb = executed_notebook("09 · The full Transformer", {"greedy_decode": "passed"})
    nb.cells.append(new_code_cell("train()", outputs=[new_output("error", ename="NameError",
                                                                 evalue="name 'x' is not defined", traceback=[])]))
    summary = format_summary([workbook("09_full_transformer.ipynb", nb)])
    assert ("09 The full Transformer: no model trained yet (its training cell did not report: the notebook "
            "stopped with NameError: name 'x' is not defined)") in summary, summary


def test_progress_command_prints_the_summary_below_the_table(tmp_path, capsys, monkeypatch):
    from helpers.course import progress

    books = [workbook("09_full_transformer.ipynb", executed_notebook(
        "09 · The full Transformer", {"greedy_decode": "failed"},
        own_model(True, 0.9, MultiHeadAttention="yours", DecoderLayer="reference")))]
    monkeypatch.setattr(progress, "collect_workbooks", lambda folder, show_bar: books)
    assert main(["progress", str(tmp_path), "--no-bar"]) == 0
    out = capsys.readouterr().out
    table, summary = out.split("By notebook:")
    assert "greedy_decode" in table and "❌ failed" in table and "0 of 1 exercises passed." in table
    assert "09 The full Transformer: 0/1 done ❌" in summary
    assert "✅ trained a model partly yours, accuracy 90.0% (yours: MultiHeadAttention; the reference's: " \
           "DecoderLayer)" in summary
    assert main(["progress", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["exercise"] for row in rows] == ["greedy_decode"], "--json stays one object per exercise"


def test_open_in_korean_lands_on_the_korean_notebooks_with_jupyterlab_in_korean(run_main, tmp_path):
    run = run_main("open", "--lang", "ko", "--dry-run", *(["--allow-root"] if AS_ROOT else []))
    assert run.returncode == 0, run.stderr
    assert "--LabApp.default_url=/lab/tree/notebooks/ko" in run.stdout
    settings = Path(run.stdout.split("--LabApp.user_settings_dir=")[1].split()[0])
    plugin = settings / "@jupyterlab" / "translation-extension" / "plugin.jupyterlab-settings"
    assert json.loads(plugin.read_text(encoding="utf-8")) == {"locale": "ko_KR"}
    assert "notebooks/ko" not in " ".join(open_command(ROOT)), "the English edition is the default"
    import importlib.util

    assert importlib.util.find_spec("jupyterlab_language_pack_ko_KR"), "the Korean language pack is installed"


def test_korean_workbooks_are_blank_korean_notebooks(run_main, tmp_path):
    out = tmp_path / "ko"
    run = run_main("workbook", "--lang", "ko", "--out", str(out))
    assert run.returncode == 0, run.stderr
    books = sorted(out.glob("*.ipynb"))
    assert [b.name for b in books] == [p.name for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))]
    nb = nbformat.read(out / "04_softmax_and_attention.ipynb", as_version=4)
    text = "".join(c.source for c in nb.cells)
    assert 'helpers.setup(lang="ko")' in text and "## 학습 목표" in text
    assert "### BEGIN SOLUTION" not in text and "raise NotImplementedError" in text


def test_progress_reports_in_korean(run_main, tmp_path):
    from helpers.course.progress import Row, Workbook, format_report

    rows = [Row("04_softmax_and_attention.ipynb", "softmax", "passed"),
            Row("04_softmax_and_attention.ipynb", "causal_mask", "failed",
                "read the error: it names the line in your function that failed."),
            Row("04_softmax_and_attention.ipynb", "padding_mask", "not attempted")]
    report = format_report([Workbook("04_softmax_and_attention.ipynb", "04 Softmax", rows)], "ko")
    assert report.splitlines()[0].split() == ["노트북", "연습", "문제", "상태", "힌트"]
    assert "✅ 통과" in report and "❌ 실패" in report and "⏳ 아직 풀지 않음" in report
    assert "read the error" not in report, "the hint comes from the checks' Korean catalogue"
    assert "연습 문제 3개 중 1개를 통과했습니다." in report and "04 Softmax: 1/3 완료 ❌" in report
    english = format_report([Workbook("04_softmax_and_attention.ipynb", "04 Softmax", rows)])
    assert "1 of 3 exercises passed." in english and "read the error" in english
