"""Reveal.js slide decks of the course notebooks that work with no network: `course slides`.

A deck is one HTML page per notebook, exported with nbconvert's reveal.js exporter through a
small course template. Everything a deck loads comes from files beside it, copied at export
time from two installed PyPI packages (never from the repository, never from the network):

- reveal.js (its script, style, the white theme with its fonts, the speaker-notes plugin)
  from ``sphinx-revealjs``, which ships reveal.js's own distribution files;
- MathJax 2 (TeX input, HTML-CSS output with its STIX-Web fonts) from ``jupyter-server-mathjax``;
- Noto Sans KR (SIL Open Font License 1.1, which allows embedding) from ``pylopdf-fonts-ko``, for
  Hangul: every deck (the English ones too: their 정리) embeds it, subset to the Korean characters
  that deck uses, as a base64 WOFF2 (WOFF without ``brotli``) in an ``@font-face`` placed after the
  Latin fonts in every font stack, so Hangul renders on a machine with no Korean font and English
  text is unchanged (``embed_hangul_font``).
- plotly.js from ``plotly``, loaded only by a deck with an interactive figure (notebook 14's explorer).

The output folder holds ``NN_name.slides.html`` per notebook, ``index.html`` (links to the
decks, from ``slides_index.html.j2``, in English or Korean) and ``_assets/`` (reveal.js and
MathJax). Copy the folder anywhere: it is self-contained.
Files the command did not write are never overwritten.

Two things differ from nbconvert's defaults, so that a deck shows what JupyterLab shows:

- folded ``<details>`` blocks stay folded, their markdown rendered inside them. nbconvert's
  ``embed_images`` option re-parses every HTML block on its own, which closes a ``<details>``
  at once and leaves its content outside it; so decks export without it and embed the
  markdown's local images themselves (``embed_local_images``);
- a code cell tagged ``slide-figure-only`` (``FIGURE_ONLY_TAG``) shows only its outputs in
  the deck, for a figure whose code and picture together are taller than a slide;
- an exercise's solution cell tagged ``slide-small-code`` (``SMALL_CODE_TAG``) shows its code
  in a smaller font in the deck, for a solution longer than a slide (solutions are the only
  cells allowed over 25 lines). JupyterLab and RISE ignore both tags.
"""

from __future__ import annotations

import base64
import copy
import html
import importlib.metadata
import importlib.util
import io
import mimetypes
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup
from nbformat import NotebookNode

from helpers.checks.language import LANGUAGES
from helpers.course.files import default_mode, write_text
from helpers.course.notebooks import CourseError, notebook_paths, read_notebook

#: Slide size in CSS pixels: 16:9, what projectors and lecture-hall screens show.
SLIDE_WIDTH = 1280
SLIDE_HEIGHT = 720

#: A code cell with this tag (metadata.tags) shows only its outputs in a deck (input hidden).
FIGURE_ONLY_TAG = "slide-figure-only"
#: An exercise's solution cell with this tag shows its code in a smaller font in a deck (the template's style).
SMALL_CODE_TAG = "slide-small-code"

#: The media types of the course's own outputs (check results, the capstone's model record).
COURSE_DATA_TYPE = "application/vnd.attention-course."

ASSETS = "_assets"
#: A file inside ASSETS that says the course wrote the folder (and with which package versions).
ASSETS_STAMP = "COURSE_SLIDES_ASSETS"
#: Every page the command writes carries this tag; a page without it is never overwritten.
GENERATOR = '<meta name="generator" content="course slides">'
# nbconvert rewrites the page's markup (attribute order, closing slashes): match the tag, not the text.
_GENERATOR_TAG = re.compile(r'<meta\b(?=[^>]*\bname="generator")(?=[^>]*\bcontent="course slides")[^>]*>')
DECK_SUFFIX = ".slides.html"
INDEX = "index.html"

# Where the assets come from: (PyPI distribution, import package, folder inside the package).
REVEAL_SOURCE = ("sphinx-revealjs", "sphinx_revealjs", "_static/revealjs")
MATHJAX_SOURCE = ("jupyter-server-mathjax", "jupyter_server_mathjax", "static")
HANGUL_SOURCE = ("pylopdf-fonts-ko", "pylopdf_fonts_ko", ".")
HANGUL_FILE = "NotoSansKR-Regular.otf"

