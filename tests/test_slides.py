"""`course slides`: reveal.js decks that work with no network, checked in the files and in a real browser.

The browser tests open every deck in headless Chromium (Debian's `chromium`, driven by
Playwright) with the network cut off, visit every slide and check that it renders, that nothing
overflows the slide, that MathJax typeset the LaTeX and that every image loaded. A screenshot of
each deck's title slide, and of every slide that overflows, lands in tests/artifacts/slides/ (ignored by git).
"""

from __future__ import annotations

import copy
import os
import re
import sys
import time
import warnings
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from slides_browser import (
    OVERFLOW_HINT,
    inspect_deck,
    open_deck,
    screenshot_slides,
)

from helpers.course import cli, slides
from helpers.course.cli import main
from helpers.course.notebooks import CourseError, notebook_paths, read_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "tests" / "artifacts" / "slides"
DECKS = [p.stem for p in notebook_paths(NOTEBOOKS)]

# Where a page points at a file: src=, href= (not in-page anchors), CSS url() and @import.
LOCAL_REFERENCE = re.compile(r"""(?:\b(?:src|href)\s*=\s*["']|url\(\s*["']?|@import\s+url\(\s*["']?)([^"')#?\s]+)""")


def slide(kind: str, text: str, cell=new_markdown_cell):
    return cell(text, metadata={"slideshow": {"slide_type": kind}})


def write_notebook(folder: Path, name: str, cells) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    return path


@pytest.fixture
def course_folder(tmp_path) -> Path:
    """A small course: two notebooks with math, notes, a skipped cell and an image output."""
    png = (  # a 1x1 PNG
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
    figure = slide("subslide", "print('figure')", new_code_cell)
    figure.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})]
    cells = [
        slide("slide", "# 00 · A tiny deck\n\nWith $x^2$ inline."),
        slide("notes", "Say: the words only the lecturer sees."),
        slide("skip", "import os  # plumbing", new_code_cell),
        slide("subslide", "## Scaled scores\n\n$$S = \\frac{Q K^\\top}{\\sqrt{d_k}}$$"),
        slide("fragment", "The fragment."),
        figure,
    ]
    folder = tmp_path / "course" / "notebooks"
    write_notebook(folder, "00_tiny", cells)
    write_notebook(folder, "01_other", [slide("slide", "# 01 · Other")])
    return folder


# --- choosing notebooks, errors, output folder -------------------------------------------------


def test_numbers_choose_notebooks_in_course_order(course_folder):
    chosen = slides.select_notebooks(course_folder, ["1", "00", "01"])
    assert [p.name for p in chosen] == ["00_tiny.ipynb", "01_other.ipynb"]
    assert len(slides.select_notebooks(course_folder)) == 2


@pytest.mark.parametrize("token", ["7", "x", "-1", "100"])
def test_a_missing_number_is_a_clear_error_listing_the_valid_ones(course_folder, token):
    with pytest.raises(CourseError, match=rf"no notebook {re.escape(token)}: the notebooks are 00, 01$"):
        slides.select_notebooks(course_folder, [token])


