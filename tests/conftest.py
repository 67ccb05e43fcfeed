"""Shared fixtures, and how the suite shares the CPU's cores. The whole suite, notebooks included,
runs on the CPU.

pytest-xdist runs the suite on several workers (`-n auto --dist loadgroup` in pyproject.toml).
Every cell of a notebook is an nbval test that needs the kernel the cells before it ran in, so
each notebook is one xdist group, run start to end by one worker. The longest groups start
first (the longest-processing-time rule): each group's duration is remembered in pytest's
cache from the last run; a group not measured yet counts by a guess (tests marked
`long_running` first, then the notebooks, later ones first, as they train bigger models).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

from helpers.environment import DEVICE_ENV

# Set before nbval starts any kernel: kernels inherit it, so stored outputs never depend on a GPU.
os.environ[DEVICE_ENV] = "cpu"

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

DURATIONS_KEY = "course/group_seconds"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def notebook_dir() -> Path:
    return NOTEBOOKS


_seconds: dict[str, float] = defaultdict(float)  # per group, this run
_group_of_nodeid: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "long_running: a test of a minute or more; the workers start it first")


def is_notebook_cell(item: pytest.Item) -> bool:
    return item.__class__.__module__.startswith("nbval")


def group_of(item: pytest.Item) -> str:
    """The unit of scheduling: the notebook for nbval's cells, the xdist group, else the test itself."""
    if is_notebook_cell(item):
        return item.path.name
    mark = item.get_closest_marker("xdist_group")
    if mark is not None:
        return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    return item.nodeid


def guessed_seconds(item: pytest.Item) -> float:
    if item.get_closest_marker("long_running"):
        return 1000.0
    if is_notebook_cell(item):
        number = item.path.name[:2]
        return 100.0 + (int(number) if number.isdigit() else 0)
    return 0.0


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cache = getattr(config, "cache", None)
    known: dict[str, float] = cache.get(DURATIONS_KEY, {}) if cache else {}
    cost: dict[str, float] = {}
    for item in items:
        group = group_of(item)
        if is_notebook_cell(item):
            item.add_marker(pytest.mark.xdist_group(group))
        _group_of_nodeid[item.nodeid] = group
        cost.setdefault(group, known.get(group, guessed_seconds(item)))
    # A stable sort: the cells of one notebook keep their order.
    items.sort(key=lambda item: -cost[group_of(item)])


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Seen on the controller for every test of every worker; there, xdist has put "@group" on grouped ids.
    nodeid = report.nodeid
    group = _group_of_nodeid.get(nodeid) or (nodeid.rsplit("@", 1)[1] if "@" in nodeid else nodeid)
    _seconds[group] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    cache = getattr(session.config, "cache", None)
    if cache is None or hasattr(session.config, "workerinput") or not _seconds:
        return  # a worker: the controller records what every worker measured
    cache.set(DURATIONS_KEY, {**cache.get(DURATIONS_KEY, {}), **{k: round(v, 2) for k, v in _seconds.items()}})
