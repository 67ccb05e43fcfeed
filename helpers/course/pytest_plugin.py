"""The course's pytest plugin (loaded by pyproject.toml's addopts, `-p helpers.course.pytest_plugin`):
how the suite shares the CPU's cores, and a CPU for every notebook's kernel.

pytest-xdist runs the suite on several workers (`-n auto --dist loadfile`). The unit of work a
worker takes is a *job*: a file (every cell of a notebook is an nbval test that needs the kernel
the cells before it ran in, so a notebook runs start to end on one worker; a test module keeps
its module fixtures), or a single test that is a job of its own because it is long and shares
nothing with its neighbours (one blank workbook's run, say). A test is its own job when its
parametrize id starts with `OWN_JOB` (write it with `own_job(name)`); xdist's controller sees only
test ids, so the id is how it knows.

The longest jobs start first (the longest-processing-time rule), so that both workers stay busy
to the end. Each job's duration comes from pytest's cache (the last run here), else from the table
committed in tests/job_seconds.json (a fresh clone, CI: `pytest --record-job-seconds` rewrites it
from a whole run), else from a guess (a test marked `long_running` first, then the notebooks and the
jobs named after one, later ones first, as they train bigger models).

One notebook's kernel (FOREIGN_ENVIRONMENT_NOTEBOOK) starts with MPLBACKEND=Agg and OMP_NUM_THREADS=3,
as on a server or in CI: strict nbval then shows that the environment changes nothing it displays.

Each notebook's strict run also bounds its kernel's memory: after the last cell, the kernel's peak
resident memory (Linux's VmHWM, with any process it started) must stay under KERNEL_MEMORY_LIMIT, or
that cell fails. A blank workbook's kernel runs the same cells less the solutions, so this is what
`course progress` needs of a laptop for its kernel (tests/test_workbooks.py measures the command).

A plugin rather than tests/conftest.py: `pytest notebooks/04_x.ipynb` loads no conftest from
tests/, and needs all of this too.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

import pytest

from helpers.environment import DEVICE_ENV

# Set before nbval starts any kernel: kernels inherit it, so stored outputs never depend on a GPU.
os.environ[DEVICE_ENV] = "cpu"

DURATIONS_KEY = "course/group_seconds"

#: The committed durations, relative to the root folder: what a clone without pytest's cache orders by.
JOB_SECONDS = Path("tests") / "job_seconds.json"

#: The most a notebook's kernel may hold at its peak: `course progress` runs one kernel at a time, and
#: the command and its kernel together must fit in 1.5 GiB (tests/test_workbooks.py, MEMORY_LIMIT).
KERNEL_MEMORY_LIMIT = 1 * 2**30

#: The plotting notebook whose strict run starts its kernel in an environment that servers and CI often
#: have: its figures and numbers must still be those of the committed run (made without it). One
#: notebook shows it; running one a second time for the purpose would cost about 7 s.
FOREIGN_ENVIRONMENT_NOTEBOOK = "01_queries_keys_values.ipynb"
FOREIGN_ENVIRONMENT = {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "3"}

#: The Korean edition's notebooks (notebooks/ko) that a bare run executes under strict nbval: one, to show
#: that running a Korean notebook displays what it stores (its checks' ✅ ❌ ⏳ in Korean, from its setup
#: on). The others are a fresh build of their English notebook, which the suite executes, with the same
#: code (tests/test_translations.py): running them too would double the suite's time for nothing new.
#: `pytest notebooks/ko/NN_name.ipynb` runs any of them.
KOREAN_EXECUTED = ("04_softmax_and_attention.ipynb",)

#: How the parametrize id of a test that is a job of its own begins.
OWN_JOB = "job-"

_NUMBERED = re.compile(r"(\d\d)_")  # a notebook's (or a job named after one's) number

_seconds: dict[str, float] = defaultdict(float)  # per job, this run


def own_job(name: str) -> str:
    """The parametrize id that makes a test a job of its own, e.g. `job-09_full_transformer`."""
    return f"{OWN_JOB}{name}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--record-job-seconds", action="store_true",
                     help=f"write every job's seconds of this run into {JOB_SECONDS} (after a whole, passing run)")


def committed_seconds(root: Path) -> dict[str, float]:
    """The committed table of job durations, or nothing when it is missing or unreadable."""
    import json

    try:
        table = json.loads((root / JOB_SECONDS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {job: float(seconds) for job, seconds in table.items()} if isinstance(table, dict) else {}


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave out the Korean notebooks but KOREAN_EXECUTED, unless named on the command line."""
    if collection_path.suffix != ".ipynb" or collection_path.parent.name != "ko":
        return None
    if collection_path.name in KOREAN_EXECUTED:
        return None
    named = any(Path(arg.split("::")[0]).resolve() == collection_path.resolve() for arg in config.args)
    return None if named else True


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "long_running: a test of a minute or more; the workers start its job first")


def is_notebook_cell(item: pytest.Item) -> bool:
    return item.__class__.__module__.startswith("nbval")


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def job_of(nodeid: str) -> str:
    """The unit of scheduling: the test itself when its id says it is a job of its own, else its file."""
    return nodeid if f"[{OWN_JOB}" in nodeid else file_of(nodeid)