#: The family name decks give the embedded Hangul font (a subset of Noto Sans KR).
HANGUL_FAMILY = "Course Hangul"
#: The Korean blocks the embedded font covers (its @font-face unicode-range): Hangul Jamo, CJK symbols
#: and punctuation, Hangul compatibility Jamo, CJK ideographs (Hanja), Jamo extended A, Hangul
#: syllables and Jamo extended B, halfwidth and fullwidth forms. Every other character keeps its font.
#: Line metrics the Hangul font is given (CSS @font-face overrides): those of the decks' Latin sans fonts.
HANGUL_ASCENT, HANGUL_DESCENT = "93%", "24%"
HANGUL_RANGES = ((0x1100, 0x11FF), (0x3000, 0x303F), (0x3130, 0x318F), (0x4E00, 0x9FFF), (0xA960, 0xA97F),
                 (0xAC00, 0xD7FF), (0xFF00, 0xFFEF))
_HANGUL_CHARACTER = re.compile("[" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in HANGUL_RANGES) + "]")
# The font stacks of a deck (reveal.js's theme, JupyterLab's style): the Hangul font goes after their
# Latin fonts, before the generic family that ends them.
_FONT_VARIABLES = ("--r-main-font", "--r-heading-font", "--r-code-font", "--jp-ui-font-family",
                   "--jp-content-font-family", "--jp-code-font-family-default")
_GENERIC_FAMILIES = ("sans-serif", "serif", "monospace", "cursive", "fantasy", "emoji", "math")

PLOTLY_SOURCE = ("plotly", "plotly", "package_data")
#: plotly.js inside `_assets`; a deck loads it only when a cell's output draws with it (notebook 14's explorer).
PLOTLY_JS = "plotly/plotly.min.js"
#: The class of an output element drawn by plotly.js (helpers.plotting.PLOTLY_CLASS: the same string).
PLOTLY_CLASS = "course-plotly"

# The reveal.js files a deck uses (relative to reveal.js's root).
REVEAL_FILES = (
    "LICENSE",
    "dist/reveal.js",
    "dist/reveal.css",
    "dist/theme/white.css",
    "dist/theme/fonts/source-sans-pro",
    "plugin/notes/notes.js",
)
# MathJax folders a deck never needs: the SVG output (decks use HTML-CSS, with STIX-Web fonts),
# the accessibility explorer, and translations of MathJax's menus.
MATHJAX_SKIP = ("jax/output/SVG", "extensions/a11y")
MATHJAX_LANGUAGES = ("en",)

# Resource references that make a browser fetch something: src=/href=/srcset=/data=/poster=
# attributes, CSS url(...) and @import, and JavaScript module imports.
_REMOTE_REFERENCE = re.compile(
    r"""(?:\b(?:src|href|srcset|data|poster|action)\s*=\s*["']?\s*|url\(\s*["']?|@import\s+["']|\bimport\s*\(?\s*["']|"""
    r"""\bfrom\s+["'])((?:https?:|wss?:|ftp:)?//[^"')\s>]+)""",
    re.IGNORECASE,
)

_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.S | re.I)
# An <img> tag's src attribute (quoted), as the markdown renderer writes it or an author typed it.
_IMG_SRC = re.compile(r"""(<img\b[^>]*?\bsrc\s*=\s*)(["'])(.*?)\2""", re.S | re.I)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)

# The page template: nbconvert's reveal template, minus everything it loads from CDNs
# (jQuery, RequireJS, Mermaid, MathJax, reveal.js), plus the course's slide style.
TEMPLATE = (Path(__file__).parent / "slides_template.html.j2").read_text(encoding="utf-8")
#: The index page's template, in every language of LANGUAGES.
INDEX_TEMPLATE = (Path(__file__).parent / "slides_index.html.j2").read_text(encoding="utf-8")


@dataclass
class Deck:
    number: str
    path: Path
    slides: int


@dataclass
class Report:
    out: Path
    decks: list[Deck] = field(default_factory=list)
    index: Path | None = None


