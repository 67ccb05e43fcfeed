"""`course progress`: run the workbooks headless and tabulate every exercise's check.

Below the table: how many exercises of each notebook are done, and whether notebook 09 trained
a Transformer made of the learner's own classes (its capstone cell shows a payload of MIME type
`OWN_MODEL_MIME_TYPE`: {"trained": bool, "accuracy": float, "components": {class: "yours" or
"reference"}}).
"""

from __future__ import annotations

import json
import math
import re
import sys
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nbformat import NotebookNode

from helpers.checks.core import MIME_TYPE, Status
from helpers.checks.language import translate, word
from helpers.course.notebooks import (
    CourseError,
    execute,
    exercise_names,
    notebook_paths,
    one_line,
    read_notebook,
    source,
)

NOT_CHECKED = "not checked"

#: MIME type of the payload notebook 09's capstone cell shows after training the learner's model.
OWN_MODEL_MIME_TYPE = "application/vnd.attention-course.own-model+json"
YOURS, REFERENCE = "yours", "reference"

#: The notebook whose capstone trains the learner's own model.
CAPSTONE = "09"

_TITLE = re.compile(r"^#\s*(\d\d)\s*·\s*(.+?)\s*$")

#: What the report says, in English and in Korean (`course progress --lang ko`); the hints come from the checks'
#: catalogue (helpers.checks.language).
PHRASES = {
    "header": (("notebook", "exercise", "status", "hint"), ("노트북", "연습 문제", "상태", "힌트")),
    "passed_of": ("{passed} of {total} exercises passed.", "연습 문제 {total}개 중 {passed}개를 통과했습니다."),
    "not_run": ("{title}: ⚠️ not run ({why})", "{title}: ⚠️ 실행하지 못함 ({why})"),
    "no_exercises": ("no exercises", "연습 문제 없음"),
    "done": ("{title}: {passed}/{total} done {icon}", "{title}: {passed}/{total} 완료 {icon}"),
    "none": ("none", "없음"),
    "no_model": ("{title}: no model trained yet (its training cell did not report{stopped})",
                 "{title}: 아직 학습한 모델이 없습니다 (학습 셀이 결과를 보고하지 않았습니다{stopped})"),
    "stopped": (": the notebook stopped with {error}", ": 노트북이 {error} 오류로 멈췄습니다"),
    "accuracy": (", accuracy {value}", ", 정확도 {value}"),
    "whose": ("yours: {yours}; the reference's: {reference}", "직접 구현: {yours}; 참조 구현: {reference}"),
    "not_trained": ("{title}: ⏳ the model was not trained ({whose})",
                    "{title}: ⏳ 모델을 학습하지 않았습니다 ({whose})"),
    "all_yours": ("{title}: ✅ trained your own model{accuracy} (every component yours: {yours})",
                  "{title}: ✅ 직접 만든 모델을 학습했습니다{accuracy} (모든 구성 요소를 직접 구현: {yours})"),
    "partly": ("{title}: ✅ trained a model partly yours{accuracy} ({whose})",
               "{title}: ✅ 일부를 직접 구현한 모델을 학습했습니다{accuracy} ({whose})"),
    "reference_only": ("{title}: ⏳ trained the reference's model only{accuracy}: no component of it is yours yet",
                       "{title}: ⏳ 참조 구현 모델만 학습했습니다{accuracy}: 아직 직접 구현한 구성 요소가 없습니다"),
    "by_notebook": ("By notebook:", "노트북별:"),
    "did_not_run": ("its check did not run", "검사가 실행되지 않았습니다"),
    "stopped_with": ("its check did not run; the notebook stopped with {error}",
                     "검사가 실행되지 않았습니다. 노트북이 {error} 오류로 멈췄습니다"),
    "own_model": ("Your own model:", "직접 만든 모델:"),
}


def say(key: str, language: str = "en", **values: object) -> str:
    english, korean = PHRASES[key]
    text = korean if language == "ko" else english
    return text.format(**values) if values else text  # type: ignore[union-attr]


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
            hint = say("stopped_with", error=error) if error else say("did_not_run")
            rows.append(Row(name, exercise, NOT_CHECKED, hint))
        else:
            hint = result.get("hint") or (result.get("summary", "") if result["status"] == "failed" else "")
            rows.append(Row(name, exercise, result["status"], hint))
    return rows


