"""Writing the files the `course` command makes (workbooks, slide decks, executed notebooks)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def default_mode(folder: bool = False) -> int:
    """The permissions a new file (or folder) of the user gets: 0666 (0777) less the umask."""
    # There is no way to read the umask without setting it; set it back at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return (0o777 if folder else 0o666) & ~mask


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically: a reader (or an interrupted run) never sees half a file.

    The text goes to a temporary file beside `path`, which then replaces it in one step. A
    temporary file is created private (0600); before the replacement it gets the mode of the
    file it replaces, or, for a new file, the mode any file the user creates gets (0666 less
    the umask), so a workbook copied to a shared folder is readable there like any other file.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = default_mode()
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
