"""helpers.setup(): repeatable random numbers, threads, the lecture style, the device, figures in any environment."""

import os
import subprocess
import sys

import matplotlib as mpl
import nbformat
import numpy as np
import pytest
import torch

import helpers
from helpers.environment import DEVICE_ENV, LECTURE_STYLE, NUM_THREADS, choose_device, thread_count


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


def test_a_plotting_notebook_shows_the_same_under_any_environment(root):
    """Strict nbval on a notebook with figures, under an environment that servers and CI often have."""
    notebook = root / "notebooks" / "01_queries_keys_values.ipynb"
    assert any("image/png" in output.get("data", {}) for cell in nbformat.read(notebook, as_version=4).cells
               for output in cell.get("outputs", [])), "the notebook stores figures"
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "3"}
    env.pop(DEVICE_ENV, None)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", str(notebook)],
                         cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]
