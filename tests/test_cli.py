"""The `course` command as a user meets it: the installed entry point, one-line errors, no changes on error,
no traceback from any subcommand whatever it is fed."""

from __future__ import annotations

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
    return subprocess.run([str(COURSE), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_entry_point_is_installed():
    assert COURSE.exists(), "pip install -e . installs the `course` command"
    run = course("--help")
    assert run.returncode == 0
    for sub in ("open", "workbook", "progress"):
        assert sub in run.stdout


def test_open_starts_jupyterlab_on_the_course_folder():
    command = open_command(ROOT)
    assert command[1:3] == ["-m", "jupyterlab"] and f"--ServerApp.root_dir={ROOT}" in command
    run = course("open", "--dry-run", "--port", "8899", *(["--allow-root"] if AS_ROOT else []))
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


def test_workbook_then_progress(tmp_path):
    out = tmp_path / "my workbooks"
    run = course("workbook", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout and (out / "00_welcome.ipynb").exists()
    # Every workbook runs in tests/test_workbooks.py already; here the warm-up's is enough.
    for other in out.glob("*.ipynb"):
        if other.name != "00_welcome.ipynb":
            other.unlink()
    run = course("progress", str(out), "--no-bar")
    assert run.returncode == 0, run.stderr
    assert "batched_dot" in run.stdout and "⏳ not attempted" in run.stdout


def test_workbook_reports_kept_copies_and_how_to_force(tmp_path):
    out = tmp_path / "wb"
    assert main(["workbook", "--out", str(out)]) == 0
    path = out / "00_welcome.ipynb"
    path.write_text(path.read_text(encoding="utf-8").replace("Welcome", "Welcome (my copy)", 1), encoding="utf-8")
    run = course("workbook", "--out", str(out))
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
def test_bad_input_gets_a_one_line_error_and_changes_nothing(tmp_path, args, words):
    paths = bad_inputs(tmp_path)
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    run = course(*[a.format(**paths) for a in args])
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and words in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == before


def test_progress_reports_a_broken_workbook_as_a_row_and_checks_the_others(tmp_path):
    out = tmp_path / "wb"
    write_workbooks(NOTEBOOKS, out)
    for other in out.glob("*.ipynb"):
        if other.name != "00_welcome.ipynb":
            other.unlink()
    (out / "01_corrupted.ipynb").write_text("{not json", encoding="utf-8")
    nbformat.write(new_notebook(cells=[new_code_cell("print('mine')")]), out / "02_my_notes.ipynb")
    run = course("progress", str(out), "--no-bar")
    assert run.returncode == 0 and "Traceback" not in run.stdout + run.stderr, run.stderr
    lines = run.stdout.splitlines()
    [welcome] = [line for line in lines if line.startswith("00_welcome.ipynb")]
    [corrupted] = [line for line in lines if line.startswith("01_corrupted.ipynb")]
    [notes] = [line for line in lines if line.startswith("02_my_notes.ipynb")]
    assert "batched_dot" in welcome and "⏳ not attempted" in welcome
    assert "not checked" in corrupted and "not a readable notebook: NotJSONError" in corrupted
    assert "not checked" in notes and "not a course workbook" in notes


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
