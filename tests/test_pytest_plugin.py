"""How the suite spreads over the workers (helpers/course/pytest_plugin.py): jobs, longest first."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from helpers.course import pytest_plugin
from helpers.course.pytest_plugin import (
    DURATIONS_KEY,
    job_of,
    own_job,
    pytest_collection_modifyitems,
    pytest_xdist_make_scheduler,
)


class FakeItem:
    """What the ordering reads of a test: its id, its path, its `long_running` marker."""

    def __init__(self, nodeid: str, long_running: bool = False) -> None:
        self.nodeid = nodeid
        self.path = Path(nodeid.split("::", 1)[0])
        self.long_running = long_running

    def get_closest_marker(self, name: str) -> object | None:
        return object() if name == "long_running" and self.long_running else None


class FakeCell(FakeItem):
    pass


FakeCell.__module__ = "nbval.plugin"  # what makes an item a notebook cell for the plugin


class FakeCache:
    def __init__(self, known: dict[str, float]) -> None:
        self.known = known

    def get(self, key: str, default: object) -> object:
        return self.known if key == DURATIONS_KEY else default


def ordered(items: list[FakeItem], known: dict[str, float] | None = None) -> list[str]:
    pytest_collection_modifyitems(SimpleNamespace(cache=FakeCache(known or {})), items)  # type: ignore[arg-type]
    return [item.nodeid for item in items]


def test_a_job_is_its_file_unless_its_id_says_it_is_its_own():
    assert job_of("tests/test_a.py::test_x") == "tests/test_a.py"
    assert job_of("tests/test_a.py::test_x[3-4]") == "tests/test_a.py"
    assert job_of("notebooks/09_x.ipynb::Cell 4") == "notebooks/09_x.ipynb"
    mine = f"tests/test_a.py::test_x[{own_job('09_x')}]"
    assert mine.endswith("[job-09_x]") and job_of(mine) == mine


def test_unmeasured_jobs_go_long_running_first_then_later_notebooks_first():
    items = [FakeItem("tests/test_a.py::test_1"), FakeCell("notebooks/01_a.ipynb::Cell 0"),
             FakeItem(f"tests/test_w.py::test_b[{own_job('09_b')}]"), FakeCell("notebooks/09_b.ipynb::Cell 0"),
             FakeItem("tests/test_a.py::test_2"), FakeCell("notebooks/01_a.ipynb::Cell 1"),
             FakeItem("tests/test_l.py::test_long", long_running=True)]
    assert ordered(items) == [
        "tests/test_l.py::test_long",
        "notebooks/09_b.ipynb::Cell 0",  # a notebook's strict run before its blank workbook's
        "tests/test_w.py::test_b[job-09_b]",
        "notebooks/01_a.ipynb::Cell 0", "notebooks/01_a.ipynb::Cell 1",  # a notebook's cells stay together, in order
        "tests/test_a.py::test_1", "tests/test_a.py::test_2",
    ]


def test_measured_jobs_go_longest_first_and_a_files_tests_keep_their_order():
    items = [FakeItem("tests/test_a.py::test_1"), FakeItem("tests/test_a.py::test_2[job-x]"),
             FakeItem("tests/test_a.py::test_3"), FakeCell("notebooks/09_b.ipynb::Cell 0")]
    known = {"tests/test_a.py": 5.0, "tests/test_a.py::test_2[job-x]": 50.0, "notebooks/09_b.ipynb": 20.0}
    assert ordered(items, known) == ["tests/test_a.py::test_2[job-x]", "notebooks/09_b.ipynb::Cell 0",
                                     "tests/test_a.py::test_1", "tests/test_a.py::test_3"]


class FakeWorker:
    """What xdist's scheduler asks of a worker: to take tests (by index in its collection), to stop."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down = False
        self.sent: list[int] = []

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.extend(indices)

    def send_runtest_all(self) -> None:
        raise AssertionError("a file scheduler sends tests by index")

    def shutdown(self) -> None:
        self.shutting_down = True


class Quiet:
    """xdist's log, silenced."""

    def __getattr__(self, name: str) -> Quiet:
        return self

    def __call__(self, *args: object) -> None:
        pass


