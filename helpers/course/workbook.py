"""Blank student workbooks made from the complete notebooks: `course workbook`.

Each solution region (between `### BEGIN SOLUTION` and `### END SOLUTION`) becomes
nbgrader's stub, outputs are cleared, nbgrader metadata is kept. A workbook records a
fingerprint of the sources it was written with, so a later run can tell whether the
student has changed it: a changed workbook is never overwritten (unless forced, and then
a backup is kept first).
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from helpers.course.files import write_text
from helpers.course.notebooks import (
    BEGIN_SOLUTION,
    END_SOLUTION,
    CourseError,
    is_solution_cell,
    notebook_paths,
    read_notebook,
    source,
)

CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
METADATA_KEY = "attention_course"


def stub_solution(code: str) -> str:
    """Replace every solution region of a code cell with nbgrader's stub, at its indentation."""
    lines = code.split("\n")
    out: list[str] = []
    inside = False
    for line in lines:
        if line.strip() == BEGIN_SOLUTION:
            if inside:
                raise ValueError(f"nested {BEGIN_SOLUTION}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + stub_line for stub_line in CODE_STUB.split("\n"))
        elif line.strip() == END_SOLUTION:
            if not inside:
                raise ValueError(f"{END_SOLUTION} without {BEGIN_SOLUTION}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN_SOLUTION} without {END_SOLUTION}")
    return "\n".join(out)


def fingerprint(nb: NotebookNode) -> str:
    """A hash of what a student can write: every cell's type and source."""
    content = [[cell.cell_type, source(cell)] for cell in nb.cells]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()[:16]


def make_workbook(nb: NotebookNode, name: str) -> NotebookNode:
    """The blank workbook of a complete notebook `nb` (which is left unchanged)."""
    blank = copy.deepcopy(nb)
    for cell in blank.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if is_solution_cell(cell):  # a code cell: every exercise is a function or class
            cell.source = stub_solution(source(cell))
    blank.metadata[METADATA_KEY] = {"made_from": name, "fingerprint": fingerprint(blank)}
    return blank


def is_edited(existing: NotebookNode) -> bool:
    """True unless the workbook's sources are still exactly as `course workbook` wrote them."""
    recorded = existing.get("metadata", {}).get(METADATA_KEY, {}).get("fingerprint")
    return recorded != fingerprint(existing)


@dataclass
class Report:
    written: list[str]
    unchanged: list[str]
    kept: list[str]
    backups: list[str]


def _prepare_folder(out: Path) -> None:
    """Create `out` if needed and prove it writable, before anything is written."""
    if out.exists() and not out.is_dir():
        raise CourseError(f"{out} is a file, not a folder: give --out a folder")
    if not out.exists():
        parent = out.parent
        if not parent.is_dir():
            raise CourseError(f"cannot create {out}: its parent folder {parent} does not exist")
        try:
            out.mkdir()
        except OSError as exc:
            raise CourseError(f"cannot create {out}: {exc.strerror}") from None
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise CourseError(f"cannot write to {out}: {exc.strerror}") from None


def write_workbooks(source_dir: Path, out: Path, force: bool = False) -> Report:
    """Write a blank workbook for every course notebook in `source_dir` into `out`."""
    if not source_dir.is_dir():
        raise CourseError(f"no notebook folder at {source_dir}")
    books = notebook_paths(source_dir)
    if not books:
        raise CourseError(f"no course notebooks (NN_name.ipynb) in {source_dir}")
    if out.resolve() == source_dir.resolve():
        raise CourseError(f"--out {out} is the folder of the complete notebooks: choose another folder")
    # Build every workbook first, so a broken notebook stops us before anything is written.
    blanks = {path.name: make_workbook(read_notebook(path), path.name) for path in books}
    _prepare_folder(out)
    report = Report([], [], [], [])
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for name, blank in blanks.items():
        target = out / name
        if target.exists():
            try:
                existing = nbformat.read(target, as_version=4)
            except Exception:  # unreadable: treat as the student's, never overwrite silently
                existing = None
            if existing is not None and not is_edited(existing):
                if fingerprint(existing) == fingerprint(blank):
                    report.unchanged.append(name)
                    continue
            elif not force:
                report.kept.append(name)
                continue
            else:
                backup = target.with_name(f"{name}.bak-{stamp}")
                shutil.copy2(target, backup)
                report.backups.append(backup.name)
        write_text(target, nbformat.writes(blank))
        report.written.append(name)
    return report
