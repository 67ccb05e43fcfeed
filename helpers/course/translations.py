"""The Korean edition: translation catalogues, and Korean notebooks built from them (`course translations`).

The English notebook is the one that is edited. Each has one gettext catalogue, `locale/ko/NN_name.po`,
with one entry per markdown cell keyed by the cell's English text; `notebooks/ko/NN_name.ipynb` is
built from the two, so code, outputs, metadata, nbgrader ids and slide tags are the English
notebook's by construction. Three things differ, all made here and nowhere else:

- the markdown cells: each entry's Korean text (a cell that is Korean already, the 정리, is copied);
- the setup call: `helpers.setup()` becomes `helpers.setup(lang="ko")`, which chooses the language
  of the checks' messages once for the notebook;
- the checks' outputs: each stored check result is shown again in Korean (`helpers.checks.language`).

When an English cell changes, `course translations --update` keeps the old translation beside its new
English, marked fuzzy, with the old English as `#| msgid` (what `msgmerge --previous` does; done here
with `polib` and difflib, so that no system package is needed on Windows or macOS). A fuzzy entry is
not used: the build keeps the English cell until a translator has looked at it.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import nbformat
import polib
from nbformat import NotebookNode

from helpers.checks.core import MIME_TYPE
from helpers.checks.language import render_result
from helpers.course.notebooks import CourseError, notebook_paths, read_notebook, source

LANGUAGE = "ko"
LANGUAGE_NAME = "Korean"
HANGUL = re.compile(r"[\uac00-\ud7a3]")
LATIN = re.compile(r"[A-Za-z]")
SETUP_CALL = re.compile(r"\bhelpers\.setup\((\s*\))?")
#: An entry whose English changed is matched to the closest old entry at least this similar.
FUZZY_SIMILARITY = 0.6


def catalogue_folder(root: Path) -> Path:
    return root / "locale" / LANGUAGE


def catalogue_path(root: Path, notebook: Path) -> Path:
    return catalogue_folder(root) / f"{notebook.stem}.po"


def edition_folder(root: Path) -> Path:
    return root / "notebooks" / LANGUAGE


def needs_translation(text: str) -> bool:
    """Whether a markdown cell is English prose to translate (a cell written in Korean is not)."""
    latin, hangul = len(LATIN.findall(text)), len(HANGUL.findall(text))
    return latin > 0 and hangul < latin


def translatable_cells(nb: NotebookNode) -> list[NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "markdown" and needs_translation(source(c))]


# ---- catalogues -----------------------------------------------------------------------------------


def new_catalogue(notebook: Path) -> polib.POFile:
    po = polib.POFile(wrapwidth=0)
    po.metadata = {
        "Project-Id-Version": f"attention-step-by-step {notebook.stem}",
        "Language": LANGUAGE,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "8bit",
    }
    return po


def read_catalogue(path: Path) -> polib.POFile:
    try:
        return polib.pofile(str(path), wrapwidth=0)
    except (OSError, ValueError) as exc:
        raise CourseError(f"cannot read the catalogue {path}: {exc}") from None


def update_catalogue(notebook: Path, path: Path) -> tuple[int, int, int]:
    """Bring `path` in step with the English `notebook`; return (kept, made fuzzy, new)."""
    old = read_catalogue(path) if path.exists() else new_catalogue(notebook)
    by_id = {e.msgid: e for e in old if not e.obsolete}
    cells = translatable_cells(read_notebook(notebook))
    unmatched = [e for e in old if not e.obsolete and e.msgstr and e.msgid not in {source(c) for c in cells}]
    po = new_catalogue(notebook)
    po.metadata.update({k: v for k, v in old.metadata.items() if k not in po.metadata})
    kept = fuzzy = new = 0
    for cell in cells:
        text = source(cell)
        if any(e.msgid == text for e in po):
            continue  # the same text twice in one notebook: one entry serves both
        entry = polib.POEntry(msgid=text, msgstr="", occurrences=[(notebook.name, cell.get("id", ""))])
        if text in by_id:
            entry.msgstr, entry.flags = by_id[text].msgstr, list(by_id[text].flags)
            entry.previous_msgid = by_id[text].previous_msgid
            kept += 1
        else:
            match = closest(text, unmatched)
            if match is not None:
                unmatched.remove(match)
                entry.msgstr, entry.flags, entry.previous_msgid = match.msgstr, ["fuzzy"], match.msgid
                fuzzy += 1
            else:
                new += 1
        po.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    po.save(str(path))
    return kept, fuzzy, new


def closest(text: str, entries: list[polib.POEntry]) -> polib.POEntry | None:
    best, score = None, FUZZY_SIMILARITY
    for entry in entries:
        ratio = difflib.SequenceMatcher(None, entry.msgid, text, autojunk=False).ratio()
        if ratio >= score:
            best, score = entry, ratio
    return best


# ---- building the Korean notebooks ----------------------------------------------------------------


def build(notebook: Path, catalogue: polib.POFile) -> NotebookNode:
    """The Korean edition of `notebook`: its translated cells, its setup in Korean, its checks' outputs in Korean."""
    nb = copy.deepcopy(read_notebook(notebook))
    translated = {e.msgid: e.msgstr for e in catalogue if e.translated() and not e.obsolete}
    for cell in nb.cells:
        text = source(cell)
        if cell.cell_type == "markdown" and text in translated:
            cell.source = translated[text]
        elif cell.cell_type == "code":
            if SETUP_CALL.search(text):
                cell.source = SETUP_CALL.sub(
                    lambda m: 'helpers.setup(lang="ko")' if m.group(1) else 'helpers.setup(lang="ko", ', text, count=1
                )
            for output in cell.get("outputs", []):
                payload = output.get("data", {}).get(MIME_TYPE)
                if payload:
                    text_plain, text_html = render_result(payload, LANGUAGE)
                    output.data["text/plain"], output.data["text/html"] = text_plain, text_html
    return nb


