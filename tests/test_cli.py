"""The `course` command as a user meets it: the installed entry point, one-line errors, no changes on error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.course.cli import main, open_command

ROOT = Path(__file__).resolve().parent.parent
COURSE = Path(sys.executable).parent / "course"


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
    run = course("open", "--dry-run", "--port", "8899")
    assert run.returncode == 0 and "jupyterlab" in run.stdout and "--ServerApp.port=8899" in run.stdout


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


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["workbook", "--out", "{file}"], "is a file, not a folder"),
        (["workbook", "--out", "{tmp}/no/such/folder"], "does not exist"),
        (["progress", "{tmp}/nowhere"], "no workbook folder"),
        (["execute", "{tmp}/missing.ipynb"], "no notebook at"),
    ],
)
def test_bad_paths_get_a_one_line_error_and_change_nothing(tmp_path, args, words):
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    before = sorted(tmp_path.rglob("*"))
    run = course(*[a.format(file=a_file, tmp=tmp_path) for a in args])
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and words in run.stderr and "Traceback" not in run.stderr
    assert sorted(tmp_path.rglob("*")) == before and a_file.read_text() == "keep me"
