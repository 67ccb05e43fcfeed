"""Notebook 14's interactive explorer: a Plotly figure whose menu picks the head, offline in a real browser.

The notebook's output carries Plotly's own JSON (JupyterLab and RISE draw it with the jupyterlab-plotly
extension that the `plotly` package installs) and an HTML twin that `course slides` decks draw with the
plotly.js copied from the installed package. The browser test opens notebook 14's deck in Chromium with the
network cut off, finds the figure drawn, picks another head in the figure's own menu, and sees it shown.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from slides_browser import open_deck

from helpers.course import slides
from helpers.plotting import PLOTLY_CLASS, AttentionExplorer

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "14_reading_attention.ipynb"
DIV = "explorer-14-gpt"


def explorer(seed: int = 0) -> AttentionExplorer:
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(2, 3, 5, 5, generator=g).tril().softmax(dim=-1)
    return AttentionExplorer(maps, ["a", "b", "a", "c", "."], div_id="x", title="t")


def test_one_trace_per_head_and_a_menu_that_shows_each_alone():
    figure = explorer().figure
    assert len(figure.data) == 6 and [t.visible for t in figure.data] == [True] + [False] * 5
    buttons = figure.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == [f"layer {ly} · head {hd}" for ly in range(2) for hd in range(3)]
    assert buttons[4].args[0]["visible"] == [False, False, False, False, True, False]
    assert figure.data[0].y == ("0 a", "1 b", "2 a", "3 c", "4 ."), "a repeated word keeps a row of its own"


def test_the_output_is_the_same_on_every_run_and_needs_no_network():
    first, second = explorer()._repr_mimebundle_(), explorer()._repr_mimebundle_()
    assert first == second, "strict nbval compares it: no random id, rounded weights"
    assert f'id="x" class="{PLOTLY_CLASS}"' in first["text/html"]
    assert "http" not in first["text/html"] and "<script src" not in first["text/html"]
    assert json.dumps(first["application/vnd.plotly.v1+json"])  # what JupyterLab's Plotly renderer reads


def test_a_wrong_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(num_layers, h, n, n\) with n = len\(tokens\) = 4"):
        AttentionExplorer(torch.zeros(2, 3, 5, 5), ["a", "b", "c", "d"], div_id="x", title="t")


def test_jupyterlab_draws_plotly_output_without_the_network():
    package = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "jupyterlab-plotly" / "package.json"
    assert package.is_file(), "the plotly package installs its JupyterLab renderer (RISE uses JupyterLab's renderers)"


SHOWN = """() => { const gd = document.getElementById('DIV');
  return {drawn: gd.classList.contains('js-plotly-plot'), heatmaps: gd.querySelectorAll('g.hm image').length,
          visible: gd.data.map(t => t.visible === true), title: gd.querySelector('.gtitle').textContent,
          picture: gd.querySelector('g.hm image').getAttribute('href')}; }""".replace("DIV", DIV)


def test_the_deck_draws_the_explorer_offline_and_its_menu_changes_the_head(browser, tmp_path):
    context, log = browser
    report = slides.export_decks(NOTEBOOK.parent, tmp_path / "slides", numbers=["14"])
    deck = report.decks[0].path
    assert (tmp_path / "slides" / slides.ASSETS / slides.PLOTLY_JS).is_file()
    log.clear()
    page = open_deck(context, log, deck)
    page.evaluate("""(id) => { const el = document.getElementById(id);
        const ix = Reveal.getIndices(el.closest('section')); Reveal.slide(ix.h, ix.v); }""", DIV)
    page.wait_for_function(f"() => document.querySelector('#{DIV} g.hm image')")
    before = page.evaluate(SHOWN)
    assert before["drawn"] and before["heatmaps"] == 1 and before["visible"] == [True] + [False] * 7
    assert before["title"].endswith("layer 0 · head 0")
    page.click(f"#{DIV} .updatemenu-header-group")  # open the figure's own menu, as a user does
    page.locator(f"#{DIV} .updatemenu-dropdown-button").nth(6).click()  # layer 1 · head 2
    page.wait_for_function(f"() => document.getElementById('{DIV}').data[6].visible === true")
    after = page.evaluate(SHOWN)
    assert after["visible"] == [False] * 6 + [True, False]
    assert after["title"].endswith("layer 1 · head 2") and after["picture"] != before["picture"]
    assert not log.remote_requests and not log.page_errors and not log.failed_loads, log
    page.close()
