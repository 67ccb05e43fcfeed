"""nbgrader for real: the course's notebooks as an nbgrader assignment, released and autograded.

In a temporary course directory (its own nbgrader_config.py and gradebook database), nbgrader's
`generate_assignment` makes the release of a notebook, three students submit it, and nbgrader's
`autograde` grades them (through nbgrader's Python API: the apps its commands run, in this process):
the blank release scores 0, a submission with one wrong exercise loses exactly that exercise's
points, the complete one scores full marks. Scores come from nbgrader's gradebook (its Python API)
and from the CSV that the command `nbgrader export` writes.

nbgrader is the optional extra `instructor`: without it this module is skipped with one line.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers.course.notebooks import is_solution_cell, source
from helpers.environment import DEVICE_ENV

#: The optional extra that installs nbgrader (tests/test_packaging.py: CI installs it).
EXTRA = "instructor"

# Found, not imported: importing nbgrader takes about 1 s, which only the worker running this module pays.
if importlib.util.find_spec("nbgrader") is None:
    pytest.skip(f"nbgrader is not installed: pip install -e '.[{EXTRA}]' to run it", allow_module_level=True)

# nbgrader's gradebook code trips SQLAlchemy's autoflush warnings (its commands show them nowhere).
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "attention"
#: A quick notebook with four exercises (and demonstrations of wrong answers, which must not cost
#: points or break the run under the autograder). Each notebook more costs three more runs of it.
NOTEBOOKS = ["04_softmax_and_attention", "ko/01_queries_keys_values"]
#: The Korean edition's notebook: its checks speak Korean under the autograder too (its setup chose the language).
KOREAN = "ko/01_queries_keys_values"
#: The wrong exercise: the answer of the one-wrong submission, in place of the solution.
WRONG_EXERCISE = "causal_mask"
WRONG_ANSWER = "return torch.ones(n, n, dtype=torch.bool).triu()  # hides the past instead of the future"
STUDENTS = ("blank", "one_wrong", "complete")
NBGRADER = Path(sys.executable).with_name("nbgrader")

CONFIG = """\
c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "attention-step-by-step"
c.CourseDirectory.db_url = {db!r}
# A notebook's longest cell takes seconds on a CPU; nbgrader's default allows 30 s a cell.
c.Execute.timeout = 300
"""


def filename(name: str) -> str:
    """A notebook's file in the assignment (flat: nbgrader's assignments hold files, not the course's folders)."""
    return name.replace("/", "_") + ".ipynb"


def points(exercise: str) -> int:
    """What an exercise is worth: 2 for a class (named with a capital letter), 1 for a function."""
    return 2 if exercise[:1].isupper() else 1


def nbgrader_env() -> dict[str, str]:
    """What nbgrader runs under: this environment's commands first on PATH (the kernel it starts,
    "python3", and `nbgrader` itself), offline, on the CPU."""
    return {"HF_HUB_OFFLINE": "1", DEVICE_ENV: "cpu",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real nbgrader command in the course directory, as an instructor would."""
    env = {**os.environ, **nbgrader_env()}
    env.pop("NBGRADER_EXECUTION", None)
    run = subprocess.run([str(NBGRADER), *args], cwd=course, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{run.stdout}\n{run.stderr[-3000:]}"
    return run


def api(course: Path):  # -> nbgrader.apps.NbGraderAPI
    """nbgrader's Python API on the course directory, configured by its nbgrader_config.py as the commands
    are: the same apps, without starting nbgrader's interpreter (about 4 s) for each."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    return NbGraderAPI(config=PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config())


def alembic_head() -> str:
    """The gradebook schema's version, read from nbgrader's migration scripts in this process.

    nbgrader asks for it when it creates a gradebook, by starting `alembic heads` (a new Python
    that imports alembic and SQLAlchemy: about 3 s); alembic's own API reads the same scripts.
    """
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    config = Config()
    config.set_main_option("script_location", ALEMBIC_DIR)
    return ScriptDirectory.from_config(config).get_current_head()


def succeeded(result: dict) -> str:
    assert result["success"], f"nbgrader failed:\n{result.get('log', '')}\n{result.get('error', '')[-3000:]}"
    return result.get("log", "")


def answered(release: nbformat.NotebookNode, complete: nbformat.NotebookNode, wrong: dict[str, str]) -> None:
    """Fill the release's exercise cells (in place) with the complete notebook's solutions, or a wrong answer."""
    solutions = {c.metadata.nbgrader.grade_id: source(c) for c in complete.cells if is_solution_cell(c)}
    for cell in release.cells:
        if not is_solution_cell(cell):
            continue
        name = cell.metadata.nbgrader.grade_id
        text = solutions[name]
        if name in wrong:
            answer = wrong[name]
            text = re.sub(r"^( *)### BEGIN SOLUTION\n.*?### END SOLUTION$", r"\g<1>" + answer.replace("\\", r"\\"),
                          text, flags=re.S | re.M)
            assert answer in text
        cell.source = text


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, object]:
    """Release, submit three times and autograde; what the gradebook and `nbgrader export` say."""
    course = tmp_path_factory.mktemp("nbgrader course")
    db = f"sqlite:///{course / 'gradebook.db'}"
    (course / "nbgrader_config.py").write_text(CONFIG.format(root=str(course), db=db), encoding="utf-8")
    source_dir = course / "source" / ASSIGNMENT
    source_dir.mkdir(parents=True)
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", source_dir / filename(name))

    with pytest.MonkeyPatch.context() as env:
        for name, value in nbgrader_env().items():
            env.setenv(name, value)
        env.delenv("NBGRADER_EXECUTION", raising=False)
        env.setattr("nbgrader.api.get_alembic_version", alembic_head)
        return graded_course(course, db, source_dir)