CONFIG = SimpleNamespace(getvalue={"dist": "loadfile", "tx": ["2*popen"]}.get,
                         option=SimpleNamespace(loadscopereorder=False))


def first_sent(scheduler, collection: list[str]) -> dict[str, list[str]]:
    """What xdist's `scheduler` sends two workers first, for a run of `collection`."""
    workers = [FakeWorker("gw0"), FakeWorker("gw1")]
    for worker in workers:
        scheduler.add_node(worker)
    for worker in workers:
        scheduler.add_node_collection(worker, collection)
    scheduler.schedule()
    return {worker.gateway.id: [collection[i] for i in worker.sent] for worker in workers}


@pytest.mark.parametrize("plugin", [True, False], ids=["with the plugin", "without"])
def test_a_files_own_jobs_go_to_both_workers(plugin):
    from xdist.scheduler import LoadFileScheduling

    scheduler = pytest_xdist_make_scheduler(CONFIG, Quiet()) if plugin else LoadFileScheduling(CONFIG, Quiet())
    collection = ["tests/test_w.py::test_b[job-09_b]", "tests/test_w.py::test_b[job-10_c]",
                  "tests/test_w.py::test_rest", "tests/test_w.py::test_more", "tests/test_w.py::test_last"]
    sent = first_sent(scheduler, collection)
    if plugin:
        assert sent["gw0"][:1] == collection[:1] and sent["gw1"][:1] == collection[1:2], sent
    else:  # plain `--dist loadfile` keeps a file's tests on one worker: the plugin is what spreads them
        assert sorted(sent.values(), key=len) == [[], collection], sent


def test_a_lone_tests_companion_is_the_cheapest_job():
    """A worker starts a one-test job only once it holds a second job: that one is the last (cheapest) queued."""
    collection = [*(f"notebooks/09_a.ipynb::Cell {i}" for i in range(4)), "tests/test_w.py::test_b[job-09_a]",
                  "tests/test_w.py::test_b[job-11_c]", "tests/test_x.py::test_1", "tests/test_y.py::test_1"]
    sent = first_sent(pytest_xdist_make_scheduler(CONFIG, Quiet()), collection)
    assert sent == {"gw0": collection[:4], "gw1": ["tests/test_w.py::test_b[job-09_a]", "tests/test_y.py::test_1"]}


pytest_plugins = ["pytester"]


@pytest.mark.parametrize("limit", [2**40, 2**20], ids=["under the limit", "over it"])
def test_a_notebooks_last_cell_fails_when_its_kernel_held_too_much(pytester, monkeypatch, limit):
    nbformat.write(new_notebook(cells=[new_code_cell("x = bytearray(50 * 2**20)"), new_code_cell("del x")]),
                   pytester.path / "big.ipynb")
    monkeypatch.setattr(pytest_plugin, "KERNEL_MEMORY_LIMIT", limit)
    result = pytester.runpytest_inprocess("--nbval-lax", "--nbval-current-env", "-p", "no:xdist",
                                          "-p", "no:cacheprovider", "-p", "helpers.course.pytest_plugin", "big.ipynb")
    if limit > 2**30:
        result.assert_outcomes(passed=2)
    else:
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*big.ipynb's kernel peaked at * MiB, over the 1 MiB a workbook's kernel*"])


def test_a_kernels_peak_counts_what_it_held_and_then_freed():
    import os

    before = pytest_plugin.kernel_peak_bytes(os.getpid())
    block = bytearray(200 * 2**20)
    block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page, so it is resident
    del block
    assert pytest_plugin.kernel_peak_bytes(os.getpid()) >= max(before, 200 * 2**20)


def test_the_committed_job_seconds_name_jobs_that_exist_and_every_notebook():
    """A fresh clone (CI) has no pytest cache: it orders the jobs by this table."""
    root = Path(__file__).resolve().parent.parent
    table = pytest_plugin.committed_seconds(root)
    assert table, f"{pytest_plugin.JOB_SECONDS} is missing: `pytest --record-job-seconds` writes it"
    for job in table:
        assert (root / job.split("::", 1)[0]).is_file(), f"{job} in {pytest_plugin.JOB_SECONDS} is gone"
    notebooks = {f"notebooks/{p.name}" for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert notebooks <= set(table), f"not measured yet: {sorted(notebooks - set(table))}"
