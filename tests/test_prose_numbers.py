"""A number the prose quotes comes from a cell of the same notebook, is cited, or is listed as a definition.

The prose is every markdown cell, Summary and 정리 included. A number there must appear in an
output of the same notebook (what a cell printed, a check's message, a table) or in a code cell
(the value the code sets, or the bound it asserts), unless its sentence cites a source (an author
and a year), or the notebook lists it under `metadata.course.prose_numbers` with the reason it
needs no cell (a definition: "the paper's d_model"). When a re-run changes an output, the prose
that quoted the old value fails here instead of going stale.

What counts as a number: digits with at least two significant characters (12, 0.5, 1e-4 as
written, 99.5 %, 1,000): single digits are counts and labels ("Hint 1", "two heads") far more
often than measurements. Notebook numbers (05, notebook 10, 07-09) are names, not quantities.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# ASCII word characters only: a Korean particle right after a number ("808은") does not make it part of a word.
NUMBER = re.compile(r"(?<![A-Za-z0-9_.^\\])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![A-Za-z0-9_])")
NOTEBOOK_REFERENCE = re.compile(r"(?i)(notebooks?|노트북|chapter)\s+\d\d(?:\s*(?:[-–,/]|and|or|와|과|및)\s*\d\d)*")
ZERO_PADDED = re.compile(r"(?<![\w.])0\d(?![\w.])")
AUTHOR = r"[A-Z][\w'-]+"
YEAR_CITATION = re.compile(rf"{AUTHOR}(?: et al\.| and {AUTHOR}| & {AUTHOR})?,? \(?(?:19|20)\d\d[a-z]?(?![0-9])")
# Sentences end at . ! ? (not after et al., e.g., i.e., vs, cf), at a blank line, a list item or a table row.
SENTENCE_END = re.compile(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\bcf)[.!?]\s+|\n\s*\n|\n[-*] |\n(?=\|)")
DETAILS_TAGS = re.compile(r"</?(details|summary)>")


# Digits grouped in threes by LaTeX's thin space (1\,050\,624), its {,} or a space (1 050 624) are one number.
GROUPED = re.compile(r"(?<=\d)(?:\\,|\{,\}|[\u2009\u202f ])(?=\d{3}(?!\d))")
POWER_BASE = re.compile(r"\b10\^")


def normalise(number: str) -> str:
    return number.replace(",", "")


def numbers_in(text: str) -> set[str]:
    """The numbers of `text` as written (thousands separators dropped), single digits left out."""
    found = set()
    text = POWER_BASE.sub("ten^", GROUPED.sub("", text))  # the 10 of 10^4 is notation, its exponent a digit
    for whole, fraction in NUMBER.findall(text):
        digits = normalise(whole) + (fraction or "")
        if len(digits.replace(".", "").lstrip("0")) >= 2 or "." in digits:
            found.add(digits)
    return found


def source_numbers(cells: list[dict]) -> set[str]:
    """Every number that a code cell writes or an output shows (outputs: text, tables, check messages)."""
    found: set[str] = set()
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        found |= numbers_in("".join(cell["source"]))
        for output in cell.get("outputs", []):
            texts = [output.get("text", "")]
            for mime, data in output.get("data", {}).items():
                if mime.startswith("text/") or mime.endswith("json"):
                    texts.append(data if isinstance(data, str) else json.dumps(data, ensure_ascii=False))
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                found |= numbers_in(html.unescape(re.sub(r"<[^>]+>", " ", text)))
    # 12.3 printed backs "12.3" and "12"; 0.25 printed backs "25 %" only if written so: keep it literal.
    found |= {n.split(".")[0] for n in found if "." in n}
    return found


def prose_numbers(cells: list[dict]) -> list[tuple[int, str, str]]:
    """(cell index, number, its sentence) for every quoted number of the markdown, citations left out."""
    quoted = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        text = DETAILS_TAGS.sub(" ", "".join(cell["source"]))
        text = NOTEBOOK_REFERENCE.sub(" ", text)
        text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
        for sentence in SENTENCE_END.split(text):
            if YEAR_CITATION.search(sentence):
                continue
            for number in sorted(numbers_in(ZERO_PADDED.sub(" ", sentence))):
                quoted.append((index, number, sentence.strip()))
    return quoted


def unbacked(path: Path) -> list[str]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = notebook["cells"]
    defined = set(map(normalise, notebook["metadata"].get("course", {}).get("prose_numbers", {})))
    backed = source_numbers(cells) | defined
    return [f"c{i}: {n!r} in: {s[:160]}" for i, n, s in prose_numbers(cells) if n not in backed]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_number_in_the_prose_comes_from_a_cell(path):
    missing = unbacked(path)
    assert not missing, f"{path.name}: {len(missing)} numbers in the prose that no cell of it shows, no " \
                        "citation backs and metadata.course.prose_numbers does not list:\n" + "\n".join(missing)


def test_the_rule_fails_on_a_stale_number():
    cells = [{"cell_type": "markdown", "source": ["The model reaches 97.5 % after 300 steps."]},
             {"cell_type": "code", "source": ["steps = 300"], "outputs": [{"text": "accuracy 98.1 %\n"}]}]
    assert [n for _, n, _ in prose_numbers(cells) if n not in source_numbers(cells)] == ["97.5"]


def test_a_korean_particle_after_a_number_leaves_it_whole():
    assert numbers_in("파라미터 수 124,439,808은 meta 디바이스에서 센 값입니다") == {"124439808"}


def test_citations_notebook_names_and_single_digits_are_not_quantities():
    text = ("The paper (Vaswani et al., 2017) reports 28.4 BLEU. Notebook 10 and notebooks 05-08 build on it; "
            "see 09. Hint 1 uses 2 heads.")
    cells = [{"cell_type": "markdown", "source": [text]}]
    assert [n for _, n, _ in prose_numbers(cells)] == []