# --- choosing notebooks and checking the output folder --------------------------------------------


def select_notebooks(folder: Path, numbers: Sequence[str] = ()) -> list[Path]:
    """The notebooks named by `numbers` ("3", "03"), in course order; all of them when none is given."""
    paths = notebook_paths(folder)
    if not paths:
        raise CourseError(f"no course notebooks (NN_name.ipynb) in {folder}")
    by_number = {int(p.name[:2]): p for p in paths}
    valid = ", ".join(p.name[:2] for p in paths)
    if not numbers:
        return paths
    chosen: list[Path] = []
    for token in numbers:
        if not token.isdigit() or int(token) not in by_number:
            raise CourseError(f"no notebook {token}: the notebooks are {valid}")
        if by_number[int(token)] not in chosen:
            chosen.append(by_number[int(token)])
    return sorted(chosen)


def _written_by_us(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return bool(_GENERATOR_TAG.search(f.read(4096)))
    except OSError:
        return False


def prepare_out(out: Path, names: Iterable[str], make_parent: bool = False) -> None:
    """Check `out` before anything is written: a folder (or one its parent can hold, or whose parent
    export may make, with `make_parent`), writable, with no file of another origin where a deck,
    the index or the assets would go."""
    if out.exists() and not out.is_dir():
        raise CourseError(f"{out} is a file, not a folder: give --out a folder")
    if make_parent and not out.parent.exists() and out.parent.parent.is_dir():
        return  # slides/ko/ in a course without slides/ yet
    if not out.exists():
        if not out.parent.is_dir():
            raise CourseError(f"cannot create {out}: its parent folder {out.parent} does not exist")
        return
    if not os.access(out, os.W_OK | os.X_OK):
        raise CourseError(f"cannot write to {out}: permission denied")
    try:  # os.access says yes to root everywhere, even where writing fails (/sys, a read-only mount)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise CourseError(f"cannot write to {out}: {(exc.strerror or 'error').lower()}") from None
    foreign = [n for n in [*names, INDEX] if (out / n).exists() and not _written_by_us(out / n)]
    assets = out / ASSETS
    if assets.exists() and not (assets / ASSETS_STAMP).is_file():
        foreign.append(ASSETS + "/")
    if foreign:
        raise CourseError(f"{out} already holds {', '.join(foreign)}, not written by `course slides`: "
                          "choose another --out (nothing was changed)")


# --- assets: reveal.js and MathJax from installed packages ---------------------------------------


def package_folder(distribution: str, package: str, inside: str) -> Path:
    """A folder inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CourseError(f"the package {distribution} is not installed: run `pip install -e .` in the course folder")
    folder = Path(next(iter(spec.submodule_search_locations))) / inside
    if not folder.is_dir():
        raise CourseError(
            f"{distribution} has no {inside}/ folder: reinstall it (`pip install --force-reinstall {distribution}`)"
        )
    return folder


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def asset_sources() -> tuple[Path, Path, Path]:
    """reveal.js's, MathJax's and plotly.js's folders in the installed packages."""
    reveal = package_folder(*REVEAL_SOURCE)
    mathjax = package_folder(*MATHJAX_SOURCE)
    plotly = package_folder(*PLOTLY_SOURCE)
    for folder, needed in ((reveal, "dist/reveal.js"), (mathjax, "MathJax.js"), (plotly, "plotly.min.js")):
        if not (folder / needed).is_file():
            raise CourseError(f"no {needed} in {folder}: reinstall the course's dependencies (`pip install -e .`)")
    return reveal, mathjax, plotly


def copy_assets(out: Path) -> Path:
    """Copy reveal.js, MathJax and plotly.js into `out/_assets` (skipped when the same versions are there)."""
    reveal, mathjax, plotly = asset_sources()
    stamp = (
        f"written by `course slides`: reveal.js from {REVEAL_SOURCE[0]} {_version(REVEAL_SOURCE[0])}, "
        f"MathJax from {MATHJAX_SOURCE[0]} {_version(MATHJAX_SOURCE[0])}, "
        f"plotly.js from {PLOTLY_SOURCE[0]} {_version(PLOTLY_SOURCE[0])}\n"
    )
    assets = out / ASSETS
    stamp_file = assets / ASSETS_STAMP
    if stamp_file.is_file() and stamp_file.read_text(encoding="utf-8") == stamp:
        return assets
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".assets-"))
    try:
        for name in REVEAL_FILES:
            source, target = reveal / name, staging / "reveal.js" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)

        def skip(folder: str, names: list[str]) -> list[str]:
            relative = Path(folder).relative_to(mathjax).as_posix()
            if relative == "localization":
                return [n for n in names if n not in MATHJAX_LANGUAGES]
            return [n for n in names if (n if relative == "." else f"{relative}/{n}") in MATHJAX_SKIP]

        shutil.copytree(mathjax, staging / "mathjax", ignore=skip)
        (staging / PLOTLY_JS).parent.mkdir()
        shutil.copy2(plotly / "plotly.min.js", staging / PLOTLY_JS)
        (staging / ASSETS_STAMP).write_text(stamp, encoding="utf-8")
        os.chmod(staging, default_mode(folder=True))  # mkdtemp makes it private
        if assets.exists():
            shutil.rmtree(assets)
        staging.rename(assets)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return assets


