"""The course's pytest plugin (loaded by pyproject.toml's addopts, `-p helpers.course.pytest_plugin`):
how the suite shares the CPU's cores, and a CPU for every notebook's kernel.

pytest-xdist runs the suite on several workers (`-n auto --dist loadfile`). Every cell of a
notebook is an nbval test that needs the kernel the cells before it ran in, so each file (a
notebook, a test module) is run start to end by one worker. The longest files start first (the
longest-processing-time rule): each file's duration is remembered in pytest's cache from the
last run; a file not measured yet counts by a guess (one with a test marked `long_running`
first, then the notebooks, later ones first, as they train bigger models). A plugin rather than tests/conftest.py:
`pytest notebooks/04_x.ipynb` loads no conftest from tests/, and needs all of this too.
"""

from __future__ import annotations

import os
from collections import defaultdict

import pytest

from helpers.environment import DEVICE_ENV

# Set before nbval starts any kernel: kernels inherit it, so stored outputs never depend on a GPU.
os.environ[DEVICE_ENV] = "cpu"

DURATIONS_KEY = "course/group_seconds"


_seconds: dict[str, float] = defaultdict(float)  # per file, this run


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "long_running: a test of a minute or more; the workers start its file first")


def is_notebook_cell(item: pytest.Item) -> bool:
    return item.__class__.__module__.startswith("nbval")


def file_of(nodeid: str) -> str:
    """The unit of scheduling under `--dist loadfile`: a notebook, or a test module."""
    return nodeid.split("::", 1)[0]


def guessed_seconds(item: pytest.Item) -> float:
    if item.get_closest_marker("long_running"):
        return 1000.0
    if is_notebook_cell(item):
        number = item.path.name[:2]
        return 100.0 + (int(number) if number.isdigit() else 0)
    return 0.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cache = getattr(config, "cache", None)
    known: dict[str, float] = cache.get(DURATIONS_KEY, {}) if cache else {}
    cost: dict[str, float] = defaultdict(float)
    for item in items:
        name = file_of(item.nodeid)
        cost[name] = max(cost[name], known.get(name, guessed_seconds(item)))
    # A stable sort: the cells of one notebook, the tests of one module, keep their order.
    items.sort(key=lambda item: -cost[file_of(item.nodeid)])


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Seen on the controller for every test of every worker (and on each worker for its own).
    _seconds[file_of(report.nodeid)] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    cache = getattr(session.config, "cache", None)
    if cache is None or hasattr(session.config, "workerinput") or not _seconds:
        return  # a worker: the controller records what every worker measured
    cache.set(DURATIONS_KEY, {**cache.get(DURATIONS_KEY, {}), **{k: round(v, 2) for k, v in _seconds.items()}})