@dataclass(frozen=True)
class OwnModel:
    """What notebook 09's capstone reported: whether it trained, its accuracy, whose each component was."""

    notebook: str
    trained: bool
    accuracy: float | None
    components: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_payload(cls, notebook: str, payload: object) -> OwnModel:
        """Read a payload leniently: a field of the wrong type counts as missing, never as a crash."""
        data = payload if isinstance(payload, dict) else {}
        accuracy = data.get("accuracy")
        number = isinstance(accuracy, (int, float)) and not isinstance(accuracy, bool) and math.isfinite(accuracy)
        components = data.get("components")
        return cls(notebook, data.get("trained") is True, float(accuracy) if number else None,
                   {str(k): v for k, v in components.items() if v in (YOURS, REFERENCE)}
                   if isinstance(components, dict) else {})

    def whose(self, owner: str) -> list[str]:
        return [name for name, who in self.components.items() if who == owner]


def own_model_of(name: str, executed: NotebookNode) -> OwnModel | None:
    """The last own-model payload an executed notebook shows, or None."""
    found = None
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if OWN_MODEL_MIME_TYPE in data:
                payload = data[OWN_MODEL_MIME_TYPE]
                if isinstance(payload, str):  # some front ends store JSON payloads as text
                    try:
                        payload = json.loads(payload)
                    except ValueError:
                        payload = None
                found = OwnModel.from_payload(name, payload)
    return found


def title_of(name: str, nb: NotebookNode | None) -> str:
    """ "05 Multi-head attention" from the first cell's `# 05 · Multi-head attention`, else from the file name."""
    first = next((c for c in (nb.cells if nb is not None else []) if c.cell_type == "markdown"), None)
    heading = source(first).strip().splitlines()[0] if first is not None and source(first).strip() else ""
    match = _TITLE.match(heading)
    if match:  # a terminal shows no Markdown: drop emphasis and code marks
        return f"{match.group(1)} {match.group(2).replace('*', '').replace('`', '')}"
    return Path(name).stem.replace("_", " ", 1).replace("_", " ")


@dataclass
class Workbook:
    """One workbook's outcome: its rows, its title, and what its capstone reported (if it has one)."""

    name: str
    title: str
    rows: list[Row]
    own_model: OwnModel | None = None
    error: str = ""  # the first error the run stopped with


def run_workbook(path: Path, folder: Path) -> Workbook:
    """Run one workbook; a workbook that cannot be read or run is one row saying why."""
    nb = None
    try:
        nb = read_notebook(path)
        if not exercise_names(nb):
            return Workbook(path.name, title_of(path.name, nb),
                            [Row(path.name, "-", NOT_CHECKED, "no exercises in it: not a course workbook")])
        executed = execute(nb, cwd=folder, allow_errors=True)
    except CourseError as exc:
        return Workbook(path.name, title_of(path.name, nb), [Row(path.name, "-", NOT_CHECKED, str(exc))])
    except Exception as exc:  # a dead kernel, a timed-out cell, odd metadata: a finding, not a crash
        return Workbook(path.name, title_of(path.name, nb),
                        [Row(path.name, "-", NOT_CHECKED, f"could not run it: {one_line(exc)}")])
    return Workbook(path.name, title_of(path.name, executed), rows_for(path.name, executed),
                    own_model_of(path.name, executed), first_error(executed))


def rows_for_file(path: Path, folder: Path) -> list[Row]:
    """The rows of one workbook; a workbook that cannot be read or run is one row saying why."""
    return run_workbook(path, folder).rows


def collect_workbooks(folder: Path, show_bar: bool = True) -> list[Workbook]:
    """Execute every workbook in `folder`, one kernel at a time (files are not changed)."""
    from tqdm.auto import tqdm

    if not folder.is_dir():
        raise CourseError(f"no workbook folder at {folder}: make one with `course workbook --out {folder}`")
    books = notebook_paths(folder)
    if not books:
        raise CourseError(f"no workbooks (NN_name.ipynb) in {folder}: make them with `course workbook`")
    done: list[Workbook] = []
    bar = tqdm(books, desc="running workbooks", unit="notebook", disable=not show_bar, file=sys.stderr)
    for path in bar:
        bar.set_postfix_str(path.name)
        done.append(run_workbook(path, folder))
    return done