# --- Hangul: a subset of Noto Sans KR in every deck ----------------------------------------------


def hangul_font_path() -> Path:
    """Noto Sans KR in the installed package pylopdf-fonts-ko."""
    path = package_folder(*HANGUL_SOURCE) / HANGUL_FILE
    if not path.is_file():
        raise CourseError(f"no {HANGUL_FILE} in {path.parent}: reinstall {HANGUL_SOURCE[0]} (`pip install -e .`)")
    return path


def hangul_characters(text: str) -> str:
    """The distinct characters of `text` in the Korean blocks (HANGUL_RANGES), sorted."""
    return "".join(sorted(set(_HANGUL_CHARACTER.findall(text))))


def font_flavor() -> str:
    """WOFF2 where Brotli (its compression) is installed, else WOFF (zlib, always there)."""
    return "woff2" if importlib.util.find_spec("brotli") else "woff"


def subset_font(characters: str, source: bytes | Path | None = None, flavor: str | None = None) -> bytes:
    """The font `source` (default: Noto Sans KR) cut down to `characters`, as `flavor` (None: OpenType)."""
    from fontTools import subset

    options = subset.Options()
    options.flavor = flavor
    font = subset.load_font(io.BytesIO(source) if isinstance(source, bytes) else str(source or hangul_font_path()),
                            options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(c) for c in characters])
    subsetter.subset(font)
    out = io.BytesIO()
    subset.save_font(font, out, options)
    return out.getvalue()


def hangul_font_face(characters: str, source: bytes | None = None) -> str:
    """An @font-face rule of HANGUL_FAMILY holding `characters` only, base64 inside (nothing to load)."""
    flavor = font_flavor()
    data = base64.b64encode(subset_font(characters, source, flavor)).decode("ascii")
    ranges = ", ".join(f"U+{a:04X}-{b:04X}" for a, b in HANGUL_RANGES)
    return (f'@font-face {{ font-family: "{HANGUL_FAMILY}"; font-style: normal; font-weight: 400; '
            f'src: url(data:font/{flavor};base64,{data}) format("{flavor}"); unicode-range: {ranges}; '
            # Noto Sans KR's own ascent and descent (1.16 and 0.29 em) would make every line holding Hangul
            # taller than the same line in the Latin font, and Korean slides overflow where English ones fit.
            f'ascent-override: {HANGUL_ASCENT}; descent-override: {HANGUL_DESCENT}; line-gap-override: 0%; }}')


def with_hangul(stack: str) -> str:
    """A CSS font stack with HANGUL_FAMILY after its Latin fonts: before its first generic family
    after its first font (``monospace`` gives ``monospace, "Course Hangul"``)."""
    families = [f.strip() for f in stack.split(",") if f.strip()]
    generic = next((i for i, f in enumerate(families) if i and f.strip("'\"").lower() in _GENERIC_FAMILIES),
                   len(families))
    return ", ".join([*families[:generic], f'"{HANGUL_FAMILY}"', *families[generic:]])


