"""One Korean term per concept: locale/ko/glossary.json is the data, 00's glossary shows it, the prose keeps to it.

Each entry of the data file is {"en", "ko", "rejected"}, optionally with "first_use" and "alias" (the form a
Korean cell must write before it uses the alias alone, as "층 정규화(LayerNorm)" before "LayerNorm"),
"gloss" (a common name that Korean text may write only in parentheses right after the term, as
"인과 마스크(룩어헤드 마스크)": never a second term) and "explanation" (words that explain the term in the table,
not a term). The table's Korean column is exactly the term, then "(*병기: gloss*)", then "(*풀이: explanation*)":
no synonym, so "one Korean term per concept" holds. In a rejected variant, "NN" stands for any number ("NN장").
Korean text is every markdown cell with Hangul in notebooks/ (the 정리 cells, and the Korean edition's
cells), and, for the rejected variants, the checks' Korean messages and README.ko.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GLOSSARY = json.loads((ROOT / "locale" / "ko" / "glossary.json").read_text(encoding="utf-8"))
WELCOME = ROOT / "notebooks" / "00_welcome.ipynb"
NOTEBOOKS = sorted((ROOT / "notebooks").rglob("[0-9][0-9]_*.ipynb"))
HANGUL = re.compile("[\uac00-\ud7a3]")
TABLE_HEADER = "| English | 한국어 | first met in |"
ROW = re.compile(r"^\| (.+?) \| (.+?) \| ([0-9, ]+) \|$", re.M)
CODE = re.compile(r"`[^`]*`|\$\$.*?\$\$|\$[^$]*\$", re.S)  # code spans and math: not prose


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def glossary_table() -> dict[str, tuple[str, str]]:
    """00's glossary: English -> (Korean, first met in), over all its table cells."""
    rows = {}
    for cell in cells(WELCOME):
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and TABLE_HEADER in text:
            rows |= {en: (ko, where) for en, ko, where in ROW.findall(text)}
    return rows


def korean_cells() -> list[tuple[str, int, str]]:
    """(notebook, cell index, text) of every markdown cell with Hangul in it."""
    return [(path.relative_to(ROOT / "notebooks").as_posix(), i, "".join(cell["source"]))
            for path in NOTEBOOKS for i, cell in enumerate(cells(path))
            if cell["cell_type"] == "markdown" and HANGUL.search("".join(cell["source"]))]


def pattern(variant: str) -> re.Pattern[str]:
    return re.compile(re.escape(variant).replace("NN", r"\d+"))


def other_korean() -> list[tuple[str, int, str]]:
    """The rest of the Korean edition: the checks' messages (locale/ko/checks.po) and README.ko.md."""
    import polib

    found = [("README.ko.md", 0, (ROOT / "README.ko.md").read_text(encoding="utf-8"))]
    checks = ROOT / "locale" / "ko" / "checks.po"
    if checks.exists():
        found += [("checks.po", i, e.msgstr) for i, e in enumerate(polib.pofile(str(checks))) if e.msgstr]
    return found


TABLE = glossary_table()
KOREAN = korean_cells()
IDS = [f"{nb} c{i}" for nb, i, _ in KOREAN]
OTHER = other_korean()


def test_the_data_file_is_well_formed():
    assert isinstance(GLOSSARY, list) and GLOSSARY
    for entry in GLOSSARY:
        assert {"en", "ko", "rejected"} <= entry.keys() <= {"en", "ko", "rejected", "first_use", "alias", "gloss",
                                                             "explanation"}, entry
        assert entry["ko"] not in entry["rejected"] and entry.get("gloss") not in entry["rejected"], entry
    english = [entry["en"] for entry in GLOSSARY]
    assert len(english) == len(set(english)), "an English term is listed twice"


@pytest.mark.parametrize("entry", GLOSSARY, ids=[e["en"] for e in GLOSSARY])
def test_every_entry_is_in_the_glossary_table_with_its_korean_term(entry):
    assert entry["en"] in TABLE, f"00's glossary has no row for {entry['en']!r}"
    korean, _ = TABLE[entry["en"]]
    expected = entry.get("first_use", entry["ko"])
    if "gloss" in entry:
        expected += f" (*병기: {entry['gloss']}*)"
    if "explanation" in entry:
        expected += f" (*풀이: {entry['explanation']}*)"
    assert korean == expected, f"00's glossary gives {korean!r} for {entry['en']!r}, the data file {expected!r}"
    for variant in entry["rejected"]:
        assert not pattern(variant).search(korean), f"00's glossary shows the rejected {variant!r}"


