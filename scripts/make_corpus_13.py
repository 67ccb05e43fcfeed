"""Write notebook 13's text: the course's own prose, a snapshot (nothing downloaded, nothing written elsewhere).

    python scripts/make_corpus_13.py        (from the repository root)

Every markdown cell of notebooks 00-12 (the English cells and the Korean 정리 cells) becomes one document,
and so does each entry of the Korean glossary (locale/ko/glossary.json, "English: 한국어"); documents are
separated by "\\n<|endoftext|>\\n". Notebook 12's cells are the held-out text, the rest the training text:

    helpers/data/course_text_train.txt     notebooks 00-11 and the glossary
    helpers/data/course_text_heldout.txt   notebook 12

The files are committed: the notebooks keep changing, and notebook 13's outputs must not change with them.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "helpers" / "data"
SEPARATOR = "\n<|endoftext|>\n"
HELD_OUT = "12"


def markdown_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    texts = ["".join(c["source"]).strip() for c in cells if c["cell_type"] == "markdown"]
    return [text for text in texts if text]


def main() -> None:
    train: list[str] = []
    held_out: list[str] = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        if path.name[:2] > HELD_OUT:
            continue
        (held_out if path.name[:2] == HELD_OUT else train).extend(markdown_cells(path))
    glossary = json.loads((ROOT / "locale" / "ko" / "glossary.json").read_text(encoding="utf-8"))
    train.extend(f"{entry['en']}: {entry['ko']}" for entry in glossary)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, docs in (("course_text_train.txt", train), ("course_text_heldout.txt", held_out)):
        text = SEPARATOR.join(docs) + "\n"
        (OUT / name).write_text(text, encoding="utf-8", newline="\n")
        print(f"{OUT.relative_to(ROOT) / name}: {len(docs)} documents, {len(text.encode('utf-8')):,} bytes")


if __name__ == "__main__":
    main()