def _font_stacks(css: str) -> dict[str, str]:
    """The first value of each of _FONT_VARIABLES that `css` defines."""
    found = {}
    for name in _FONT_VARIABLES:
        match = re.search(rf"{re.escape(name)}\s*:\s*([^;{{}}]+);", css)
        if match:
            found[name] = " ".join(match.group(1).split())
    return found


def embed_hangul_font(page: str, characters: str | None = None, source: bytes | None = None,
                      theme: str = "") -> str:
    """`page` with a subset of the Hangul font embedded and put into its font stacks.

    `characters`: those to keep (default: the page's own Korean characters; none, nothing is
    added); `source`: a font already cut down (default: Noto Sans KR); `theme`: a style sheet
    the page links to (reveal.js's theme), whose font stacks the page overrides too. Only the
    stacks held in _FONT_VARIABLES get the font (the index page keeps its own in one of them).
    """
    characters = hangul_characters(page) if characters is None else characters
    if not characters:
        return page
    stacks = {**_font_stacks(theme), **_font_stacks(page)}
    # :root:root outranks the :root rules of the page and of the theme, wherever they come in the page.
    overrides = "".join(f"\n  {name}: {with_hangul(stack)};" for name, stack in stacks.items())
    style = (f'<style id="course-hangul-font">\n{hangul_font_face(characters, source)}\n'
             f":root:root {{{overrides}\n}}\n</style>\n")
    head_end = page.lower().rfind("</head>")
    if head_end < 0:
        raise CourseError("a page without </head>: nowhere to put the Hangul font")
    return page[:head_end] + style + page[head_end:]


# --- exporting ------------------------------------------------------------------------------------


def count_slides(nb: NotebookNode) -> int:
    """How many slides (reveal.js sections, subslides included) the notebook's metadata makes."""
    types = [c.get("metadata", {}).get("slideshow", {}).get("slide_type", "-") for c in nb.cells]
    visible = [i for i, t in enumerate(types) if t not in ("notes", "skip")]
    if not visible:
        return 0
    return 1 + sum(1 for t in types[visible[0] + 1 :] if t in ("slide", "subslide"))


# What nbconvert's HTMLExporter adds to a page after its template (see _course_exporter): a text for an image
# without one, and keyboard focus for a cell's input and each output.
NO_ALT_TEXT = "No description has been provided for this image"
_IMG_WITHOUT_ALT = re.compile(r"<img\b(?![^>]*\balt\s*=)", re.I)
_FOCUSABLE_DIV = re.compile(r'(<div\b[^>]*\bclass="(?:[^"]*\s)?(?:jp-Cell-inputWrapper|jp-OutputArea-output)'
                            r'(?:\s[^"]*)?"[^>]*)>')


_RAW_TEXT = re.compile(r"(<script\b.*?</script\s*>|<style\b.*?</style\s*>)", re.S | re.I)
_CHARACTER_REFERENCE = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def _decode_references(page: str) -> str:
    """`page` with its character references written as the characters (`&#54252;` as 포), as BeautifulSoup
    wrote them: the markdown renderer writes a heading's Hangul so, and embed_hangul_font finds the
    characters a deck needs in its text. `&amp; &lt; &gt; &quot; &#39;` stay; scripts and styles stay as they are."""

    def decode(match: re.Match) -> str:
        character = html.unescape(match.group(0))
        return match.group(0) if character in ("&", "<", ">", '"', "'") or character == match.group(0) else character

    parts = _RAW_TEXT.split(page)  # text, a script or style, text, ...
    return "".join(part if i % 2 else _CHARACTER_REFERENCE.sub(decode, part) for i, part in enumerate(parts))


