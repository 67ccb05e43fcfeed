"""Shared fixtures. The whole suite, notebooks included, runs on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before nbval starts any kernel: kernels inherit it, so stored outputs never depend on a GPU.
os.environ["COURSE_DEVICE"] = "cpu"

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def notebook_dir() -> Path:
    return NOTEBOOKS