def test_every_row_of_the_glossary_table_is_in_the_data_file():
    missing = sorted(set(TABLE) - {entry["en"] for entry in GLOSSARY})
    assert not missing, f"rows of 00's glossary that locale/ko/glossary.json lacks: {missing}"


def test_the_required_rejections_are_there():
    """Issue 20's list: one term per concept, the glossary's."""
    rejected = {entry["ko"]: entry["rejected"] for entry in GLOSSARY}
    required = [("교차 어텐션", "크로스 어텐션"), ("기울기", "그래디언트"), ("서브층", "부층"),
                ("피드포워드 신경망", "피드포워드 네트워크"), ("탐욕적 디코딩", "그리디"),
                ("말뭉치", "코퍼스"), ("노트북 NN", "NN장"), ("키/밸류 헤드", "키/값 헤드"),
                ("Transformer", "트랜스포머"), ("가중치 묶기", "가중치 공유")]
    for term, variant in required:
        assert variant in rejected.get(term, []), f"{term} should reject {variant}"


@pytest.mark.parametrize(("notebook", "index", "text"), KOREAN + OTHER, ids=IDS + [f"{n} e{i}" for n, i, _ in OTHER])
def test_korean_text_uses_no_rejected_variant(notebook, index, text):
    found = [f"{m.group(0)!r} (write {entry['ko']!r})" for entry in GLOSSARY for variant in entry["rejected"]
             for m in pattern(variant).finditer(text)]
    assert not found, f"{notebook} c{index}: {', '.join(found)}"


@pytest.mark.parametrize(("notebook", "index", "text"), KOREAN, ids=IDS)
def test_a_gloss_stands_only_in_parentheses_after_its_term(notebook, index, text):
    """"룩어헤드 마스크" only as "인과 마스크(룩어헤드 마스크)" (or with a space before the parenthesis)."""
    if TABLE_HEADER in text:
        return
    for entry in GLOSSARY:
        if "gloss" not in entry:
            continue
        for m in re.finditer(re.escape(entry["gloss"]), text):
            before = text[:m.start()]
            assert before.endswith((f"{entry['ko']}(", f"{entry['ko']} (")), \
                f"{notebook} c{index}: {entry['gloss']!r} without {entry['ko']!r} right before it, in parentheses"


@pytest.mark.parametrize(("notebook", "index", "text"), KOREAN, ids=IDS)
def test_an_alias_comes_after_its_first_use(notebook, index, text):
    """"LayerNorm" alone in Korean prose only after "층 정규화(LayerNorm)" in the same cell (00's table aside)."""
    if TABLE_HEADER in text:
        return  # the glossary itself: its English column names the alias
    prose = CODE.sub(" ", text)
    for entry in GLOSSARY:
        if "alias" not in entry:
            continue
        introduced = prose.find(entry["first_use"])
        bare = [m.start() for m in re.finditer(re.escape(entry["alias"]), prose)
                if not prose[:m.end()].endswith(entry["first_use"][:-1])]
        assert not bare or (introduced != -1 and introduced < bare[0]), \
            f"{notebook} c{index}: {entry['alias']!r} alone before {entry['first_use']!r}"


def test_the_rules_catch_what_they_should():
    entry = {"en": "notebook NN", "ko": "노트북 NN", "rejected": ["NN장"]}
    assert pattern(entry["rejected"][0]).search("6장에서 본 회전") and not pattern("NN장").search("노트북 06에서")
    prose = CODE.sub(" ", "RMSNorm은 LayerNorm에서 평균을 뺍니다. `nn.LayerNorm`")
    assert "LayerNorm" in prose and "nn.LayerNorm" not in prose
    gloss = next(entry for entry in GLOSSARY if entry.get("gloss") == "룩어헤드 마스크")
    assert "(*병기: 룩어헤드 마스크*)" in TABLE[gloss["en"]][0]