def _course_exporter():  # -> a subclass of nbconvert.SlidesExporter
    """nbconvert's SlidesExporter, less the BeautifulSoup pass of HTMLExporter.from_notebook_node.

    That pass parses the whole page and writes it out again only to add an alt text to images that have
    none and tabindex="0" to cells' inputs and outputs: it took 58 % of an export (7 of 12 s for the 15
    English decks). The same two additions are made here on the page's text (every tag they touch is one
    the template wrote), and the rest of that method is kept as it is in nbconvert 7.
    """
    from nbconvert import SlidesExporter
    from nbconvert.exporters.html import Highlight2HTML, WidgetsDataTypeFilter
    from nbconvert.exporters.templateexporter import TemplateExporter

    class CourseSlidesExporter(SlidesExporter):
        def from_notebook_node(self, nb, resources=None, **kw):
            langinfo = nb.metadata.get("language_info", {})
            lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
            highlight_code = self.filters.get("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self))
            resources = self._init_resources(resources)
            filter_data_type = WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata, parent=self,
                                                     resources=resources)
            self.register_filter("highlight_code", highlight_code)
            self.register_filter("filter_data_type", filter_data_type)
            page, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            page = _IMG_WITHOUT_ALT.sub(f'<img alt="{NO_ALT_TEXT}"', page)
            return _decode_references(_FOCUSABLE_DIV.sub(r'\1 tabindex="0">', page)), resources

    return CourseSlidesExporter


def exporter(lang: str = "en"):  # -> nbconvert.SlidesExporter
    """nbconvert's reveal.js exporter, set up for decks that load only files beside them (<html lang=`lang`>)."""
    from traitlets.config import Config

    # nbconvert's TagRemovePreprocessor (on by default) drops the input of a tagged cell, keeps its outputs.
    config = Config({"TagRemovePreprocessor": {"remove_input_tags": {FIGURE_ONLY_TAG}}})
    return _course_exporter()(
        config=config,
        raw_template=TEMPLATE,
        reveal_url_prefix=f"{ASSETS}/reveal.js",
        reveal_theme="white",
        reveal_transition="slide",
        reveal_number="c/t",
        reveal_width=str(SLIDE_WIDTH),
        reveal_height=str(SLIDE_HEIGHT),
        mathjax_url=f"{ASSETS}/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full",
        # Never used by the course template; set so that no CDN address is even in memory.
        require_js_url="",
        jquery_url="",
        mermaid_js_url="",
        # Off: it re-parses each HTML block alone and so empties every <details> (see the module's
        # docstring); render_deck embeds the markdown's local images instead.
        embed_images=False,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        language_code=lang,
    )


def render_deck(nb: NotebookNode, name: str, folder: Path, using=None) -> str:
    """The HTML page of one deck (`folder`: where the notebook's relative images live; `using`: an exporter)."""
    if count_slides(nb) == 0:
        raise CourseError(f"{name}: every cell is skip or notes, so there is no slide to show")
    nb = copy.deepcopy(nb)
    for cell in nb.cells:  # the course's own records for its tools (no picture, no text): nothing to show
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if not _course_data_only(o)]
    nb.metadata["title"] = deck_title(nb, name)  # the browser tab shows "03 · Scaling by √d_k slides"
    body, _ = (using or exporter()).from_notebook_node(
        nb, resources={"metadata": {"name": name, "path": str(folder)}, "course_generator": GENERATOR}
    )
    # Style sheets nbconvert inlines carry credits with web addresses in comments: a deck has no use for them.
    body = _STYLE.sub(lambda m: _CSS_COMMENT.sub("", m.group(0)), body)
    body = embed_local_images(body, folder)
    if f'class="{PLOTLY_CLASS}"' in body:  # an interactive figure: plotly.js must be there before its script runs
        body = body.replace("</head>", f'<script src="{ASSETS}/{PLOTLY_JS}"></script>\n</head>', 1)
    remote = remote_references(body)
    if remote:
        raise CourseError(f"{name}: the deck would load {remote[0]} from the network ({len(remote)} such reference(s))")
    return body


def _course_data_only(output: NotebookNode) -> bool:
    """An output that holds only the course's own data types (nbconvert would warn it cannot show it)."""
    data = output.get("data")
    return bool(data) and all(kind.startswith(COURSE_DATA_TYPE) for kind in data)


