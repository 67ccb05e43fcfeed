"""The Korean decks (`course slides --lang ko`) in a real browser: every slide fits, is typeset, and shows Hangul.

Korean prose is wider than the English it translates, so a slide that fits in English may not in Korean;
the fix is the English notebook's (a `subslide` at a natural break, which both editions then share) or a
shorter translation. One pass per deck, as tests/test_slides.py makes for the English decks, in a module
of its own so that the two editions' browser runs share the cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from slides_browser import OVERFLOW_HINT, inspect_deck

from helpers.course import slides
from helpers.course.notebooks import notebook_paths, read_notebook
from helpers.course.translations import edition_folder

ROOT = Path(__file__).resolve().parent.parent
KOREAN = edition_folder(ROOT)
DECKS = [p.stem for p in notebook_paths(KOREAN)]


@pytest.fixture(scope="module")
def korean_decks(tmp_path_factory):
    out = tmp_path_factory.mktemp("slides") / "ko"
    slides.export_decks(KOREAN, out)
    return out


def test_every_notebook_has_a_korean_deck():
    assert DECKS == [p.stem for p in notebook_paths(ROOT / "notebooks")]


@pytest.mark.parametrize("name", DECKS)
def test_every_korean_slide_renders_fits_and_shows_hangul(browser, korean_decks, name):
    context, log = browser
    inspection = inspect_deck(context, log, korean_decks / f"{name}.slides.html")
    assert len(inspection.slides) == slides.count_slides(read_notebook(KOREAN / f"{name}.ipynb"))
    assert inspection.hangul, f"{name}: Hangul drawn as boxes, or no Korean text found"
    problems = inspection.problems()
    assert not problems, f"{len(problems)} problem(s) in the Korean {name}:\n" + "\n".join(problems) + "\n" + \
        OVERFLOW_HINT
