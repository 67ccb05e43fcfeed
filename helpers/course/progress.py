"""`course progress`: run the workbooks headless and tabulate every exercise's check."""

from __future__ import annotations

import json
import sys
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path

from nbformat import NotebookNode

from helpers.checks.core import MIME_TYPE, Status
from helpers.course.notebooks import CourseError, execute, exercise_names, notebook_paths, one_line, read_notebook

NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class Row:
    notebook: str
    exercise: str
    status: str  # a Status value, or NOT_CHECKED when no check result was shown
    hint: str = ""

    @property
    def icon(self) -> str:
        return Status(self.status).icon if self.status != NOT_CHECKED else "⚠️"


def check_results(nb: NotebookNode) -> dict[str, dict[str, str]]:
    """The result of each exercise's own check cell (nbgrader id `check_<name>`), by exercise name.

    Other cells may show results too (notebook 00 demonstrates failing checks); only the
    check cell that follows the exercise counts.
    """
    found: dict[str, dict[str, str]] = {}
    for cell in nb.cells:
        cell_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
        for output in cell.get("outputs", []):
            payload = output.get("data", {}).get(MIME_TYPE)
            if isinstance(payload, dict) and cell_id == f"check_{payload.get('name')}":
                found[payload["name"]] = payload
    return found


def first_error(nb: NotebookNode) -> str:
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                evalue = (output.get("evalue") or "").strip().splitlines()
                return f"{output.get('ename')}: {evalue[0] if evalue else ''}"[:200]
    return ""


def rows_for(name: str, executed: NotebookNode) -> list[Row]:
    results = check_results(executed)
    rows = []
    for exercise in exercise_names(executed):
        result = results.get(exercise)
        if result is None:
            error = first_error(executed)
            hint = f"its check did not run; the notebook stopped with {error}" if error else "its check did not run"
            rows.append(Row(name, exercise, NOT_CHECKED, hint))
        else:
            hint = result.get("hint") or (result.get("summary", "") if result["status"] == "failed" else "")
            rows.append(Row(name, exercise, result["status"], hint))
    return rows


def rows_for_file(path: Path, folder: Path) -> list[Row]:
    """The rows of one workbook; a workbook that cannot be read or run is one row saying why."""
    try:
        nb = read_notebook(path)
        if not exercise_names(nb):
            return [Row(path.name, "-", NOT_CHECKED, "no exercises in it: not a course workbook")]
        executed = execute(nb, cwd=folder, allow_errors=True)
    except CourseError as exc:
        return [Row(path.name, "-", NOT_CHECKED, str(exc))]
    except Exception as exc:  # a dead kernel, a timed-out cell, odd metadata: a finding, not a crash
        return [Row(path.name, "-", NOT_CHECKED, f"could not run it: {one_line(exc)}")]
    return rows_for(path.name, executed)


def collect(folder: Path, show_bar: bool = True) -> list[Row]:
    """Execute every workbook in `folder`, one kernel at a time (files are not changed); one row per exercise."""
    from tqdm.auto import tqdm

    if not folder.is_dir():
        raise CourseError(f"no workbook folder at {folder}: make one with `course workbook --out {folder}`")
    books = notebook_paths(folder)
    if not books:
        raise CourseError(f"no workbooks (NN_name.ipynb) in {folder}: make them with `course workbook`")
    rows: list[Row] = []
    bar = tqdm(books, desc="running workbooks", unit="notebook", disable=not show_bar, file=sys.stderr)
    for path in bar:
        bar.set_postfix_str(path.name)
        rows.extend(rows_for_file(path, folder))
    return rows


def as_json(rows: list[Row]) -> str:
    """The rows as a JSON list of objects (notebook, exercise, status, hint), for scripts and graders."""
    return json.dumps([asdict(row) for row in rows], ensure_ascii=False, indent=1)


def display_width(text: str) -> int:
    """Columns `text` takes in a terminal: emoji such as ✅ take two, variation selectors none."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or 0xFE00 <= ord(char) <= 0xFE0F:
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def format_table(rows: list[Row]) -> str:
    """A plain-text table: notebook, exercise, status and, for each ❌, the hint."""
    header = ("notebook", "exercise", "status", "hint")
    body = [(r.notebook, r.exercise, f"{r.icon} {r.status}", r.hint) for r in rows]
    widths = [max(display_width(line[i]) for line in [header, *body]) for i in range(3)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(_pad(cell, width) for cell, width in zip(cells[:3], widths)) + "  " + cells[3]

    lines = [line(header), "-" * (sum(widths) + 6 + len(header[3]))]
    lines.extend(line(cells).rstrip() for cells in body)
    passed = sum(r.status == Status.PASSED.value for r in rows)
    lines += ["", f"{passed} of {len(rows)} exercises passed."]
    return "\n".join(lines)