def embed_local_images(page: str, folder: Path) -> str:
    """`page` with every <img> whose src is a file inside `folder` turned into a data: address.

    Addresses outside `folder`, remote ones, data: ones and files that are not there stay as
    they are (the browser test reports an image that does not load).
    """
    base = folder.resolve()

    def embed(match: re.Match) -> str:
        src = html.unescape(match.group(3))
        if not src or re.match(r"^[a-z][a-z0-9+.-]*:|^//|^#", src, re.I):
            return match.group(0)  # data:, http:, attachment:, //host, #anchor
        path = (base / src).resolve()
        if base not in path.parents or not path.is_file():
            return match.group(0)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"{match.group(1)}{match.group(2)}data:{mime};base64,{data}{match.group(2)}"

    return _IMG_SRC.sub(embed, page)


def remote_references(text: str) -> list[str]:
    """Remote addresses a page (or style sheet) would load: script, style, image, font, frame sources."""
    return sorted(set(_REMOTE_REFERENCE.findall(text)))


def index_page(decks: Sequence[tuple[str, str, int]], lang: str = "en") -> str:
    """A page linking every deck, in `lang` (slides_index.html.j2): (file name, title, number of slides)."""
    if lang not in LANGUAGES:
        raise CourseError(f"no slides in language {lang!r}: the languages are {', '.join(LANGUAGES)}")
    template = jinja2.Environment(autoescape=True, keep_trailing_newline=True).from_string(INDEX_TEMPLATE)
    page = template.render(lang=lang, generator=Markup(GENERATOR),
                           decks=[{"file": f, "title": title, "slides": n} for f, title, n in decks])
    return embed_hangul_font(page)


def deck_title(nb: NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text = cell.source if isinstance(cell.source, str) else "".join(cell.source)
            match = re.search(r"^#\s+(.+)$", text, re.M)
            if match:
                return match.group(1).replace("*", "").strip()
    return fallback


def export_decks(
    folder: Path, out: Path, numbers: Sequence[str] = (), lang: str = "en", make_parent: bool = False
) -> Report:
    """Export the chosen notebooks of `folder` (in language `lang`) as decks in `out` (and `out`'s
    parent folder, with `make_parent`); checks everything before writing."""
    if lang not in LANGUAGES:
        raise CourseError(f"no slides in language {lang!r}: the languages are {', '.join(LANGUAGES)}")
    paths = select_notebooks(folder, numbers)
    names = [p.stem + DECK_SUFFIX for p in paths]
    prepare_out(out, names, make_parent)
    reveal = asset_sources()[0]  # a missing package is reported before anything is written
    hangul_font_path()
    notebooks = [(p, read_notebook(p)) for p in paths]
    using = exporter(lang)
    pages = [render_deck(nb, p.stem, p.parent, using) for p, nb in notebooks]  # all before any write
    # The 4.6 MB font is read once, cut to every deck's Korean characters; each deck's subset comes from that.
    everything = hangul_characters("".join(pages))
    base = subset_font(everything) if everything else None
    theme = (reveal / "dist" / "theme" / "white.css").read_text(encoding="utf-8")
    pages = [embed_hangul_font(page, source=base, theme=theme) for page in pages]
    created = next((f for f in (out.parent, out) if not f.exists()), None)  # removed again if writing fails
    try:
        out.mkdir(parents=make_parent, exist_ok=True)
        copy_assets(out)
        report = Report(out=out)
        for (path, nb), page, name in zip(notebooks, pages, names):
            write_text(out / name, page)
            report.decks.append(Deck(number=path.name[:2], path=out / name, slides=count_slides(nb)))
    except OSError as exc:
        if created:
            shutil.rmtree(created, ignore_errors=True)
        raise CourseError(f"cannot write to {out}: {exc.strerror or exc}") from None
    listed = []
    for page in sorted(out.glob("*" + DECK_SUFFIX)):
        if _written_by_us(page):
            nb_path = folder / (page.name[: -len(DECK_SUFFIX)] + ".ipynb")
            nb = read_notebook(nb_path) if nb_path.is_file() else None
            title = deck_title(nb, page.stem) if nb else page.stem
            listed.append((page.name, title, count_slides(nb) if nb else 0))
    report.index = out / INDEX
    write_text(report.index, index_page(listed, lang))
    return report