def guessed_seconds(job: str, item: pytest.Item) -> float:
    """A job's duration before it was ever measured: only the order of these numbers matters."""
    if item.get_closest_marker("long_running"):
        return 1000.0
    if is_notebook_cell(item):
        name, extra = item.path.name, 0.5  # a notebook's strict run before its blank workbook's
    elif job != file_of(job):
        name, extra = job.split(f"[{OWN_JOB}", 1)[1], 0.0
    else:
        return 0.0
    number = _NUMBERED.match(name)
    return 100.0 + (int(number.group(1)) if number else 0) + extra


def kernel_peak_bytes(pid: int) -> int:
    """The peak resident memory of a kernel process and of the processes it started (Linux; else 0)."""
    import psutil

    def peak(process: psutil.Process) -> int:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
        except OSError:
            return 0
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        return int(match.group(1)) * 1024 if match else 0

    try:
        kernel = psutil.Process(pid)
        return sum(peak(p) for p in [kernel, *kernel.children(recursive=True)])
    except psutil.Error:
        return 0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    """Start FOREIGN_ENVIRONMENT_NOTEBOOK's kernel in FOREIGN_ENVIRONMENT: nbval starts a notebook's
    kernel while it sets up the first cell, and the kernel inherits this process's environment."""
    notebook = item.parent if is_notebook_cell(item) else None
    if notebook is None or notebook.path.name != FOREIGN_ENVIRONMENT_NOTEBOOK or notebook.kernel is not None:
        return (yield)
    with pytest.MonkeyPatch.context() as env:
        for name, value in FOREIGN_ENVIRONMENT.items():
            env.setenv(name, value)
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    result = yield
    if getattr(item, "_course_last_cell", False):
        kernel = getattr(item.parent, "kernel", None)  # nbval's RunningKernel
        pid = getattr(getattr(getattr(kernel, "km", None), "provisioner", None), "pid", None)
        peak = kernel_peak_bytes(pid) if pid else 0
        item.user_properties.append(("kernel_peak_bytes", peak))
        assert peak < KERNEL_MEMORY_LIMIT, (
            f"{item.path.name}'s kernel peaked at {peak / 2**20:.0f} MiB, over the {KERNEL_MEMORY_LIMIT / 2**20:.0f} "
            "MiB a workbook's kernel may hold when `course progress` runs it on a student's laptop")
    return result


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    last_cells = {getattr(item, "parent", None): item for item in items if is_notebook_cell(item)}
    for item in last_cells.values():
        item._course_last_cell = True  # type: ignore[attr-defined]
    cache = getattr(config, "cache", None)
    root = getattr(config, "rootpath", None)
    known = {**(committed_seconds(root) if root else {}), **(cache.get(DURATIONS_KEY, {}) if cache else {})}
    cost: dict[str, float] = defaultdict(float)
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        job = job_of(item.nodeid)
        cost[job] = max(cost[job], known.get(job, guessed_seconds(job, item)))
        first.setdefault(job, index)
    # The cells of one notebook, the tests of one module, keep their order; jobs of equal cost, theirs.
    items.sort(key=lambda item: (-cost[job_of(item.nodeid)], first[job_of(item.nodeid)]))


@pytest.hookimpl(optionalhook=True)  # xdist's hook: without xdist (`-p no:xdist`) it is never called
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # -> xdist's Scheduling | None
    """Under `--dist loadfile`, xdist's file scheduling with the course's jobs as its units."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class JobScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return job_of(nodeid)

        def _reschedule(self, node) -> None:  # node: xdist's WorkerController
            # A worker starts a test only once it holds the next one: a job of one test sits idle until
            # it gets a second job. Make that the cheapest (last in the queue), not the next long one,
            # which would wait behind it while another worker runs out of work.
            if not node.shutting_down and len(self.workqueue) > 1 and self._pending_of(self.assigned_work[node]) == 1:
                self.workqueue.move_to_end(next(reversed(self.workqueue)), last=False)
            super()._reschedule(node)

    return JobScheduling(config, log)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Seen on the controller for every test of every worker (and on each worker for its own).
    _seconds[job_of(report.nodeid)] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput") or not _seconds:
        return  # a worker: the controller records what every worker measured
    measured = {k: round(v, 2) for k, v in _seconds.items()}
    cache = getattr(session.config, "cache", None)
    if cache is not None:
        cache.set(DURATIONS_KEY, {**cache.get(DURATIONS_KEY, {}), **measured})
    if session.config.getoption("record_job_seconds", False) and session.testsfailed == 0:
        import json

        ran = {file_of(job) for job in measured}  # a partial run replaces the jobs of the files it ran only
        kept = {job: t for job, t in committed_seconds(session.config.rootpath).items() if file_of(job) not in ran}
        merged = {**kept, **measured}
        table = dict(sorted(((job, round(seconds, 1)) for job, seconds in merged.items()), key=lambda j: -j[1]))
        (session.config.rootpath / JOB_SECONDS).write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