def graded_course(course: Path, db: str, source_dir: Path) -> dict[str, object]:
    from nbgrader.api import Gradebook

    grader = api(course)
    succeeded(grader.generate_assignment(ASSIGNMENT, force=True))
    for student in STUDENTS:
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for name in NOTEBOOKS:
            release = nbformat.read(course / "release" / ASSIGNMENT / filename(name), as_version=4)
            if student != "blank":
                complete = nbformat.read(source_dir / filename(name), as_version=4)
                answered(release, complete, {WRONG_EXERCISE: WRONG_ANSWER} if student == "one_wrong" else {})
            nbformat.write(release, folder / filename(name))
    log = "".join(succeeded(grader.autograde(ASSIGNMENT, student, force=True)) for student in STUDENTS)
    nbgrader(course, "export", "--to", str(course / "grades.csv"))  # the command, as an instructor exports

    exercises = {}
    for name in NOTEBOOKS:
        nb = nbformat.read(source_dir / filename(name), as_version=4)
        exercises[name] = [c.metadata.nbgrader.grade_id for c in nb.cells if is_solution_cell(c)]
    with Gradebook(db) as gb:
        scores = {s: (gb.find_submission(ASSIGNMENT, s).score, gb.find_submission(ASSIGNMENT, s).max_score)
                  for s in STUDENTS}
        cells = {s: {f"check_{e}": gb.find_grade(f"check_{e}", Path(filename(n)).stem, ASSIGNMENT, s).score
                     for n, names in exercises.items() for e in names} for s in STUDENTS}
    with open(course / "grades.csv", newline="", encoding="utf-8") as f:
        exported = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(f)}
    return {"course": course, "scores": scores, "cells": cells, "exported": exported,
            "exercises": exercises, "log": log,
            "autograded": {s: {n: nbformat.read(course / "autograded" / s / ASSIGNMENT / filename(n), as_version=4)
                               for n in NOTEBOOKS} for s in STUDENTS}}


def test_the_three_submissions_score_zero_one_wrong_and_full_marks(graded):
    exercises = [e for names in graded["exercises"].values() for e in names]
    total = sum(points(e) for e in exercises)
    scores = graded["scores"]
    print("\nnbgrader autograde scores (gradebook): " + ", ".join(
        f"{student} {score:g}/{maximum:g}" for student, (score, maximum) in scores.items()))
    assert len(exercises) >= 4 and WRONG_EXERCISE in exercises
    assert all(maximum == total for _, maximum in scores.values()), "every check cell carries its points"
    assert scores["blank"][0] == 0, "the blank release scores nothing"
    assert scores["complete"][0] == total, "the complete notebooks score full marks"
    assert scores["one_wrong"][0] == total - points(WRONG_EXERCISE), "one wrong exercise loses exactly its points"
    assert graded["exported"] == {s: score for s, (score, _) in scores.items()}, "nbgrader export says the same"


def test_only_the_wrong_exercise_loses_its_points(graded):
    for check, score in graded["cells"]["one_wrong"].items():
        name = check.removeprefix("check_")
        assert score == (0 if name == WRONG_EXERCISE else points(name)), check
    assert set(graded["cells"]["blank"].values()) == {0}


def errors(nb: nbformat.NotebookNode) -> dict[str, str]:
    """The error each cell of an autograded notebook shows, by the cell's grade_id (or its index)."""
    found = {}
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                key = cell.metadata.get("nbgrader", {}).get("grade_id", str(i))
                found[key] = f"{output.ename}: {output.evalue}"
    return found


def test_a_lost_point_shows_the_check_s_hint_and_nothing_else_fails(graded):
    wrong = {n: errors(nb) for n, nb in graded["autograded"]["one_wrong"].items()}
    [(notebook, failed)] = [(n, e) for n, e in wrong.items() if e]
    assert list(failed) == [f"check_{WRONG_EXERCISE}"], "only the wrong exercise's check cell fails"
    message = failed[f"check_{WRONG_EXERCISE}"]
    assert message.startswith(f"AssertionError: ❌ {WRONG_EXERCISE}: failed.") and "Hint:" in message, message
    assert not any(errors(nb) for nb in graded["autograded"]["complete"].values())
    # The blank release: each check cell says ⏳, and no other cell fails (the stubs leave it runnable).
    for name, nb in graded["autograded"]["blank"].items():
        blank = errors(nb)
        assert set(blank) == {f"check_{e}" for e in graded["exercises"][name]}, blank
        assert all(m.startswith("AssertionError: ⏳") for m in blank.values()), blank
        if name == KOREAN:
            assert all("아직 풀지 않음" in m for m in blank.values()), blank

