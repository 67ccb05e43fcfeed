"""Finding, reading and executing the course's notebooks (used by the `course` command)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from helpers.environment import DEVICE_ENV

#: Course notebooks and workbooks: two digits, an underscore, a snake_case name.
NOTEBOOK_NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"


class CourseError(Exception):
    """A problem the user can fix (a wrong path, a missing folder); shown as one line."""


def course_root() -> Path:
    """The folder that holds `notebooks/` (the repository root of an editable install)."""
    candidates = [Path(__file__).resolve().parents[2], Path.cwd(), *Path.cwd().parents]
    for folder in candidates:
        if (folder / "notebooks").is_dir() and (folder / "helpers").is_dir():
            return folder
    raise CourseError(
        "cannot find the course folder (one with notebooks/ and helpers/): "
        "install the course with `pip install -e .` from its folder, or run the command there"
    )


def notebook_paths(folder: Path) -> list[Path]:
    """The course notebooks in `folder`, in course order."""
    return sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))


def read_notebook(path: Path) -> NotebookNode:
    """The notebook at `path`; a file that is missing, not JSON or not a notebook is a CourseError."""
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except OSError as exc:
        raise CourseError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # nbformat raises several kinds (not JSON, not a notebook, invalid)
        raise CourseError(f"{path.name} is not a readable notebook: {one_line(exc)}") from None
    return nb


def one_line(exc: BaseException, limit: int = 160) -> str:
    """An exception as one short line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def source(cell: NotebookNode) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def is_solution_cell(cell: NotebookNode) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def is_check_cell(cell: NotebookNode) -> bool:
    """A graded, locked test cell: an exercise's check."""
    grading = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(grading.get("grade")) and not grading.get("solution")


def exercise_names(nb: NotebookNode) -> list[str]:
    """The exercises of a notebook: the nbgrader `grade_id` of each solution cell."""
    return [cell.metadata.nbgrader.grade_id for cell in nb.cells if is_solution_cell(cell)]


def _current_env_kernel_manager():  # -> jupyter_client.KernelManager
    """A kernel manager whose "python3" is this interpreter, whatever kernels the user has installed."""
    import ipykernel.kernelspec
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    class CurrentEnvSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str):  # type: ignore[override]
            return self.kernel_spec_class(
                resource_dir=ipykernel.kernelspec.RESOURCES, **ipykernel.kernelspec.get_kernel_dict()
            )

    return KernelManager(kernel_name="python3", kernel_spec_manager=CurrentEnvSpecs())


def _process_tree(pid: int | None) -> list:  # -> list[psutil.Process]
    """The kernel process and every process it started (a notebook may fork workers)."""
    import psutil

    if pid is None:
        return []
    try:
        kernel = psutil.Process(pid)
        return [kernel, *kernel.children(recursive=True)]
    except psutil.Error:
        return []


def _make_sure_gone(processes: list, timeout: float = 10.0) -> None:
    """Kill what is left of a shut-down kernel and wait for it, so the next notebook's kernel never
    runs beside it (killing the kernel alone leaves any process it forked alive, holding memory)."""
    import psutil

    alive = [p for p in processes if p.is_running()]
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout)


def execute(nb: NotebookNode, cwd: Path, timeout: int = 600, allow_errors: bool = False) -> NotebookNode:
    """Run `nb` top to bottom in a fresh kernel of this Python environment, on the CPU.

    The device is forced to the CPU so that stored outputs never depend on a GPU. The kernel
    is shut down before this returns, also on an error or Ctrl-C: run one notebook after
    another and only one kernel is ever alive.
    """
    from nbclient import NotebookClient

    km = _current_env_kernel_manager()
    client = NotebookClient(
        nb,
        km=km,
        timeout=timeout,
        allow_errors=allow_errors,
        record_timing=False,
        # One stream per cell, with progress-bar redraws (\r) resolved: the stored output is what
        # a reader saw last, not every intermediate frame.
        coalesce_streams=True,
        resources={"metadata": {"path": str(cwd)}},
    )
    # The kernel process's own log lines (transport warnings, shutdown notices) are noise here;
    # what the notebook prints reaches its outputs through Jupyter's messages, not this stream.
    try:
        client.execute(env={**os.environ, DEVICE_ENV: "cpu"}, stderr=subprocess.DEVNULL)
    finally:
        # nbclient shuts down only the kernels it started itself; this one we handed it.
        if client.kc is not None:
            client.kc.stop_channels()
        kernel_tree = _process_tree(getattr(km.provisioner, "pid", None)) if km.has_kernel else []
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        _make_sure_gone(kernel_tree)
        # While a notebook runs, nbclient answers Ctrl-C (SIGINT) by killing the kernel, and the run
        # then fails as if the notebook had crashed; it keeps the cleanup it started in this
        # attribute. Turn it back into the interruption it was, so a caller stops instead of going on.
        if getattr(client, "_async_cleanup_kernel_future", None) is not None:
            raise KeyboardInterrupt
    return nb
