"""`course slides`: reveal.js decks that work with no network, checked in the files and in a real browser.

The browser tests open every deck in headless Chromium (Debian's `chromium`, driven by
Playwright) with the network cut off, visit every slide and check that it renders, that nothing
overflows the slide, that MathJax typeset the LaTeX and that every image loaded. Screenshots of
the first slides of each deck land in tests/artifacts/slides/ (ignored by git).
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from slides_browser import HOW_TO_INSTALL, chromium, find_chromium, inspect_deck, open_deck

from helpers.course import slides
from helpers.course.cli import main
from helpers.course.notebooks import CourseError, notebook_paths, read_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "tests" / "artifacts" / "slides"
DECKS = [p.stem for p in notebook_paths(NOTEBOOKS)]

# Slides that overflow because ONE cell (code with its figure or printed output) is taller than a
# slide: slide metadata cannot fix them, the notebook's content must (a shorter cell, a smaller
# figure, plotting code moved into helpers.plotting). Listed by deck and slide title as the test
# reports them. Any other overflow fails the test, and so does a listed slide that fits again:
# then delete its line. The list only shrinks.
KNOWN_OVERFLOW: dict[str, list[str]] = {
    "00_welcome": [
        'def forgot_to_sum(a: torch.Tensor, b: torch.Tensor',
        'import matplotlib.pyplot as plt degrees = torch.ra',
    ],
    "01_queries_keys_values": [
        'sentence = ["the", "cat", "sat", "on", "the", "mat',
        'from helpers.plotting import attention_heatmap fig',
        'def with_linear_convention(X, W_q, W_k, W_v): retu',
    ],
    "02_attention_scores": [
        'fig, ax = plt.subplots(figsize=(9, 6.5)) colours =',
        'd_model_paper, d_k_paper = 512, 64 lengths_n = [2*',
        'fig, ax = plt.subplots() ax.loglog(lengths_n, scor',
    ],
    "03_scaling": [
        'fig, ax = plt.subplots() ax.loglog(dims, dims, "-"',
        'def no_scaling(Q: torch.Tensor, K: torch.Tensor) -',
        'styles = {"unscaled": ("o-", "C3"), "÷ √d_k": ("s-',
        'from helpers.plotting import attention_heatmap tok',
        'fig, ax = plt.subplots() for name, (marker, colour',
    ],
    "04_softmax_and_attention": [
        '_, w_after = attention_zeroed_after(*project_qkv(X',
    ],
    "05_multi_head_attention": [
        'def draw_matrix(ax, values, left, top, colours, ro',
        'fig, axes = plt.subplots(2, 2, figsize=(12, 11)) n',
    ],
    "06_positional_encoding": [
        'pe_128 = positional.sinusoidal_positional_encoding',
        'fig, ax = plt.subplots(figsize=(10, 6)) image = ax',
        'fig, ax = plt.subplots() ax.plot(ks, formula, labe',
        'def position_similarity(codes: torch.Tensor) -> to',
    ],
    "07_encoder_block": [
        'def draw_block(ax: plt.Axes, steps: list[str], ski',  # 38 lines of drawing code and a diagram: 1664 px
        'def gradient_through_stack(residual: bool, depth: ',  # 25 lines of code and its printout: 840 px
        'layers = range(1, 31) fig, ax = plt.subplots() ax.',  # code and a plot: 730 px
        'words = ["the", "cat", "sat", "on", "the", "mat"] ',  # 22 lines of code and a two-panel figure: 1120 px
        'def measure_stack(norm_first: bool, depth: int, se',  # 31 lines of code and its printout: 888 px
        'fig, axes = plt.subplots(1, 2, figsize=(14, 5.6)) ',  # 16 lines of code and a two-panel plot: 896 px
        'parts = {"self-attention": paper_layer.self_attent',  # 12 lines of code and a plot: 826 px
    ],
    "08_decoder_and_cross_attention": [
        'n_t, n_s = len(decoder_input), len(source) causal ',  # code and the mask as a figure: 768 px
        'fig, axes = plt.subplots(1, 2, figsize=(16, 7.5)) ',  # code and a two-panel figure: 808 px
        'change_masked = (out - out_changed).abs().amax(dim',  # 20 lines of code and a figure: 1048 px
        'fig, axes = plt.subplots(1, 2, figsize=(17, 7)) at',  # code and a two-panel figure: 786 px
        'fig, ax = plt.subplots(figsize=(11, 7.5)) attentio',  # code and a heatmap: 808 px
        'fig, ax = plt.subplots(figsize=(14, 7)) ax.imshow(',  # 14 lines of code and a figure: 960 px
    ],
}

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
    reveal, mathjax = slides.asset_sources()
    for source in (reveal, mathjax):
        # Installed packages only: a virtual environment inside the course folder (.venv) is fine.
        assert ROOT not in source.parents or (ROOT / ".venv") in source.parents, source
    assert "site-packages" in str(reveal) or "dist-packages" in str(reveal)
    tracked = [p for p in ROOT.rglob("reveal.js") if ".venv" not in p.parts and "artifacts" not in p.parts]
    assert not [p for p in tracked if p.is_file()], "reveal.js is never copied into the repository"


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


@pytest.fixture(scope="session")
def browser():
    pytest.importorskip("playwright.sync_api", reason="Playwright is missing: `pip install -e .` installs it")
    executable = find_chromium()
    if executable is None:
        pytest.skip(HOW_TO_INSTALL)
    with chromium(executable) as (context, log):
        yield context, log


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


@pytest.mark.parametrize("name", DECKS)
def test_every_slide_renders_fits_and_is_typeset(browser, course_decks, name):
    context, log = browser
    out, _ = course_decks
    inspection = inspect_deck(context, log, out / f"{name}.slides.html", screenshots=ARTIFACTS / name, shots=3)
    assert len(inspection.slides) == slides.count_slides(read_notebook(NOTEBOOKS / f"{name}.ipynb"))
    assert (ARTIFACTS / name / "slide-01.png").is_file()
    known = KNOWN_OVERFLOW.get(name, [])
    problems = inspection.problems(known_overflow=known)
    fits_now = list((Counter(known) - Counter(inspection.overflowing())).elements())
    problems += [f"{name}: {title!r} fits on its slide now: delete it from KNOWN_OVERFLOW" for title in fits_now]
    hint = ("\nAn overflowing slide: start a new slide (subslide) at a natural break; if one cell alone is "
            "taller than a slide, make the cell shorter (see KNOWN_OVERFLOW).")
    assert not problems, f"{len(problems)} problem(s) in {name}:\n" + "\n".join(problems) + hint