def test_cli_missing_number_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "decks"
    assert main(["slides", "99", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no notebook 99" in err and "00, 01, 02" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("out", "words"),
    [("{file}", "is a file, not a folder"), ("{tmp}/no/such/folder", "its parent folder"), ("{tmp}", "not written by")],
)
def test_a_wrong_out_path_is_one_line_and_changes_nothing(tmp_path, capsys, out, words):
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    (tmp_path / "index.html").write_text("a student's page")  # not ours: never overwritten
    before = sorted(tmp_path.rglob("*"))
    assert main(["slides", "0", "--out", out.format(file=a_file, tmp=tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err
    assert sorted(tmp_path.rglob("*")) == before
    assert a_file.read_text() == "keep me" and (tmp_path / "index.html").read_text() == "a student's page"


def test_a_notebook_with_only_skipped_cells_is_an_error(tmp_path):
    folder = tmp_path / "notebooks"
    write_notebook(folder, "00_hidden", [slide("skip", "x = 1", new_code_cell)])
    with pytest.raises(CourseError, match="no slide to show"):
        slides.export_decks(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- what the export writes -----------------------------------------------------------------------


def test_remote_references_finds_what_a_browser_would_fetch():
    page = """<script src="https://cdn.example.org/reveal.js"></script><link href='//fonts.example.com/a.css'>
    <style>@import url(https://fonts.googleapis.com/css?family=Lato);
    .a { background: url("http://x.org/i.png") }</style>
    <img src="_assets/local.png"><a href="#/2">next</a>"""
    assert slides.remote_references(page) == [
        "//fonts.example.com/a.css", "http://x.org/i.png", "https://cdn.example.org/reveal.js",
        "https://fonts.googleapis.com/css?family=Lato",
    ]
    assert slides.remote_references('<img src="_assets/x.png"><script src="a.js"></script>') == []


def local_references(text: str) -> list[str]:
    return [r for r in LOCAL_REFERENCE.findall(text) if not r.startswith(("data:", "about:")) and r]


def test_export_writes_self_contained_decks_with_notes(course_folder, tmp_path):
    out = tmp_path / "decks"
    report = slides.export_decks(course_folder, out)
    assert [d.path.name for d in report.decks] == ["00_tiny.slides.html", "01_other.slides.html"]
    assert [d.slides for d in report.decks] == [3, 1]
    page = (out / "00_tiny.slides.html").read_text(encoding="utf-8")
    assert not re.search(r"https?://|//cdn", page), "the page names no web address at all"
    # Every file the page loads is there, beside it; so is everything the theme loads.
    for ref in local_references(page):
        assert (out / ref).is_file(), f"the deck loads {ref}, which export did not write"
    theme = out / slides.ASSETS / "reveal.js" / "dist" / "theme" / "white.css"
    for ref in local_references(theme.read_text(encoding="utf-8")):
        assert (theme.parent / ref).is_file(), ref
    for required in ("reveal.js/dist/reveal.js", "reveal.js/plugin/notes/notes.js", "mathjax/MathJax.js",
                     "mathjax/config/TeX-AMS-MML_HTMLorMML-full.js"):
        assert (out / slides.ASSETS / required).is_file(), required
    assert "MathJax.js?config=TeX-AMS-MML_HTMLorMML-full" in page
    # Speaker notes are in the page, for the speaker view only; skipped cells are not in it at all.
    notes = re.findall(r'<aside class="notes">(.*?)</aside>', page, re.S)
    assert len(notes) == 1 and "only the lecturer sees" in notes[0]
    assert "plumbing" not in page
    assert "<title>00 · A tiny deck slides</title>" in page
    index = (out / "index.html").read_text(encoding="utf-8")
    assert 'href="00_tiny.slides.html"' in index and "(3 slides)" in index


def test_export_again_replaces_its_own_files_only(course_folder, tmp_path):
    out = tmp_path / "decks"
    slides.export_decks(course_folder, out, ["0"])
    stamp = out / slides.ASSETS / slides.ASSETS_STAMP
    first = stamp.stat().st_mtime_ns
    (out / "notes.txt").write_text("my notes")
    report = slides.export_decks(course_folder, out, ["0", "1"])
    assert len(report.decks) == 2 and stamp.stat().st_mtime_ns == first, "same packages: assets not copied again"
    assert (out / "notes.txt").read_text() == "my notes"
    (out / "01_other.slides.html").write_text("<html>a page someone edited by hand</html>")
    with pytest.raises(CourseError, match="01_other.slides.html, not written by"):
        slides.export_decks(course_folder, out)
    assert "edited by hand" in (out / "01_other.slides.html").read_text()


def test_assets_come_from_installed_packages_not_the_repository():
    reveal, mathjax, plotly = slides.asset_sources()
    for source in (reveal, mathjax, plotly):
        # Installed packages only: a virtual environment inside the course folder (.venv) is fine.
        assert ROOT not in source.parents or (ROOT / ".venv") in source.parents, source
    assert "site-packages" in str(reveal) or "dist-packages" in str(reveal)
    tracked = [p for p in ROOT.rglob("reveal.js") if ".venv" not in p.parts and "artifacts" not in p.parts]
    assert not [p for p in tracked if p.is_file()], "reveal.js is never copied into the repository"


# --- folded blocks, figure-only cells, local images ---------------------------------------------

# How the notebooks fold hints and answers: a blank line after <summary> and before </details>,
# several blocks in one cell, markdown (code, math, a code block) inside.
FOLDED = """## Check your understanding

1. Why divide by the square root?

<details><summary>Hint 1: the idea</summary>

The variance of a **dot product** grows like $d_k$: call `math.sqrt(d_k)`.

</details>
<details><summary>Answer</summary>

The secret answer, $\\sqrt{d_k} = 8$, and its code:

```python
scores = Q @ K.mT / math.sqrt(d_k)
```

</details>

2. Last question, no blank line before the end.

<details><summary>Answer</summary>

Another secret answer.
</details>
"""


def folded_blocks(page: str) -> list:
    """Every <details> of a page, with all it holds. The parser reads the whole page as before, but builds
    only the blocks' trees (SoupStrainer): the same blocks, in 2/5 of the time on a course deck (15 of them)."""
    from bs4 import BeautifulSoup, SoupStrainer

    return BeautifulSoup(page, "html.parser", parse_only=SoupStrainer("details")).find_all("details")


def test_folded_blocks_keep_their_rendered_markdown_inside(tmp_path):
    folder = tmp_path / "notebooks"
    write_notebook(folder, "00_folded", [slide("slide", FOLDED)])
    page = slides.export_decks(folder, tmp_path / "out").decks[0].path.read_text(encoding="utf-8")
    blocks = folded_blocks(page)
    assert [b.summary.get_text() for b in blocks] == ["Hint 1: the idea", "Answer", "Answer"]
    assert not any(b.has_attr("open") for b in blocks)
    hint, answer, last = blocks
    assert hint.find("strong").get_text() == "dot product" and hint.find("code").get_text() == "math.sqrt(d_k)"
    assert "$d_k$" in hint.get_text()  # math left for MathJax, inside the block
    assert "$\\sqrt{d_k} = 8$" in answer.get_text()
    assert "scores = Q @ K.mT / math.sqrt(d_k)" in answer.find("pre").get_text()  # the code block, highlighted
    assert "Another secret answer." in last.get_text()
    # Nothing of the folded text is left outside the blocks.
    for block in blocks:
        block.decompose()
    from bs4 import BeautifulSoup

    outside = BeautifulSoup(str(BeautifulSoup(page, "html.parser")), "html.parser")
    for block in outside.find_all("details"):
        block.decompose()
    assert "secret" not in outside.get_text() and "dot product" not in outside.get_text()


def test_the_course_notebooks_fold_every_details_block_with_its_content(course_decks):
    out, _ = course_decks
    for name in DECKS:
        page = (out / f"{name}.slides.html").read_text(encoding="utf-8")
        for block in folded_blocks(page):
            content = "".join(str(c) for c in block.contents if c is not block.summary).strip()
            assert content and not block.has_attr("open"), f"{name}: {block.summary} exported open or empty"


def test_the_course_exporter_writes_the_page_nbconvert_would_write(course_folder):
    """slides._course_exporter skips nbconvert's BeautifulSoup pass and makes its changes itself: the page,
    read and written by BeautifulSoup as nbconvert does, is nbconvert's own, byte for byte (a check on
    every nbconvert this is installed with). Both decks of both editions had the same DOM in Chromium too."""
    from bs4 import BeautifulSoup
    from nbconvert import SlidesExporter

    nb = read_notebook(course_folder / "00_tiny.ipynb")
    korean = "## 정리: 한국어 제목 &amp; <b>굵게</b>\n\n- 어텐션 `a < b` &nbsp;끝."
    nb.cells += [slide("slide", korean), slide("slide", FOLDED)]
    using = slides.exporter("ko")
    resources = {"metadata": {"name": "00_tiny", "path": str(course_folder)}}
    ours, _ = using.from_notebook_node(nb, copy.deepcopy(resources))
    theirs, _ = SlidesExporter.from_notebook_node(using, nb, copy.deepcopy(resources))
    assert 'tabindex="0"' in theirs and "No description has been provided" in theirs, "what the pass adds is there"
    assert str(BeautifulSoup(ours, features="html.parser")) == theirs
    assert "한국어 제목" in ours and "&#" not in ours.split("</style>")[-1], "Hangul as characters, for the font"


def test_figure_only_cells_show_their_outputs_without_their_code(tmp_path):
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    tagged = slide("slide", "draw_the_long_diagram(ax)  # tagged", new_code_cell)
    tagged.metadata["tags"] = [slides.FIGURE_ONLY_TAG]
    tagged.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
                      nbformat.v4.new_output("stream", text="printed by the tagged cell\n")]
    plain = slide("slide", "print('shown with its code')  # untagged", new_code_cell)
    plain.outputs = [nbformat.v4.new_output("stream", text="printed by the untagged cell\n")]
    other_tag = slide("slide", "x = 1  # another tag", new_code_cell)
    other_tag.metadata["tags"] = ["nbval-ignore-output"]
    folder = tmp_path / "notebooks"
    path = write_notebook(folder, "00_figures", [slide("slide", "# 00 · Figures"), tagged, plain, other_tag])
    before = path.read_bytes()
    page = slides.export_decks(folder, tmp_path / "out").decks[0].path.read_text(encoding="utf-8")
    assert "draw_the_long_diagram" not in page and "printed by the tagged cell" in page
    assert page.count(f"data:image/png;base64,{png}") == 1
    assert "shown with its code" in page and "printed by the untagged cell" in page and "another tag" in page
    assert path.read_bytes() == before, "the notebook itself keeps its code (JupyterLab and RISE unchanged)"


def test_outputs_with_only_the_course_own_data_are_left_out_quietly(tmp_path):
    record = {"application/vnd.attention-course.own-model+json": {}}
    check = {"application/vnd.attention-course.check+json": {}, "text/plain": "the check says passed"}
    cell = slide("slide", "record_of_training()", new_code_cell)
    cell.outputs = [nbformat.v4.new_output("display_data", data=record),
                    nbformat.v4.new_output("display_data", data=check)]
    folder = tmp_path / "notebooks"
    write_notebook(folder, "00_records", [slide("slide", "# 00 · Records\n\nText."), cell])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nbconvert warns about an output it cannot show
        page = slides.export_decks(folder, tmp_path / "out").decks[0].path.read_text(encoding="utf-8")
    assert "record_of_training" in page and "the check says passed" in page


def test_course_figure_only_tags_sit_on_code_cells_with_something_to_show():
    for path in notebook_paths(NOTEBOOKS):
        for number, cell in enumerate(read_notebook(path).cells):
            if slides.FIGURE_ONLY_TAG in cell.metadata.get("tags", []):
                assert cell.cell_type == "code", f"{path.name} cell {number}: the tag hides code cells' input only"
                shown = [o for o in cell.get("outputs", []) if o.get("text") or o.get("data")]
                assert shown, f"{path.name} cell {number}: tagged, but no output: its slide would be empty"


def test_course_small_code_tags_sit_on_exercise_solutions_only():
    for path in notebook_paths(NOTEBOOKS):
        for number, cell in enumerate(read_notebook(path).cells):
            if slides.SMALL_CODE_TAG in cell.metadata.get("tags", []):
                solution = cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution")
                assert solution, f"{path.name} cell {number}: only a solution may be too long for a slide"


def test_markdown_images_beside_the_notebook_are_embedded(tmp_path):
    folder = tmp_path / "notebooks"
    (folder / "figures").mkdir(parents=True)
    (folder / "figures" / "a.png").write_bytes(b"\x89PNG fake bytes")
    (tmp_path / "secret.png").write_bytes(b"outside the notebooks' folder")
    cell = slide("slide", "# 00 · Images\n\n![a figure](figures/a.png)\n\n<img src='figures/a.png' width=10>\n\n"
                 "<img src=\"../secret.png\">\n\n<img src=\"gone.png\">")
    write_notebook(folder, "00_images", [cell])
    page = slides.export_decks(folder, tmp_path / "out").decks[0].path.read_text(encoding="utf-8")
    data = "data:image/png;base64,iVBORyBmYWtlIGJ5dGVz"
    assert page.count(data) == 2 and "figures/a.png" not in page
    assert 'src="../secret.png"' in page and 'src="gone.png"' in page  # left alone: the browser test reports them


# --- Hangul: a subset of Noto Sans KR embedded in every deck ------------------------------------

KOREAN = "## 정리\n\n- 어텐션은 `Q = X W_Q`에서 시작합니다.\n- 한국어 슬라이드, Hanja 漢字, 「괄호」."


def embedded_font(page: str):
    """The Hangul font a page embeds, opened with fontTools, and its @font-face rule."""
    from fontTools.ttLib import TTFont

    rule = re.search(r"@font-face \{[^}]*\}", page.split('<style id="course-hangul-font">')[1]).group(0)
    data = re.search(r"base64,([A-Za-z0-9+/=]+)", rule).group(1)
    import base64
    import io

    return TTFont(io.BytesIO(base64.b64decode(data))), rule


def test_the_hangul_font_comes_from_an_installed_package_under_the_open_font_license():
    path = slides.hangul_font_path()
    assert "site-packages" in str(path) or "dist-packages" in str(path), path
    from fontTools.ttLib import TTFont

    font = TTFont(path, lazy=True)
    assert "SIL Open Font License" in font["name"].getDebugName(13)  # its licence: embedding and subsetting allowed
    assert font["OS/2"].fsType == 0, "installable embedding"


def test_a_page_embeds_only_its_own_korean_characters_after_the_latin_fonts():
    page = ("<html><head><style>:root { --r-main-font: Source Sans Pro, Helvetica, sans-serif; "
            "--r-code-font: monospace; }</style></head><body><p>English — x², 정리 한국어 漢字 「」</p></body></html>")
    embedded = slides.embed_hangul_font(page)
    font, rule = embedded_font(embedded)
    assert set(chr(c) for c in font.getBestCmap()) == set("정리한국어漢字「」"), "exactly the page's Korean characters"
    assert "unicode-range: U+1100-11FF" in rule and "U+0000" not in rule and "U+0020" not in rule
    assert f'data:font/{slides.font_flavor()};base64,' in rule
    assert '--r-main-font: Source Sans Pro, Helvetica, "Course Hangul", sans-serif;' in embedded
    assert '--r-code-font: monospace, "Course Hangul";' in embedded
    assert not slides.remote_references(embedded)
    english = "<html><head></head><body><p>English only — x²</p></body></html>"
    assert slides.embed_hangul_font(english) == english, "no Korean character: nothing added"


@pytest.mark.parametrize(("stack", "expected"), [
    ("Source Sans Pro, Helvetica, sans-serif", 'Source Sans Pro, Helvetica, "Course Hangul", sans-serif'),
    ("system-ui, -apple-system, 'Segoe UI', arial, sans-serif, 'Apple Color Emoji'",
     "system-ui, -apple-system, 'Segoe UI', arial, \"Course Hangul\", sans-serif, 'Apple Color Emoji'"),
    ("menlo, consolas, 'DejaVu Sans Mono', monospace",
     "menlo, consolas, 'DejaVu Sans Mono', \"Course Hangul\", monospace"),
    ("monospace", 'monospace, "Course Hangul"'),
    ("Georgia", 'Georgia, "Course Hangul"'),
])
def test_the_hangul_font_goes_after_the_latin_fonts_of_a_stack(stack, expected):
    assert slides.with_hangul(stack) == expected


def test_course_decks_embed_their_korean_characters_and_stay_small(course_decks):
    out, _ = course_decks
    for name in DECKS:
        page = (out / f"{name}.slides.html").read_text(encoding="utf-8")
        font, rule = embedded_font(page)
        assert set(chr(c) for c in font.getBestCmap()) == set(slides.hangul_characters(page)), name
        assert "정리" in page and len(rule) < 80_000, f"{name}: the font takes {len(rule)} bytes"
        # The theme's and JupyterLab's stacks all name the font (JupyterLab's variables are in the page).
        for variable in slides._FONT_VARIABLES:
            assert re.search(rf'{variable}: [^;]*"Course Hangul"', page), f"{name}: {variable}"


# --- languages: --lang ko and the index page ---------------------------------------------------------


def test_index_page_in_english_and_korean():
    decks = [("00_tiny.slides.html", "00 · A <tiny> deck", 3)]
    en, ko = slides.index_page(decks), slides.index_page(decks, "ko")
    assert '<html lang="en">' in en and "<title>Attention, step by step: slides</title>" in en
    assert '<a href="00_tiny.slides.html">00 · A &lt;tiny&gt; deck</a> <span>(3 slides)</span>' in en
    assert "<kbd>S</kbd> speaker view" in en and "course-hangul-font" not in en, "no Hangul, no font"
    assert '<html lang="ko">' in ko and "<title>Attention, step by step: 강의 슬라이드</title>" in ko
    assert "<span>(슬라이드 3장)</span>" in ko and "<kbd>S</kbd> 발표자 화면" in ko and "다음" in ko
    assert '--jp-content-font-family: sans-serif, "Course Hangul";' in ko, "the Korean index carries its font"
    assert slides._GENERATOR_TAG.search(ko) and slides._GENERATOR_TAG.search(en)
    with pytest.raises(CourseError, match="no slides in language 'fr': the languages are en, ko"):
        slides.index_page(decks, "fr")


@pytest.fixture
def korean_course(course_folder, monkeypatch) -> Path:
    """A course whose notebooks/ko/ holds a Korean copy of one notebook; `course` finds it as its root."""
    root = course_folder.parent
    nb = read_notebook(course_folder / "00_tiny.ipynb")
    nb.cells[0].source = "# 00 · 작은 덱\n\n$x^2$ 수식이 있는 슬라이드입니다."
    nb.cells.append(slide("slide", KOREAN))
    nbformat.write(nb, write_notebook(course_folder / "ko", "00_tiny", []))
    monkeypatch.setattr(cli, "course_root", lambda: root)
    return root


def test_cli_lang_ko_writes_korean_decks_into_slides_ko(korean_course, capsys):
    assert main(["slides", "--lang", "ko"]) == 0
    out = korean_course / "slides" / "ko"
    assert sorted(p.name for p in out.iterdir()) == ["00_tiny.slides.html", "_assets", "index.html"]
    deck = (out / "00_tiny.slides.html").read_text(encoding="utf-8")
    assert '<html lang="ko">' in deck and "<title>00 · 작은 덱 slides</title>" in deck and "course-hangul-font" in deck
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "(슬라이드 4장)" in index and ">00 · 작은 덱</a>" in index
    assert str(out / "index.html") in capsys.readouterr().out
    assert main(["slides"]) == 0 and (korean_course / "slides" / "01_other.slides.html").is_file(), "en: the default"
    assert '<html lang="en">' in (korean_course / "slides" / "00_tiny.slides.html").read_text(encoding="utf-8")


def test_cli_lang_ko_without_notebooks_ko_is_one_line_and_writes_nothing(course_folder, monkeypatch, capsys):
    root = course_folder.parent
    monkeypatch.setattr(cli, "course_root", lambda: root)
    before = sorted(root.rglob("*"))
    assert main(["slides", "--lang", "ko"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Korean edition to present" in err and "notebooks/ko" in err, err
    assert sorted(root.rglob("*")) == before
    with pytest.raises(SystemExit):
        main(["slides", "--lang", "fr"])


@pytest.fixture(scope="session")
def course_decks(tmp_path_factory) -> tuple[Path, float]:
    """Every course notebook exported once, and how long the export took (seconds)."""
    out = tmp_path_factory.mktemp("slides") / "slides"
    start = time.perf_counter()
    slides.export_decks(NOTEBOOKS, out)
    return out, time.perf_counter() - start


def test_course_decks_count_their_slides_and_name_no_web_address(course_decks):
    out, seconds = course_decks
    assert sorted(p.name for p in out.glob("*.slides.html")) == [f"{d}.slides.html" for d in DECKS]
    for name in DECKS:
        page = (out / f"{name}.slides.html").read_text(encoding="utf-8")
        sections = len(re.findall(r"<section\b", page))
        nb = read_notebook(NOTEBOOKS / f"{name}.ipynb")
        horizontal = 1 + sum(1 for c in nb.cells[1:] if c.metadata.get("slideshow", {}).get("slide_type") == "slide")
        assert sections == slides.count_slides(nb) + horizontal, name  # one <section> per slide and per stack
        assert not re.findall(r"https?://", page), f"{name} names a web address"
    print(f"\nexported {len(DECKS)} decks in {seconds:.1f} s", file=sys.stderr)


def test_jupyterlab_rise_is_installed_for_live_presenting():
    package_json = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "jupyterlab-rise" / "package.json"
    assert package_json.is_file(), "jupyterlab-rise (RISE for JupyterLab) comes with `pip install -e .`"


# --- in a real browser ----------------------------------------------------------------------------


@pytest.fixture
def tiny_deck(course_folder, tmp_path) -> Path:
    """A deck with one slide of each problem the browser check must catch, and two fine ones."""
    cells = [
        slide("slide", "# 00 · Fine\n\nA short slide with $\\sqrt{d_k}$."),
        slide("notes", "Say: the secret lecturer words."),
        slide("slide", "## Too long\n\n" + "\n\n".join(f"Line {i} of a slide that goes on." for i in range(30))),
        slide("slide", "## Too wide\n\n| " + " | ".join(f"column{i}" for i in range(40)) + " |\n|"
              + "---|" * 40 + "\n| " + " | ".join("1" for _ in range(40)) + " |"),
        slide("slide", "## Broken formula\n\n$\\frac{1}{$ and $\\undefinedmacro{x}$"),
        slide("slide", '## Missing picture\n\n<img src="no_such_picture.png" alt="gone">'),
        slide("slide", "## Also fine\n\nThe end."),
    ]
    write_notebook(course_folder, "02_problems", cells)
    out = tmp_path / "decks"
    slides.export_decks(course_folder, out, ["2"])
    return out / "02_problems.slides.html"


def test_browser_check_catches_overflow_untypeset_math_and_missing_images(browser, tiny_deck):
    context, log = browser
    inspection = inspect_deck(context, log, tiny_deck)
    problems = inspection.problems()
    assert len(inspection.slides) == 6

    def about(number: int) -> list[str]:
        return [p for p in problems if f" slide {number} (" in p]

    assert about(1) == [] and about(6) == [], problems
    assert any("overflows the slide" in p and "past the bottom" in p for p in about(2)), problems
    assert any("past the right" in p or "cut off" in p for p in about(3)), problems
    assert any("LaTeX error shown" in p and "Missing close brace" in p for p in about(4)), problems
    assert any("MathJax could not typeset: Undefined control sequence" in p for p in problems), problems
    assert any("image did not load" in p for p in about(5)), problems
    assert inspection.slides[0]["math"] >= 1 and inspection.slides[0]["notes"] == 1


def test_a_folded_answer_is_hidden_until_its_summary_is_clicked(browser, tmp_path):
    context, log = browser
    folder = tmp_path / "notebooks"
    long_answer = "## A long answer\n\n<details><summary>Answer</summary>\n\n" + "\n\n".join(
        f"Line {i} of an answer taller than the slide." for i in range(40)) + "\n\n</details>"
    cells = [slide("slide", "# 00 · Folded\n\nAnswers stay shut."), slide("slide", FOLDED), slide("slide", long_answer)]
    write_notebook(folder, "00_folded", cells)
    path = slides.export_decks(folder, tmp_path / "out").decks[0].path
    inspection = inspect_deck(context, log, path)
    # Shut, the long answer takes one line: what a folded block hides is not measured.
    assert inspection.problems() == [] and len(inspection.slides[1]["details"]) == 3
    page = open_deck(context, log, path)
    try:
        page.evaluate("() => Reveal.slide(1, 0)")
        section = page.locator("section.present:not(.stack)")
        answer = section.locator("details p", has_text="The secret answer")
        code = section.locator("details pre", has_text="scores = Q @ K.mT")
        assert not answer.is_visible() and not code.is_visible()
        assert "secret" not in section.inner_text()
        section.locator("summary", has_text="Answer").first.click()
        answer.wait_for(state="visible")
        assert code.is_visible() and answer.locator(".MathJax").count() == 1, "opened: text, code and typeset math"
        assert not section.locator("details p", has_text="Another secret answer").is_visible(), "the others stay shut"
    finally:
        page.close()
    assert log.remote_requests == [] and log.page_errors == []


def test_browser_check_catches_open_and_empty_folded_blocks(browser, tmp_path):
    context, log = browser
    folder = tmp_path / "notebooks"
    cells = [slide("slide", "# 00 · Fine\n\nA first slide."),
             slide("slide", "## Open\n\n<details open><summary>Answer</summary>\n\nIn plain sight.\n\n</details>"),
             slide("slide", "## Empty\n\n<details><summary>Hint</summary></details>\n\nThe hint, outside.")]
    write_notebook(folder, "00_unfolded", cells)
    path = slides.export_decks(folder, tmp_path / "out").decks[0].path
    problems = inspect_deck(context, log, path).problems()
    assert len(problems) == 2, problems
    assert " slide 2 (1/0, 'Open')" in problems[0] and "'Answer' is open" in problems[0]
    assert " slide 3 (2/0, 'Empty')" in problems[1] and "'Hint' is empty" in problems[1]


def test_a_solution_tagged_small_code_fits_where_the_same_code_overflows(browser, tmp_path):
    context, log = browser
    code = "\n".join(f"value_{i:02d} = torch.zeros(batch_size, sequence_length, d_model)  # line {i} of a long one"
                     for i in range(34))
    long, tagged = slide("slide", code, new_code_cell), slide("slide", code, new_code_cell)
    tagged.metadata["tags"] = [slides.SMALL_CODE_TAG]
    folder = tmp_path / "notebooks"
    write_notebook(folder, "00_long", [slide("slide", "# 00 · Long code\n\nTwo slides."), long, tagged])
    inspection = inspect_deck(context, log, slides.export_decks(folder, tmp_path / "out").decks[0].path)
    assert inspection.overflowing() == [2], inspection.problems()


def korean_font_installed() -> bool:
    """Whether fontconfig knows a font with Korean (the browser would draw Hangul without the deck's own)."""
    import shutil
    import subprocess

    fc_list = shutil.which("fc-list")
    return fc_list is None or bool(subprocess.run([fc_list, ":lang=ko"], capture_output=True, text=True).stdout.strip())


def test_hangul_renders_with_the_embedded_font_and_boxes_without_it(browser, korean_course, tmp_path):
    """On a machine without a Korean font the check sees the boxes of a deck without the font (main's decks)."""
    context, log = browser
    assert main(["slides", "--lang", "ko"]) == 0
    path = korean_course / "slides" / "ko" / "00_tiny.slides.html"
    inspection = inspect_deck(context, log, path)
    assert inspection.problems() == [], inspection.problems()
    assert inspection.hangul["letters"] == "작은" and "Course Hangul" in inspection.hangul["family"]
    assert "Course Hangul" in inspection.hangul["faces"], "the embedded font is loaded"
    page = path.read_text(encoding="utf-8")
    bare = tmp_path / path.name
    bare.write_text(re.sub(r'<style id="course-hangul-font">.*?</style>', "", page, flags=re.S), encoding="utf-8")
    (tmp_path / slides.ASSETS).symlink_to(path.parent / slides.ASSETS)
    if korean_font_installed():
        pytest.skip("this machine has a Korean font, so a deck without its own draws Hangul too")
    problems = inspect_deck(context, log, bare).problems()
    assert len(problems) == 1 and "Hangul shows as empty boxes" in problems[0] and "'작은'" in problems[0], problems
    # Pictures of the Korean slide, with and without the font, in tests/artifacts/slides/hangul/.
    screenshot_slides(context, log, path, [4], ARTIFACTS / "hangul" / "with-font")
    screenshot_slides(context, log, bare, [4], ARTIFACTS / "hangul" / "without-font")


def test_speaker_view_shows_the_notes_offline(browser, tiny_deck):
    context, log = browser
    log.clear()
    page = open_deck(context, log, tiny_deck)
    try:
        with context.expect_page() as popup:
            page.keyboard.press("s")
        speaker = popup.value
        speaker.wait_for_function(
            "() => (document.querySelector('.speaker-controls-notes .value') || {}).textContent"
            "?.includes('the secret lecturer words')",
            timeout=30_000,
        )
        speaker.close()
    finally:
        page.close()
    assert log.remote_requests == [] and log.page_errors == []


# What the decks' inspection found, deck by deck, for the totals at the end.
INSPECTED: dict[str, object] = {}


def inspect_course_deck(browser, course_decks, name: str):
    context, log = browser
    out, _ = course_decks
    inspection = inspect_deck(context, log, out / f"{name}.slides.html", screenshots=ARTIFACTS / name, shots=1)
    INSPECTED[name] = inspection
    return inspection


@pytest.mark.parametrize("name", DECKS)
def test_every_slide_renders_fits_and_is_typeset(browser, course_decks, name):
    inspection = inspect_course_deck(browser, course_decks, name)
    assert len(inspection.slides) == slides.count_slides(read_notebook(NOTEBOOKS / f"{name}.ipynb"))
    assert (ARTIFACTS / name / "slide-01.png").is_file()
    assert inspection.hangul, f"{name}: no Korean text found (every deck ends with its 정리)"
    problems = inspection.problems()
    if inspection.overflowing():  # a picture of each overflowing slide, to see what to split
        context, log = browser
        out, _ = course_decks
        shots = screenshot_slides(context, log, out / f"{name}.slides.html", inspection.overflowing(),
                                  ARTIFACTS / name / "overflowing")
        problems.append(f"screenshots of the overflowing slides: {shots[0].parent}")
    assert not problems, f"{len(problems)} problem(s) in {name}:\n" + "\n".join(problems) + "\n" + OVERFLOW_HINT


def test_all_decks_total_slides_and_none_overflows(browser, course_decks, capsys):
    """Runs after the decks (same file, same worker): every deck's slides, and the overflowing ones."""
    inspections = [INSPECTED.get(name) or inspect_course_deck(browser, course_decks, name) for name in DECKS]
    overflowing = [i.where(number) for i in inspections for number in i.overflowing()]
    total = sum(len(i.slides) for i in inspections)
    line = f"slides: {len(DECKS)} decks, {total} slides, {len(overflowing)} overflowing"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "totals.txt").write_text(line + "\n" + "".join(f"{w}\n" for w in overflowing), encoding="utf-8")
    if "PYTEST_XDIST_WORKER" in os.environ:
        print(line)  # a worker's terminal is not the user's: shown with -rP, and in tests/artifacts/slides/
    else:
        with capsys.disabled():
            print(f"\n{line}")
    assert not overflowing, f"{len(overflowing)} slide(s) overflow:\n" + "\n".join(overflowing) + "\n" + OVERFLOW_HINT
