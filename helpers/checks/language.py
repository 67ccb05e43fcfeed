"""The language of the checks' messages: English, or Korean from `locale/ko/checks.po`.

A notebook chooses it once, at its setup (`helpers.setup(lang="ko")`, which the Korean edition's
notebooks call). A check composes its message in English; it is translated when it is shown, piece by
piece, so that the same catalogue also translates the results stored in a notebook's outputs.

A catalogue entry is a message with its variable parts replaced by numbered slots `{0}`, `{1}`, ...:
code in backquotes, names with an underscore (`n_q`, `W_Q`), dtypes, shapes and numbers. The
translation keeps the slots, in whatever order Korean wants them. Composed messages ("On <case>:
<what went wrong>.") are cut along the few patterns in `PATTERNS` and each part is translated on its
own. Text the catalogue does not know is shown in English.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path

LANGUAGES = ("en", "ko")
_current = {"language": "en"}

#: The words of the result box itself.
WORDS = {
    "ko": {"passed": "통과", "failed": "실패", "not attempted": "아직 풀지 않음", "not checked": "검사 안 됨",
           "Hint": "힌트",
           "Your function printed:": "함수가 출력한 내용:"},
}

#: Variable parts of a message, in the order they are tried: each becomes a slot.
SLOT = re.compile(
    r"`[^`]*`"                                   # code
    r"|torch\.\w+"                               # a dtype or a torch function
    r"|\(-?\d+(?:,\s?-?\d+)*,?\)"                # a shape or an index: (2, 3), (4,)
    r"|(?<![\w.])[A-Za-z]*_\w+"                  # a name with an underscore: n_q, W_Q, d_model
    r"|(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?%?(?![\w])"  # a number
)

#: Messages made of other messages (core.py composes them): the first that matches cuts a message into
#: parts, each translated on its own; a part whose name starts with "raw" (an error's text, a value) is kept.
PATTERNS = [
    "On {case}: {what}.",
    "{what} differs from the answer: at index {raw_index} it is {raw_got}, expected {raw_want}",
    "{what} has shape {raw_shape}, expected {raw_expected}",
    "{what} has dtype {raw_dtype}, expected a floating-point tensor",
    "{what} has dtype {raw_dtype}, expected torch.bool",
    "{what} has {raw_wrong} of {raw_count} entries wrong",
    "{what} contains {kind} where the answer is finite ({raw_count} entries)",
    "{what} contains {kind} where the answer is finite ({raw_count} entry)",
    "{what} is of type {raw_type}, expected a torch.Tensor",
    "{what} is a NumPy array; return a torch.Tensor (torch.from_numpy converts one)",
    "your function raised {raw_error}",
    "The check could not finish: {raw_error}",
    "Expected a function, got {raw_type}.",
]


def set_language(language: str) -> None:
    """Show the checks' messages in `language` ("en" or "ko") from now on."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(map(repr, LANGUAGES))}, got {language!r}")
    _current["language"] = language


def current_language() -> str:
    return _current["language"]


def catalogue_path(language: str) -> Path:
    return Path(__file__).resolve().parents[2] / "locale" / language / "checks.po"


@cache
def catalogue(language: str) -> Mapping[str, str]:
    """The translated, not fuzzy entries of a language's checks catalogue ({} when there is none)."""
    path = catalogue_path(language)
    if language == "en" or not path.exists():
        return {}
    import polib  # only the Korean edition needs it, and it is a dependency of the course

    return {e.msgid: e.msgstr for e in polib.pofile(str(path)) if e.translated() and not e.obsolete}


def slotted(text: str) -> tuple[str, list[str]]:
    """`text` with its variable parts replaced by `{0}`, `{1}`, ...; and those parts."""
    parts: list[str] = []

    def slot(match: re.Match[str]) -> str:
        parts.append(match.group(0))
        return "{" + str(len(parts) - 1) + "}"

    return SLOT.sub(slot, text), parts


@cache
def _pattern(template: str, shortest: int = 1) -> re.Pattern[str]:
    """`template` as a regex; its first slot at least `shortest` characters long."""
    pieces = re.split(r"\{(\w+)\}", template)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.{{{shortest if i == 1 else 1},}}?)"
                    for i, p in enumerate(pieces))
    return re.compile(regex + r"\Z", re.S)


def _matches(template: str, text: str) -> Iterator[dict[str, str]]:
    """Every way `text` fits `template`, the first slot shortest first: a case's name may hold ": " too."""
    match = _pattern(template).match(text)
    while match:
        yield match.groupdict()
        first = next(iter(match.groupdict()))
        match = _pattern(template, len(match.group(first)) + 1).match(text)


def keys(text: str) -> list[str]:
    """The catalogue entries that translate `text`: its pattern and its parts' keys, or its own key."""
    for template in PATTERNS:
        for parts in _matches(template, text):
            found = [template]
            for name, part in parts.items():
                if not name.startswith("raw"):
                    found += keys(part)
            return found
    return [slotted(text)[0]] if text else []


def _translate(text: str, known: Mapping[str, str]) -> tuple[str, bool]:
    """`text` translated as far as `known` allows, and whether every part of it was."""
    first: tuple[str, bool] | None = None
    for template in PATTERNS:
        for parts in _matches(template, text):
            translated, whole = known.get(template, template), template in known
            for name, part in parts.items():
                if name.startswith("raw"):
                    translated = translated.replace("{" + name + "}", part)
                else:
                    inner, done = _translate(part, known)
                    translated, whole = translated.replace("{" + name + "}", inner), whole and done
            if whole:
                return translated, True
            first = first or (translated, False)
        if first:
            return first
    key, parts = slotted(text)
    translated = known.get(key, key)
    for i, part in enumerate(parts):
        translated = translated.replace("{" + str(i) + "}", part)
    return translated, key in known


def translate(text: str, language: str | None = None) -> str:
    """`text` in `language` (by default the notebook's); parts the catalogue lacks stay English."""
    language = language or current_language()
    if language == "en" or not text:
        return text
    return _translate(text, catalogue(language))[0]


def word(text: str, language: str) -> str:
    return WORDS.get(language, {}).get(text, text)


def render_result(payload: Mapping[str, str], language: str | None = None) -> tuple[str, str]:
    """A stored check result ({"name", "status", "summary", "hint"}) as text and as HTML, in `language`."""
    from helpers.checks.core import CheckResult, Status

    result = CheckResult(payload["name"], Status(payload["status"]), payload["summary"], payload.get("hint", ""),
                         payload.get("printed", ""))
    return result.render_text(language), result.render_html(language)

