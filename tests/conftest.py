"""Shared fixtures. The whole suite, notebooks included, runs on the CPU, on every core: see
helpers/course/pytest_plugin.py, which pyproject.toml loads."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def notebook_dir() -> Path:
    return NOTEBOOKS
