"""The Korean edition is built from the English notebooks and locale/ko's catalogues, and says what they say.

Each translated entry keeps what a translation must not touch: every formula and every piece of code
(as written), the links, the numbers, the headings' levels and the folded blocks, with the blank line
after `</summary>` that JupyterLab needs. The catalogues' state and the built notebooks are
`course translations`' business; the test of the command is below.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import polib
import pytest

from helpers.course import translations as tr
from helpers.course.cli import main

ROOT = Path(__file__).resolve().parent.parent
CATALOGUES = sorted(tr.catalogue_folder(ROOT).glob("[0-9][0-9]_*.po"))
FENCE = re.compile(r"```.*?```", re.S)
MATH = re.compile(r"\$\$.*?\$\$|\$[^$]+\$", re.S)  # inline math may wrap onto the next line
CODE = re.compile(r"`[^`]+`")  # a code span may wrap onto the next line
LINK = re.compile(r"\]\(([^)\s]+)\)")
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
HEADING = re.compile(r"^(#+) ", re.M)
FOLD = re.compile(r"<details>|</details>|<summary>|</summary>")


def entries() -> list[tuple[str, polib.POEntry]]:
    return [(p.stem, e) for p in CATALOGUES for e in polib.pofile(str(p)) if e.translated() and not e.fuzzy]


def kept(english: str, korean: str) -> list[str]:
    """What `korean` lost or added of what a translation keeps; empty when all is kept."""
    problems = []

    def parts(text: str) -> dict[str, list[str]]:
        """Code blocks, then code spans in the rest, then formulas and links in what is left."""
        blocks = FENCE.findall(text)
        text = FENCE.sub(" ", text)
        spans = CODE.findall(text)
        text = CODE.sub(" ", text)
        return {"code block": blocks, "code": spans, "formula": MATH.findall(text), "link": LINK.findall(text)}

    ours, theirs = parts(english), parts(korean)
    for name in ours:
        want = Counter(" ".join(s.split()) for s in ours[name])
        got = Counter(" ".join(s.split()) for s in theirs[name])
        # Korean may add code (`helpers.setup(lang="ko")`, where the edition differs), never lose or change it.
        if set(want) - set(got) or (name != "code" and set(got) - set(want)):
            missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
            problems.append(f"{name}s differ: missing {missing[:3]}, added {extra[:3]}")
    prose = lambda text: MATH.sub(" ", LINK.sub(" ", CODE.sub(" ", FENCE.sub(" ", text))))  # noqa: E731
    missing = set(NUMBER.findall(prose(english))) - set(NUMBER.findall(prose(korean)))
    if missing:
        problems.append(f"numbers missing: {sorted(missing)}")
    if HEADING.findall(english) != HEADING.findall(korean):
        problems.append(f"headings {HEADING.findall(english)} became {HEADING.findall(korean)}")
    if FOLD.findall(english) != FOLD.findall(korean):
        problems.append("the folded blocks (<details>, <summary>) differ")
    if korean.count("</summary>\n\n") != english.count("</summary>\n\n"):
        problems.append("a </summary> lost the blank line after it")
    return problems


@pytest.mark.parametrize("entry", entries(), ids=lambda e: f"{e[0]}:{e[1].occurrences[0][1]}")
def test_a_translation_keeps_formulas_code_links_numbers_and_structure(entry: tuple[str, polib.POEntry]) -> None:
    _, e = entry
    assert not kept(e.msgid, e.msgstr), "; ".join(kept(e.msgid, e.msgstr))


def test_the_structure_check_fails_on_what_it_guards() -> None:
    fold = "\n\n<details><summary>{}</summary>\n\nB\n\n</details>"
    english = "# T\n\nSee $QK^T$ and `x @ y` in [02](02_x.ipynb): 64." + fold.format("A")
    good = "# T\n\n[02](02_x.ipynb)의 $QK^T$와 `x @ y`를 보십시오: 64." + fold.format("답")
    assert kept(english, good) == []
    for broken in (good.replace("$QK^T$", "$QK^\\top$"), good.replace("`x @ y`", "x @ y"),
                   good.replace("$QK^T$", "$QK^T$ $K$"),
                   good.replace("64", "예순넷"), good.replace("# T", "## T"),
                   good.replace("</summary>\n\n", "</summary>\n"), good.replace("(02_x.ipynb)", "(ko/02_x.ipynb)")):
        assert kept(english, broken), broken


def test_an_english_change_makes_the_entry_fuzzy_and_keeps_the_old_english(tmp_path: Path) -> None:
    root = tmp_path
    (root / "notebooks").mkdir()
    english = ROOT / "notebooks" / "01_queries_keys_values.ipynb"
    notebook = root / "notebooks" / english.name
    notebook.write_text(english.read_text(encoding="utf-8"), encoding="utf-8")
    path = tr.catalogue_path(root, notebook)
    tr.update_catalogue(notebook, path)
    po = polib.pofile(str(path))
    first = po[0]
    first.msgstr = "# 01 · 쿼리, 키, 값"
    po.save(str(path))
    text = notebook.read_text(encoding="utf-8")
    text = text.replace("# 01 · Queries, keys and values", "# 01 · Queries, keys, values")
    notebook.write_text(text, encoding="utf-8")
    kept_count, fuzzy, new = tr.update_catalogue(notebook, path)
    entry = polib.pofile(str(path))[0]
    assert (fuzzy, entry.fuzzy, entry.msgstr) == (1, True, "# 01 · 쿼리, 키, 값")
    assert entry.previous_msgid.startswith("# 01 · Queries, keys and values")
    assert tr.build(notebook, polib.pofile(str(path))).cells[0].source.startswith("# 01 · Queries, keys, values")


def test_the_build_changes_only_prose_the_setup_call_and_the_checks_language(tmp_path: Path) -> None:
    english = ROOT / "notebooks" / "04_softmax_and_attention.ipynb"
    po = polib.pofile(str(tr.catalogue_path(ROOT, english)))
    built = tr.build(english, po)
    original = tr.read_notebook(english)
    assert len(built.cells) == len(original.cells)
    for a, b in zip(original.cells, built.cells, strict=True):
        assert (a.cell_type, a.metadata, a.get("id")) == (b.cell_type, b.metadata, b.get("id"))
        if a.cell_type == "code":
            assert b.source == a.source or b.source == a.source.replace(
                "helpers.setup()", 'helpers.setup(lang="ko")')
            assert len(a.outputs) == len(b.outputs)


def test_every_notebook_is_translated_and_built(capsys: pytest.CaptureFixture[str]) -> None:
    """`course translations` exits 0: every English notebook has its Korean edition, translated and built."""
    code = main(["translations"])
    out = capsys.readouterr().out
    assert code == 0, out


def test_course_translations_fails_on_a_notebook_without_its_korean_edition(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "helpers").mkdir()
    english = ROOT / "notebooks" / "01_queries_keys_values.ipynb"
    (tmp_path / "notebooks" / english.name).write_text(english.read_text(encoding="utf-8"), encoding="utf-8")
    rows = tr.status(tmp_path)
    assert [(r.translated, r.built) for r in rows] == [(0, "missing")] and not rows[0].complete
    tr.update_catalogue(tmp_path / "notebooks" / english.name, tr.catalogue_path(tmp_path, english))
    po = polib.pofile(str(tr.catalogue_path(ROOT, english)))
    po.save(str(tr.catalogue_path(tmp_path, english)))
    tr.write_edition(tmp_path)
    assert tr.status(tmp_path)[0].complete
    built = tr.edition_folder(tmp_path) / english.name
    built.write_text(built.read_text(encoding="utf-8").replace("쿼리", "질의", 1), encoding="utf-8")
    assert tr.status(tmp_path)[0].built == "stale", "a Korean notebook edited by hand is not a fresh build"


def stray_stars(text: str) -> int:
    """How many `*` a CommonMark renderer leaves as text, outside code: emphasis it could not pair.

    Formulas become `@@0@@` first, as JupyterLab does before it renders markdown, so "**$x$**는" fails here
    as it does there: a closing `**` right after punctuation must be followed by a space or punctuation,
    which a Korean particle is not ("**인과 마스크(룩어헤드 마스크)**라고" shows its asterisks).
    """
    from markdown_it import MarkdownIt

    page = MarkdownIt("commonmark").render(MATH.sub("@@0@@", text))
    page = re.sub(r"<code>.*?</code>|<pre>.*?</pre>", " ", page, flags=re.S)
    return page.count("*")


PAIRS = {p.name: (tr.read_notebook(ROOT / "notebooks" / p.name), tr.read_notebook(p))
         for p in sorted(tr.edition_folder(ROOT).glob("[0-9][0-9]_*.ipynb"))}
EDITION = [(name, i) for name, (_, ko) in PAIRS.items() for i, c in enumerate(ko.cells) if c.cell_type == "markdown"]


@pytest.mark.parametrize(("name", "index"), EDITION, ids=[f"{n} c{i}" for n, i in EDITION])
def test_korean_bold_and_italics_render(name: str, index: int) -> None:
    english, korean = (nb.cells[index].source for nb in PAIRS[name])
    allowed = 0 if tr.HANGUL.search(english) else stray_stars(english)  # a 정리 is Korean in both editions
    assert stray_stars(korean) <= allowed, (
        f"{name} c{index}: bold or italics that will show their asterisks (put the particle inside, or rephrase)")


def test_the_emphasis_rule_catches_a_particle_after_punctuation() -> None:
    for broken in ("이것을 **인과 마스크(룩어헤드 마스크)**라고 합니다.", "값은 **(B, n)**입니다.",
                   "**`x`**는", "**$x$**는"):
        assert stray_stars(broken), broken
    assert not stray_stars("이것을 **인과 마스크**라고 합니다. *기울기*는 `x**2`와 $a*b$입니다.\n\n- **목표**: 하나")
