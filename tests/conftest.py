"""Shared fixtures. The whole suite, notebooks included, runs on the CPU, on every core: see
helpers/course/pytest_plugin.py, which pyproject.toml loads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each worker runs its tests beside the other worker's notebook kernel, on a machine with as many
    # cores as workers: one torch thread each (as in the kernels, helpers.environment.NUM_THREADS)
    # keeps their threads from waiting on each other; the tests' tensors are small.
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_thread():
    """For modules of small tensors (`pytestmark = pytest.mark.usefixtures("one_thread")`): one thread is
    fastest, and several spin against each other on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def notebook_dir() -> Path:
    return NOTEBOOKS


@pytest.fixture(scope="session")
def browser():
    """One Chromium for the session's browser tests (Playwright's sync API allows one per process), offline."""
    pytest.importorskip("playwright.sync_api", reason="Playwright is missing: `pip install -e .` installs it")
    from slides_browser import HOW_TO_INSTALL, chromium, find_chromium

    executable = find_chromium()
    if executable is None:
        pytest.skip(HOW_TO_INSTALL)
    with chromium(executable) as (context, log):
        yield context, log
