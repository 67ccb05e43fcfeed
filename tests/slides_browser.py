"""Headless Chromium for the slide tests: find it, open a deck offline, inspect every slide.

Used by tests/test_slides.py. The browser is Debian's `chromium` (or any Chromium/Chrome given
by COURSE_CHROMIUM), driven by Playwright's Python package; Playwright's own browser downloads
are never used. Every request that is not a local file is blocked and recorded, so a deck that
needs the network fails the test instead of quietly loading something.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_ENV = "COURSE_CHROMIUM"
#: What a failing overflow check tells the author to do.
OVERFLOW_HINT = (
    "An overflowing slide: start a new slide (slide_type subslide) at a natural break; if one code cell "
    "with its figure is taller than a slide, tag it slide-figure-only (CONTRIBUTING.md, \"Slides\")."
)

HOW_TO_INSTALL = (
    "no Chromium found, so the slide decks were not checked in a browser: install it with "
    "`sudo apt-get install chromium` (Debian, Ubuntu: chromium-browser), or point "
    f"{CHROMIUM_ENV} at a Chromium or Chrome executable"
)
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The browser window: a 16:9 screen, the shape the decks are made for.
VIEWPORT = {"width": 1280, "height": 720}
#: How far (in slide pixels) content may poke out of the slide before it counts as overflow.
TOLERANCE = 2
#: MathJax probes web-font loading with a font at about:blank; its failure is expected.
EXPECTED_FAILURES = ("about:blank",)


def find_chromium() -> str | None:
    """A Chromium executable: $COURSE_CHROMIUM, else chromium / chromium-browser / google-chrome on PATH."""
    candidates = [os.environ.get(CHROMIUM_ENV), "chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium"]
    for candidate in candidates:
        if candidate:
            found = shutil.which(candidate)
            if found:
                return found
    return None


@dataclass
class BrowserLog:
    """What the browser saw that a deck must not cause: network requests, script errors, failed loads."""

    remote_requests: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_loads: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.remote_requests.clear()
        self.page_errors.clear()
        self.failed_loads.clear()


@contextmanager
def chromium(executable: str) -> Iterator[tuple[object, BrowserLog]]:
    """A fresh browser profile with the network cut off: (Playwright BrowserContext, its log)."""
    from playwright.sync_api import sync_playwright

    log = BrowserLog()
    profile = tempfile.mkdtemp(prefix="course-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=LAUNCH_ARGS, viewport=VIEWPORT
            )

            def route(route_) -> None:
                url = route_.request.url
                if url.startswith(("file:", "data:", "blob:")):
                    route_.continue_()
                else:
                    log.remote_requests.append(url)
                    route_.abort()

            context.route("**/*", route)
            try:
                yield context, log
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def open_deck(context, log: BrowserLog, path: Path, timeout_ms: int = 60_000):
    """Open a deck from its file and wait until reveal.js is ready and MathJax has typeset the page."""
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    page.on("pageerror", lambda error: log.page_errors.append(str(error)))
    page.on(
        "requestfailed",
        lambda request: None if request.url.startswith(EXPECTED_FAILURES) else log.failed_loads.append(request.url),
    )
    page.goto(path.resolve().as_uri())
    page.wait_for_function("() => window.Reveal && Reveal.isReady()")
    if page.evaluate("() => Boolean(window.MathJax && MathJax.Hub)"):
        page.evaluate("() => new Promise(done => MathJax.Hub.Queue(() => done(true)))")
    else:
        log.page_errors.append("MathJax did not load")
    page.evaluate("() => Reveal.configure({transition: 'none', backgroundTransition: 'none'})")
    return page


# Measures the current slide, everything in slide pixels (the slide is width x height before
# reveal.js scales it to the window). Fragments are laid out even while hidden, so the measure
# is that of the fully built slide.
INSPECT_SLIDES = r"""
async ([first, last]) => {
  const results = [];
  for (let i = first; i < last; i++) {
    const ix = Reveal.getIndices(Reveal.getSlides()[i]);
    Reveal.slide(ix.h, ix.v, 1000);  // every fragment shown
    results.push(await inspect());
  }
  return results;
}"""

INSPECT_FUNCTION = r"""
window.courseInspect = async () => {
  const slide = Reveal.getCurrentSlide();
  const config = Reveal.getConfig();
  const area = document.querySelector('.reveal .slides').getBoundingClientRect();
  const scale = area.width / config.width;
  const tolerance = TOLERANCE;
  const images = Array.from(slide.querySelectorAll('img'));
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  const name = el => el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
      ? '.' + el.className.trim().split(/\s+/).slice(0, 2).join('.') : '');
  // Inside a closed <details> only the summary shows (Chromium still gives the rest a size).
  const folded = el => el.parentElement && el.parentElement.closest('details:not([open])') && !el.closest('summary');
  const skip = el => el.closest('aside.notes, script, style') || folded(el);
  // A formula and a block of code are measured as a whole (their insides are thousands of spans).
  const whole = '.MathJax, .MathJax_Display, .MathJax_Preview, pre';
  const inside = el => el.parentElement && el.parentElement.closest(whole);
  let bottom = 0, right = 0, left = 0, top = 0, worst = null, worstBy = 0;
  const clipped = [];
  for (const el of slide.querySelectorAll('*')) {
    if (skip(el) || inside(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const over = {
      bottom: (r.bottom - area.top) / scale - config.height,
      right: (r.right - area.left) / scale - config.width,
      left: (area.left - r.left) / scale,
      top: (area.top - r.top) / scale,
    };
    bottom = Math.max(bottom, over.bottom); right = Math.max(right, over.right);
    left = Math.max(left, over.left); top = Math.max(top, over.top);
    const by = Math.max(over.bottom, over.right, over.left, over.top);
    if (by > worstBy) { worstBy = by; worst = name(el); }
    const style = getComputedStyle(el);
    const hiddenX = ['auto', 'scroll', 'hidden', 'clip'].includes(style.overflowX);
    const hiddenY = ['auto', 'scroll', 'hidden', 'clip'].includes(style.overflowY);
    if ((hiddenX && el.scrollWidth > el.clientWidth + tolerance)
        || (hiddenY && el.scrollHeight > el.clientHeight + tolerance)) {
      clipped.push(`${name(el)} (${el.scrollWidth}x${el.scrollHeight} in ${el.clientWidth}x${el.clientHeight})`);
    }
  }
  // TeX that MathJax left as text: outside code, outputs and typeset math.
  const rawTex = [];
  const walker = document.createTreeWalker(slide, NodeFilter.SHOW_TEXT, {acceptNode: node =>
      node.parentElement.closest('pre, code, script, style, textarea, aside.notes, .jp-OutputArea, ' + whole)
        ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
  const tex = /\$\$|\$[^$\s][^$]*\$|\\\(|\\\[|\\begin\{|\\frac\b|\\sqrt\b/;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const match = node.textContent.match(tex);
    if (match) rawTex.push(node.textContent.trim().slice(0, 60));
  }
  const plainText = el => {
    const parts = [];
    const texts = document.createTreeWalker(el, NodeFilter.SHOW_TEXT, {acceptNode: node =>
        node.parentElement.closest('script, .MathJax_Preview, .MJX_Assistive_MathML, .anchor-link')
          ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
    for (let node = texts.nextNode(); node; node = texts.nextNode()) parts.push(node.textContent);
    return parts.join('').replace(/\s+/g, ' ').trim();
  };
  const heading = slide.querySelector('h1, h2, h3, h4');
  const visible = Array.from(slide.children).filter(el => !el.matches('aside.notes'));
  // The slide's first line as the audience sees it (notes, folded content and hidden math left out).
  const firstLine = (slide.innerText || '').split('\n').map(line => line.trim()).find(Boolean)
      || (slide.querySelector('img') ? '(a figure, no text)' : '');
  // Folded blocks: one that is open, or holds nothing but its summary, gives its answer away.
  const details = Array.from(slide.querySelectorAll('details')).map(d => {
    const summary = d.querySelector(':scope > summary');
    const content = Array.from(d.childNodes).filter(node => node !== summary)
      .map(node => node.textContent || '').join('').trim();
    return {open: d.open, summary: summary ? plainText(summary).slice(0, 40) : '', content: content.length};
  });
  return {
    indices: Reveal.getIndices(slide),
    title: (heading ? plainText(heading) : plainText(slide)).slice(0, 50),
    firstLine: firstLine.slice(0, 60),
    details,
    present: slide.classList.contains('present') && getComputedStyle(slide).display !== 'none',
    height: slide.getBoundingClientRect().height / scale,
    text: (slide.innerText || '').trim().length,
    pictures: slide.querySelectorAll('img, svg, canvas').length,
    children: visible.length,
    overflow: {bottom, right, left, top},
    worst,
    clipped,
    images: images.map(img => ({
      ok: img.complete && img.naturalWidth > 0, src: (img.getAttribute('src') || '').slice(0, 50)})),
    math: slide.querySelectorAll('.MathJax, .MathJax_Display').length,
    mathErrors: Array.from(slide.querySelectorAll('.merror, .noError')).map(e => e.textContent.slice(0, 60)),
    rawTex,
    notes: Array.from(slide.querySelectorAll('aside.notes')).map(n => n.textContent.trim()).filter(Boolean).length,
  };
}
""".replace("TOLERANCE", str(TOLERANCE))
INSPECT_SLIDES = INSPECT_SLIDES.replace("await inspect()", "await window.courseInspect()")


# Hangul as the deck renders it, measured once per deck: the first Korean text (a course deck's 정리)
# in the font the page gives it, two of its letters and a private-use code point (no font has one:
# the missing-glyph box) drawn one by one on a canvas. Where no font has Hangul, every letter is
# that same box: the two letters draw alike, and alike the box.
HANGUL_PROBE = r"""
async () => {
  // The first Hangul text in the deck (its 정리, in a course deck), and the font it is set in.
  const hangul = /[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]/g;
  const walker = document.createTreeWalker(document.querySelector('.reveal .slides'), NodeFilter.SHOW_TEXT,
      {acceptNode: node => node.parentElement.closest('script, style') ? NodeFilter.FILTER_REJECT
        : (node.textContent.match(hangul) ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_SKIP)});
  const node = walker.nextNode();
  if (!node) return null;
  const letters = Array.from(new Set(node.textContent.match(hangul))).slice(0, 2);
  const style = getComputedStyle(node.parentElement);
  const font = `${style.fontStyle} ${style.fontWeight} 48px ${style.fontFamily}`;
  const box = '\ue000';  // a private-use code point: no font has it, every font draws its missing-glyph box
  await document.fonts.load(font, letters.join('') + box);
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 64;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const draw = text => {
    ctx.clearRect(0, 0, 64, 64); ctx.font = font; ctx.textBaseline = 'top'; ctx.fillText(text, 4, 4);
    return Array.from(ctx.getImageData(0, 0, 64, 64).data).join(',');
  };
  const [first, second, missing] = [draw(letters[0]), draw(letters[1] || letters[0]), draw(box)];
  return {
    text: node.textContent.trim().slice(0, 30),
    family: style.fontFamily,
    letters: letters.join(''),
    distinct: letters.length < 2 || first !== second,
    notBox: first !== missing && second !== missing,
    faces: Array.from(document.fonts).filter(f => f.status === 'loaded').map(f => f.family.replace(/"/g, '')),
  };
}"""


@dataclass
class DeckInspection:
    name: str
    slides: list[dict]
    math_errors: list[str]
    log: BrowserLog
    #: HANGUL_PROBE's result: None for a deck without Korean text.
    hangul: dict | None = None

    def where(self, number: int) -> str:
        """Slide `number` (1-based, as reveal.js counts) named for a reader: deck, number, position, first line."""
        s = self.slides[number - 1]
        return f"{self.name} slide {number} ({s['indices']['h']}/{s['indices']['v']}, {s['firstLine']!r})"

    def overflowing(self) -> list[int]:
        """Numbers (1-based) of the slides whose content overflows the slide or is cut off."""
        return [number for number, s in enumerate(self.slides, start=1) if _overflows(s)]

    def problems(self) -> list[str]:
        """One line per problem: which slide (number as reveal.js shows it, position, first line) and what."""
        found = [f"{self.name}: the deck asked the network for {url}" for url in self.log.remote_requests]
        found += [f"{self.name}: a script failed: {error}" for error in self.log.page_errors]
        found += [f"{self.name}: could not load {url}" for url in self.log.failed_loads]
        found += [f"{self.name}: MathJax could not typeset: {error}" for error in self.math_errors]
        if self.hangul and not (self.hangul["distinct"] and self.hangul["notBox"]):
            found.append(f"{self.name}: Hangul shows as empty boxes (no font with Hangul): {self.hangul['letters']!r} "
                         f"in {self.hangul['text']!r}, font-family {self.hangul['family']}")
        for number, s in enumerate(self.slides, start=1):
            where = self.where(number)
            if not s["present"] or s["height"] <= 0 or not (s["text"] or s["pictures"]):
                found.append(f"{where}: does not render (empty or hidden)")
            sides = {side: by for side, by in s["overflow"].items() if by > TOLERANCE}
            if sides:
                what = ", ".join(f"{by:.0f}px past the {side}" for side, by in sides.items())
                found.append(f"{where}: content overflows the slide: {what} (worst: {s['worst']})")
            if s["clipped"]:
                found.append(f"{where}: content cut off inside {', '.join(s['clipped'][:3])}")
            for image in s["images"]:
                if not image["ok"]:
                    found.append(f"{where}: image did not load: {image['src']}")
            if s["rawTex"]:
                found.append(f"{where}: LaTeX not typeset: {s['rawTex'][:3]}")
            if s["mathErrors"]:
                found.append(f"{where}: LaTeX error shown: {s['mathErrors'][:3]}")
            for block in s["details"]:
                if block["open"]:
                    found.append(f"{where}: the folded block {block['summary']!r} is open: its answer shows")
                elif not block["content"]:
                    found.append(f"{where}: the folded block {block['summary']!r} is empty: its content was "
                                 "exported outside it, in plain sight")
        return found


def _overflows(slide: dict) -> bool:
    return any(by > TOLERANCE for by in slide["overflow"].values()) or bool(slide["clipped"])


def inspect_deck(
    context, log: BrowserLog, path: Path, screenshots: Path | None = None, shots: int = 3
) -> DeckInspection:
    """Visit every slide of a deck; save the first `shots` slides (all fragments shown) as PNGs."""
    log.clear()
    page = open_deck(context, log, path)
    try:
        count = page.evaluate("() => Reveal.getSlides().length")
        slides = []
        if screenshots is not None:
            if screenshots.exists():
                shutil.rmtree(screenshots)
            screenshots.mkdir(parents=True)
        page.evaluate(INSPECT_FUNCTION)
        shots = min(shots, count) if screenshots is not None else 0
        for i in range(shots):  # one at a time, with a picture of each
            slides += page.evaluate(INSPECT_SLIDES, [i, i + 1])
            page.screenshot(path=str(screenshots / f"slide-{i + 1:02d}.png"))
        slides += page.evaluate(INSPECT_SLIDES, [shots, count])  # the rest in one go
        math_errors = page.evaluate("() => window.courseSlides ? courseSlides.mathErrors : ['no MathJax hook']")
        hangul = page.evaluate(HANGUL_PROBE)
        name = path.name.removesuffix(".slides.html")
        seen = BrowserLog(list(log.remote_requests), list(log.page_errors), list(log.failed_loads))
        return DeckInspection(name=name, slides=slides, math_errors=list(math_errors), log=seen, hangul=hangul)
    finally:
        page.close()


def screenshot_slides(context, log: BrowserLog, path: Path, numbers: Iterable[int], folder: Path) -> list[Path]:
    """Save slides `numbers` (1-based, every fragment shown) of a deck as folder/slide-NN.png."""
    log.clear()
    page = open_deck(context, log, path)
    saved = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for number in numbers:
            page.evaluate(
                "n => { const ix = Reveal.getIndices(Reveal.getSlides()[n - 1]); Reveal.slide(ix.h, ix.v, 1000); }",
                number,
            )
            page.evaluate("() => Promise.all(Array.from(document.images).map(img => img.decode().catch(() => null)))")
            saved.append(folder / f"slide-{number:02d}.png")
            page.screenshot(path=str(saved[-1]))
    finally:
        page.close()
    return saved