def collect(folder: Path, show_bar: bool = True) -> list[Row]:
    """Execute every workbook in `folder`, one kernel at a time (files are not changed); one row per exercise."""
    return [row for book in collect_workbooks(folder, show_bar) for row in book.rows]


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


def hint_in(hint: str, language: str) -> str:
    """A row's hint in `language`: the report's own words, or a check's (translated by its catalogue)."""
    stopped = re.fullmatch(PHRASES["stopped_with"][0].replace("{error}", "(?P<error>.+)"), hint, re.S)
    if stopped:
        return say("stopped_with", language, error=stopped.group("error"))
    if hint == say("did_not_run"):
        return say("did_not_run", language)
    return translate(hint, language)


def format_table(rows: list[Row], language: str = "en") -> str:
    """A plain-text table: notebook, exercise, status and, for each ❌, the hint."""
    header = say("header", language)
    body = [(r.notebook, r.exercise, f"{r.icon} {word(r.status, language)}", hint_in(r.hint, language)) for r in rows]
    widths = [max(display_width(line[i]) for line in [header, *body]) for i in range(3)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(_pad(cell, width) for cell, width in zip(cells[:3], widths)) + "  " + cells[3]

    lines = [line(header), "-" * (sum(widths) + 6 + len(header[3]))]
    lines.extend(line(cells).rstrip() for cells in body)
    passed = sum(r.status == Status.PASSED.value for r in rows)
    lines += ["", say("passed_of", language, passed=passed, total=len(rows))]
    return "\n".join(lines)


def notebook_line(book: Workbook, language: str = "en") -> str:
    """ "05 Multi-head attention: 3/4 done ⏳": ✅ all done, ❌ one failed, ⚠️ one not checked, else ⏳."""
    exercises = [r for r in book.rows if r.exercise != "-"]
    if not exercises:
        why = translate(book.rows[0].hint, language) if book.rows else say("no_exercises", language)
        return say("not_run", language, title=book.title, why=why)
    statuses = {r.status for r in exercises}
    passed = sum(r.status == Status.PASSED.value for r in exercises)
    if passed == len(exercises):
        icon = Status.PASSED.icon
    elif Status.FAILED.value in statuses:
        icon = Status.FAILED.icon
    elif NOT_CHECKED in statuses:
        icon = "⚠️"
    else:
        icon = Status.NOT_ATTEMPTED.icon
    return say("done", language, title=book.title, passed=passed, total=len(exercises), icon=icon)


def _names(names: list[str], language: str = "en") -> str:
    return ", ".join(names) if names else say("none", language)


def own_model_line(book: Workbook, language: str = "en") -> str:
    """Whether the capstone trained the learner's own model, and whose each component was."""
    model = book.own_model
    if model is None:
        stopped = say("stopped", language, error=book.error) if book.error else ""
        return say("no_model", language, title=book.title, stopped=stopped)
    yours, reference = model.whose(YOURS), model.whose(REFERENCE)
    accuracy = "" if model.accuracy is None else say("accuracy", language, value=(
        f"{model.accuracy:.1%}" if 0.0 <= model.accuracy <= 1.0 else f"{model.accuracy:.4g}"))
    whose = say("whose", language, yours=_names(yours, language), reference=_names(reference, language))
    if not model.trained:
        return say("not_trained", language, title=book.title, whose=whose)
    if yours and not reference:
        return say("all_yours", language, title=book.title, accuracy=accuracy, yours=_names(yours, language))
    if yours:
        return say("partly", language, title=book.title, accuracy=accuracy, whose=whose)
    return say("reference_only", language, title=book.title, accuracy=accuracy)


def format_summary(books: list[Workbook], language: str = "en") -> str:
    """Per notebook, how many exercises are done; then whether notebook 09 trained the learner's own model."""
    lines = [say("by_notebook", language), *(f"  {notebook_line(book, language)}" for book in books)]
    capstones = [b for b in books if b.own_model is not None or b.name.startswith(f"{CAPSTONE}_")]
    if capstones:
        lines += ["", say("own_model", language), *(f"  {own_model_line(book, language)}" for book in capstones)]
    return "\n".join(lines)


def format_report(books: list[Workbook], language: str = "en") -> str:
    """What `course progress` prints: the table of every exercise, then the summary (in English or Korean)."""
    rows = [row for book in books for row in book.rows]
    return format_table(rows, language) + "\n\n" + format_summary(books, language)