def built_text(nb: NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


@dataclass
class Status:
    notebook: str
    cells: int
    translated: int
    fuzzy: int
    untranslated: int
    built: str  # "up to date", "stale" or "missing"

    @property
    def complete(self) -> bool:
        return self.fuzzy == 0 and self.untranslated == 0 and self.built == "up to date"


def status(root: Path) -> list[Status]:
    rows = []
    for notebook in notebook_paths(root / "notebooks"):
        cells = {source(c) for c in translatable_cells(read_notebook(notebook))}
        path = catalogue_path(root, notebook)
        po = read_catalogue(path) if path.exists() else new_catalogue(notebook)
        entries = {e.msgid: e for e in po if not e.obsolete}
        fuzzy = sum(1 for t in cells if t in entries and entries[t].fuzzy)
        translated = sum(1 for t in cells if t in entries and entries[t].translated())
        target = edition_folder(root) / notebook.name
        if not target.exists():
            built = "missing"
        else:
            built = "up to date" if target.read_text(encoding="utf-8") == built_text(build(notebook, po)) else "stale"
        rows.append(Status(notebook.name, len(cells), translated, fuzzy, len(cells) - translated - fuzzy, built))
    return rows


def write_edition(root: Path) -> list[Path]:
    """Build every Korean notebook; return the ones whose file changed."""
    changed = []
    for notebook in notebook_paths(root / "notebooks"):
        path = catalogue_path(root, notebook)
        po = read_catalogue(path) if path.exists() else new_catalogue(notebook)
        target = edition_folder(root) / notebook.name
        text = built_text(build(notebook, po))
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            changed.append(target)
    return changed


def table(rows: list[Status]) -> str:
    lines = [f"{'notebook':<38} {'cells':>5} {'translated':>10} {'fuzzy':>5} {'untranslated':>12}  Korean notebook"]
    for r in rows:
        lines.append(f"{r.notebook:<38} {r.cells:>5} {r.translated:>10} {r.fuzzy:>5} {r.untranslated:>12}  {r.built}")
    return "\n".join(lines)


# ---- the checks' messages -------------------------------------------------------------------------


def checks_catalogue_path(root: Path) -> Path:
    return catalogue_folder(root) / "checks.po"


@cache  # generating every check's cases takes seconds; they are the same for the whole process
def check_texts() -> dict[str, str]:
    """Every text the checks can show that is written in their modules, as catalogue keys -> an example.

    Case names and hints, mistakes' and clues' hints, the ✅ summaries, the words for a kind of failure,
    and the patterns core.py composes messages with. (Texts composed at run time with a value in them,
    such as "the output in eval()", come from a collection run: `course translations --update --collected`.)
    """
    import helpers.checks as checks
    from helpers.checks import core, language

    texts: list[str] = list(language.PATTERNS) + [core.NUMPY_HINT, *core._GENERIC_HINTS.values()]
    texts += [hint for _, hint in core._EXCEPTION_HINTS] + ["read the error: it names the line in your function "
                                                             "that failed."]
    for name in sorted(dir(checks)):
        spec = getattr(getattr(checks, name), "spec", None)
        if spec is None:
            continue
        texts += [spec.passed.format(cases=12, comparisons=12), spec.what, *spec.shown.values(), *spec.hints.values()]
        texts += [m.hint for m in spec.mistakes] + [c.hint for c in spec.clues if isinstance(c.hint, str)]
        for case in spec.cases():
            texts += [case.name, case.hint, case.what or ""]
    found: dict[str, str] = {}
    for text in texts:
        for key in language.keys(text) if text not in language.PATTERNS else [text]:
            found.setdefault(key, text)
    return found


def collected_texts(path: Path) -> dict[str, str]:
    """The keys of the messages a collection run wrote (COURSE_COLLECT_CHECK_TEXTS=path pytest tests/test_check_*)."""
    import json

    from helpers.checks import language

    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for text in (record["summary"], record["hint"]):
            for key in language.keys(text):
                found.setdefault(key, text)
    return found


def update_checks_catalogue(root: Path, collected: Path | None = None) -> tuple[int, int]:
    """Add the checks' texts not yet in locale/ko/checks.po; return (entries, new). Nothing is dropped."""
    path = checks_catalogue_path(root)
    po = read_catalogue(path) if path.exists() else new_catalogue(Path("checks"))
    have = {e.msgid for e in po}
    texts = check_texts() | (collected_texts(collected) if collected else {})
    new = 0
    for key, example in texts.items():
        if key and key not in have:
            comment = "" if example == key else f"e.g. {example}"
            po.append(polib.POEntry(msgid=key, msgstr="", comment=comment))
            new += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    po.save(str(path))
    return len(po), new


def checks_status(root: Path) -> tuple[int, int, int]:
    """(texts the checks' modules write, translated, fuzzy) against locale/ko/checks.po."""
    path = checks_catalogue_path(root)
    po = read_catalogue(path) if path.exists() else new_catalogue(Path("checks"))
    entries = {e.msgid: e for e in po if not e.obsolete}
    texts = [k for k in check_texts() if k]
    return (len(texts), sum(1 for k in texts if k in entries and entries[k].translated()),
            sum(1 for k in texts if k in entries and entries[k].fuzzy))
