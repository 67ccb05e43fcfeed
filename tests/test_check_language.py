"""The checks speak the notebook's language: English, or Korean from locale/ko/checks.po, chosen at setup.

A message is translated when it is shown, cut along `language.PATTERNS` into parts, each with its
variable parts (code, names, shapes, numbers) in numbered slots; so the same catalogue translates a
check run live in a Korean notebook and a result stored in an English notebook's outputs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import polib
import pytest
import torch

import helpers
from helpers.checks import core, language
from helpers.checks.core import CheckResult, Status

ROOT = Path(__file__).resolve().parent.parent
SLOTS = re.compile(r"\{\w+\}")


@pytest.fixture
def korean(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A small Korean catalogue in place of locale/ko/checks.po; the language set back to English after."""
    table = {
        "On {case}: {what}.": "{case}에서: {what}.",
        "{what} has shape {raw_shape}, expected {raw_expected}":
            "{what}의 형태가 {raw_shape}입니다. 기대한 형태는 {raw_expected}입니다",
        "the output": "출력",
        "a batch of {0} sentences of {1} tokens, {2} = {3}": "토큰 {1}개짜리 문장 {0}개의 배치, {2} = {3}",
        "divide by {0}.": "{0}로 나누십시오.",
    }
    monkeypatch.setattr(language, "catalogue", lambda lang: table if lang == "ko" else {})
    yield table
    language.set_language("en")


def test_a_composed_message_is_translated_part_by_part_with_its_values_kept(korean: dict[str, str]) -> None:
    english = "On a batch of 2 sentences of 5 tokens, d_k = 8: the output has shape (2, 5), expected (2, 5, 8)."
    assert language.translate(english, "ko") == (
        "토큰 5개짜리 문장 2개의 배치, d_k = 8에서: 출력의 형태가 (2, 5)입니다. 기대한 형태는 (2, 5, 8)입니다.")
    assert language.translate(english, "en") == english
    assert language.translate("divide by `math.sqrt(d_k)`.", "ko") == "`math.sqrt(d_k)`로 나누십시오."


def test_what_the_catalogue_lacks_stays_english(korean: dict[str, str]) -> None:
    assert language.translate("an unknown hint with `code` and 3 numbers.", "ko") == (
        "an unknown hint with `code` and 3 numbers.")


def test_setup_chooses_the_language_of_every_result_shown_after_it(korean: dict[str, str]) -> None:
    result = CheckResult("scaled_scores", Status.FAILED, "On a batch of 2 sentences of 5 tokens, d_k = 8: "
                         "the output has shape (2, 5), expected (2, 5, 8).", "divide by `math.sqrt(d_k)`.")
    helpers.setup(lang="ko")
    assert result.message.startswith("❌ scaled_scores: 실패. 토큰 5개짜리")
    assert "\n힌트: `math.sqrt(d_k)`로 나누십시오." in result.message
    assert "<b>힌트:</b>" in result._repr_html_()
    helpers.setup()
    assert result.message.startswith("❌ scaled_scores: failed. On a batch")
    with pytest.raises(ValueError, match="language must be one of 'en', 'ko', got 'kr'"):
        helpers.setup(lang="kr")


def test_a_stored_result_is_rendered_in_korean(korean: dict[str, str]) -> None:
    payload = {"name": "x", "status": "not attempted", "summary": "the output", "hint": ""}
    text, page = language.render_result(payload, "ko")
    assert text == "⏳ x: 아직 풀지 않음. 출력" and "출력" in page


def slots_of(text: str) -> set[str]:
    return set(SLOTS.findall(text))


def test_every_translated_checks_entry_keeps_its_slots() -> None:
    path = ROOT / "locale" / "ko" / "checks.po"
    wrong = [e.msgid for e in polib.pofile(str(path)) if e.translated() and slots_of(e.msgid) != slots_of(e.msgstr)]
    assert not wrong, f"{len(wrong)} translations lose or add a slot, e.g. {wrong[:3]}"


def test_every_pattern_matches_what_core_composes() -> None:
    failure = core.describe_difference(torch.zeros(2, 3), torch.zeros(2, 4), what="the output")
    assert failure is not None
    assert language.keys(f"On a case: {failure.summary}.") == [
        "On {case}: {what}.", "a case", "{what} has shape {raw_shape}, expected {raw_expected}", "the output"]


def test_a_case_whose_name_holds_a_colon_is_still_cut_right(korean: dict[str, str]) -> None:
    korean["a batch of {0} sentences: X of shape {1}"] = "문장 {0}개의 배치: 형태가 {1}인 X"
    korean["your function raised {raw_error}"] = "함수에서 예외가 발생했습니다: {raw_error}"
    english = "On a batch of 2 sentences: X of shape (2, 5): your function raised ZeroDivisionError: division by zero."
    assert language.translate(english, "ko") == (
        "문장 2개의 배치: 형태가 (2, 5)인 X에서: 함수에서 예외가 발생했습니다: ZeroDivisionError: division by zero.")


def stored_results(folder: Path) -> list[tuple[str, dict[str, str]]]:
    import json

    from helpers.checks.core import MIME_TYPE

    found = []
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            found += [(path.name, output["data"][MIME_TYPE]) for output in cell.get("outputs", [])
                      if MIME_TYPE in output.get("data", {})]
    return found


def test_every_check_result_the_korean_notebooks_show_is_korean_through_and_through() -> None:
    """No part of a stored ✅ ❌ ⏳ message falls back to English (what a learner reads before running anything)."""
    results = stored_results(ROOT / "notebooks" / "ko")
    known = language.catalogue("ko")
    english = [(name, part) for name, payload in results for part in (payload["summary"], payload.get("hint", ""))
               if part and not language._translate(part, known)[1]]
    assert len(results) > 40 and not english, f"{len(english)} parts shown in English, e.g. {english[:3]}"
