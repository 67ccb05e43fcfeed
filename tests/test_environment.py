import matplotlib as mpl
import numpy as np
import pytest
import torch

import helpers
from helpers.environment import LECTURE_STYLE, NUM_THREADS, choose_device


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
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert helpers.setup() == torch.device("cpu")


def test_setup_fixes_threads_and_lecture_style():
    helpers.setup()
    assert torch.get_num_threads() == min(NUM_THREADS, __import__("os").cpu_count() or 1)
    assert mpl.rcParams["font.size"] == LECTURE_STYLE["font.size"] >= 14
    width, height = mpl.rcParams["figure.figsize"]
    assert width / height == pytest.approx(16 / 9, rel=0.01)


def test_unknown_device_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "gpu-please")
    with pytest.raises(ValueError, match="unknown device 'gpu-please'"):
        choose_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without a GPU")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        choose_device("cuda")
