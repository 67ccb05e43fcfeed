"""helpers.setup(): repeatable random numbers, threads, the lecture style, the device, figures in any environment."""

import os

import matplotlib as mpl
import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook, new_output

import helpers
from helpers.course.pytest_plugin import FOREIGN_ENVIRONMENT, FOREIGN_ENVIRONMENT_NOTEBOOK
from helpers.environment import (
    DEVICE_ENV,
    INLINE_BACKEND,
    LECTURE_STYLE,
    NUM_THREADS,
    choose_device,
    thread_count,
)

pytest_plugins = ["pytester"]


def test_setup_makes_random_numbers_repeatable():
    helpers.setup(seed=3)
    first = (torch.randn(5), np.random.rand(5))
    helpers.setup(seed=3)
    second = (torch.randn(5), np.random.rand(5))
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])
    helpers.setup(seed=4)
    assert not torch.equal(torch.randn(5), first[0])


def test_setup_returns_cpu_when_forced(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert helpers.setup() == torch.device("cpu")


def test_setup_fixes_threads_and_lecture_style():
    helpers.setup()
    assert torch.get_num_threads() == thread_count()
    assert mpl.rcParams["font.size"] == LECTURE_STYLE["font.size"] >= 14
    width, height = mpl.rcParams["figure.figsize"]
    assert width / height == pytest.approx(16 / 9, rel=0.01)


def test_unknown_device_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "gpu-please")
    with pytest.raises(ValueError, match="unknown device 'gpu-please'"):
        choose_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without a GPU")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        choose_device("cuda")


def test_thread_count_is_the_one_setup_uses():
    helpers.setup()
    assert torch.get_num_threads() == thread_count() == min(NUM_THREADS, os.cpu_count() or 1)


def test_setup_outside_a_kernel_leaves_the_backend_alone():
    before = mpl.get_backend()
    helpers.setup()
    assert mpl.get_backend() == before


def test_a_plotting_notebook_is_checked_in_a_server_s_environment(root):
    """The suite's strict run of a notebook with figures starts its kernel as servers and CI often do
    (pytest_plugin.FOREIGN_ENVIRONMENT); its stored outputs were made without, and must come out the same."""
    notebook = root / "notebooks" / FOREIGN_ENVIRONMENT_NOTEBOOK
    assert any("image/png" in output.get("data", {}) for cell in nbformat.read(notebook, as_version=4).cells
               for output in cell.get("outputs", [])), "the notebook stores figures"
    # Foreign to what setup() makes of a kernel: another backend than the inline one, more threads than the course's.
    assert FOREIGN_ENVIRONMENT["MPLBACKEND"] != INLINE_BACKEND
    assert int(FOREIGN_ENVIRONMENT["OMP_NUM_THREADS"]) != NUM_THREADS


def test_only_that_notebook_s_kernel_starts_in_the_foreign_environment(pytester):
    """Two notebooks print their kernel's MPLBACKEND and OMP_NUM_THREADS; strict nbval compares each with what
    it stores: the foreign environment in the one notebook, this process's own in the other."""
    before = dict(os.environ)
    # (A kernel started without MPLBACKEND sets its own, matplotlib_inline's.)
    show = "import os\nprint(os.environ.get('MPLBACKEND') == 'Agg', os.environ.get('OMP_NUM_THREADS'))"
    here = f"False {os.environ.get('OMP_NUM_THREADS')}\n"
    for name, printed in [(FOREIGN_ENVIRONMENT_NOTEBOOK, "True 3\n"), ("02_other.ipynb", here)]:
        cell = new_code_cell(show, execution_count=1, outputs=[new_output("stream", name="stdout", text=printed)])
        nbformat.write(new_notebook(cells=[cell]), pytester.path / name)
    result = pytester.runpytest_inprocess("--nbval", "--nbval-current-env", "-p", "no:xdist", "-p", "no:cacheprovider",
                                          "-p", "helpers.course.pytest_plugin", FOREIGN_ENVIRONMENT_NOTEBOOK,
                                          "02_other.ipynb")
    result.assert_outcomes(passed=2)
    restored = {name: os.environ.get(name) for name in FOREIGN_ENVIRONMENT}
    assert restored == {name: before.get(name) for name in FOREIGN_ENVIRONMENT}, "set only while the kernel started"
