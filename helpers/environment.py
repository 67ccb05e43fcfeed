"""The one setup call every notebook makes first.

    import helpers
    device = helpers.setup()

It seeds every random number generator, sets print options, fixes the thread count,
applies a matplotlib style that is readable from the back of a lecture room, and picks
the device. Stored notebook outputs must be identical on every machine (strict nbval),
so nothing here depends on how many cores the machine has.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

#: Threads torch may use. Fixed, not "all cores": the order of a parallel reduction
#: depends on the thread count, and we want the same numbers on a laptop and in CI. One:
#: the course's tensors are small, so a second thread saves little, and on a busy machine
#: spinning worker threads can make small matrix products many times slower.
NUM_THREADS = 1

#: Environment variable that forces the device ("cpu", "cuda", "mps"). The tests and
#: `course progress` set it to "cpu" so stored outputs never depend on a GPU.
DEVICE_ENV = "COURSE_DEVICE"

#: Matplotlib's backend for figures shown under a notebook cell (what Jupyter uses by default).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"

LECTURE_STYLE: dict[str, object] = {
    # 16:9, large enough type to read from the back row.
    "figure.figsize": (10.0, 5.625),
    "figure.dpi": 80,
    "savefig.dpi": 80,
    "font.size": 16,
    "axes.titlesize": 20,
    "axes.labelsize": 18,
    "xtick.labelsize": 15,
    "ytick.labelsize": 15,
    "legend.fontsize": 15,
    "lines.linewidth": 2.5,
    "lines.markersize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.constrained_layout.use": True,
    "image.cmap": "viridis",
}


def thread_count() -> int:
    """The CPU threads torch uses in the course: NUM_THREADS, or fewer on a machine with fewer cores."""
    return min(NUM_THREADS, os.cpu_count() or 1)


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and torch's generators (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def choose_device(prefer: str | None = None) -> torch.device:
    """The device to run on: `prefer`, else $COURSE_DEVICE, else a GPU if present, else CPU."""
    name = prefer or os.environ.get(DEVICE_ENV, "").strip().lower()
    if name:
        try:
            device = torch.device(name)
        except RuntimeError as exc:
            raise ValueError(
                f"unknown device {name!r} (from {DEVICE_ENV} or the argument): "
                "expected 'cpu', 'cuda' or 'mps'"
            ) from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for, but torch sees no CUDA GPU")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def show_figures_inline() -> None:
    """In a Jupyter kernel, show figures under the cell whatever $MPLBACKEND says.

    With MPLBACKEND=Agg (common on servers and in CI) matplotlib would draw figures nowhere,
    and every plotting cell would show a different output from the stored one. Outside a
    kernel (a script, the tests) the backend is left as it is.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return
    import matplotlib as mpl

    if mpl.get_backend() != INLINE_BACKEND:
        # What `%matplotlib inline` does, including the hook that shows each figure after its cell.
        shell.run_line_magic("matplotlib", "inline")


def use_lecture_style() -> None:
    """Apply the course's matplotlib style (large type, 16:9 figures)."""
    import matplotlib as mpl

    mpl.rcParams.update(LECTURE_STYLE)


def setup(seed: int = 0, device: str | None = None, lang: str = "en") -> torch.device:
    """Prepare a notebook: seeds, print options, threads, plot style, the checks' language; return the device.

    Args:
        seed: seed for Python's `random`, NumPy and torch.
        device: force a device ("cpu", "cuda"); by default $COURSE_DEVICE, else a GPU
            when one is present, else the CPU.
        lang: the language of the checks' messages, "en" or "ko" (the Korean edition's notebooks
            call `helpers.setup(lang="ko")`).

    Returns:
        The `torch.device` the notebook should put its tensors on.
    """
    from helpers.checks.language import set_language  # the checks import this module: import here

    set_language(lang)
    seed_everything(seed)
    torch.set_printoptions(precision=4, sci_mode=False, linewidth=100)
    np.set_printoptions(precision=4, suppress=True, linewidth=100)
    torch.set_num_threads(thread_count())
    # Prefer deterministic GPU kernels where torch offers them; CPU kernels already are.
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    show_figures_inline()  # before the style: activating the inline backend sets figure size and dpi
    use_lecture_style()
    return choose_device(device)
