"""Notebook 00 describes the course that exists: its map, its counts and its glossary follow the files in notebooks/.

Adding notebook 13 without a row in 00's map (and its Summary's and 정리's "00-13") fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WELCOME = ROOT / "notebooks" / "00_welcome.ipynb"
NUMBERS = sorted(path.name[:2] for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAP_HEADER = "| # | notebook | what you derive and build |"
GLOSSARY_HEADER = "| English | 한국어 | first met in |"


def markdown(header: str) -> str:
    cells = json.loads(WELCOME.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"
                     and "".join(c["source"]).lstrip().startswith(header))


def tables(header: str) -> str:
    cells = json.loads(WELCOME.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"
                     and header in "".join(c["source"]))


def map_matches(numbers: list[str]) -> None:
    rows = re.findall(r"^\| (\d\d) \| ", tables(MAP_HEADER), re.M)
    assert rows == numbers, f"00's course map lists {rows}; notebooks/ holds {numbers}"


def test_the_course_map_lists_every_notebook_in_order():
    map_matches(NUMBERS)


def test_the_map_names_each_notebook_as_its_file_does():
    names = {path.name[:2]: path.stem[3:].replace("_", " ") for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    rows = dict(re.findall(r"^\| (\d\d) \| ([^|]+?) \|", tables(MAP_HEADER), re.M))
    for number, stem in names.items():
        words = set(stem.split()) - {"and", "a", "the", "from", "scratch"}
        assert words & set(re.findall(r"\w+", rows[number].lower())), f"map row {number} {rows[number]!r} vs {stem!r}"


def test_summary_and_korean_summary_span_the_whole_course():
    first, last = NUMBERS[0], NUMBERS[-1]
    assert f"notebooks {first}-{last}" in markdown("## Summary"), "00's Summary: write the range of notebooks"
    assert f"노트북 {first}-{last}" in markdown("## 정리"), "00's 정리: write the range of notebooks"
    for text in (markdown("## Summary"), markdown("## 정리")):
        assert not re.search(r"\bin \d+ notebooks|\d+개의 노트북", text), "a count goes stale: name the range"


def test_the_glossary_points_only_at_notebooks_that_exist():
    where = re.findall(r"^\| [^|]+ \| [^|]+ \| ([0-9, ]+) \|$", tables(GLOSSARY_HEADER), re.M)
    cited = {n for cell in where for n in re.findall(r"\d\d", cell)}
    assert where and cited <= set(NUMBERS), f"the glossary cites notebooks {sorted(cited - set(NUMBERS))}"
    assert NUMBERS[-1] in cited, "the glossary has no term from the last notebook"


def test_a_notebook_added_without_a_row_fails():
    with pytest.raises(AssertionError, match="course map lists"):
        map_matches([*NUMBERS, f"{int(NUMBERS[-1]) + 1:02d}"])
