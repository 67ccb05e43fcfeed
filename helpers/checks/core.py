"""The checks core: a check is data (cases and named mistakes); one loop here runs every check.

A check never lets an exception escape, whatever the candidate does. Each check runs the
candidate and the reference on the same cases, in order, and stops at the first case where
they differ. The difference is one of a few structured `Kind`s (raised, changed its input in
place, timed out, wrong type, wrong dtype, wrong shape, NaN, wrong values), and the hint is
chosen in one place (`Check._hint`), in this order:

1. the candidate reproduces a named `Mistake` M (a wrong implementation gives the same
   result, or crashes the same way) on this case, or on a `diagnostic` case built for it;
2. a `Clue` holds: the candidate is right on a case related to this one (fewer batch
   dimensions, transposed weights, ...), which names what it gets wrong;
3. the case's own `hint` (what this case is there to catch), for NaN and wrong values;
4. the check's words for this kind (`hints`), the difference's own (a tuple returned with
   two items instead of three), or the course's generic words for the kind.

Recipe for a new check (one module per notebook, `nbNN_topic.py`, re-exported in
`helpers/checks/__init__.py`):

    MISTAKES = [
        Mistake("you summed over every dimension: use dim=-1.", lambda a, b: (a * b).sum()),
    ]

    @check(reference=batched_dot, mistakes=MISTAKES, passed="{cases} cases: batches, float64.")
    def check_batched_dot() -> Iterator[Case]:
        \"\"\"Check `batched_dot(a, b)`: `(..., d), (..., d) -> (...)`.\"\"\"
        g = generator(0)
        yield Case("a batch of 3 vector pairs", (randn(g, 3, 5), randn(g, 3, 5)))

The decorated generator yields the cases (inputs from a local `torch.Generator`, never the
global one); `check_batched_dot(candidate)` returns a `CheckResult`. A mistake is a wrong
implementation with the candidate's signature. Options of `check`:
`returns=("output", "weights")` for a function that returns a tuple (the shared `unpack`
names what came back instead), `shown` for how messages name each part, `compare_first`,
`diagnostic`, `clues`, `hints`, and `compare` for outputs that are not tensors.

Under nbgrader (its autograde and validate runs set `NBGRADER_EXECUTION`), the graded call
`check_<name>(<name>)` of an exercise's check cell raises `AssertionError` with the result's
message when it is ❌ or ⏳, so nbgrader takes the cell's points and shows the hint; any other
call (a notebook showing a wrong answer on purpose) still returns its result. See `graded`.

Nothing here assumes a pure function of tensors: `Case.run(f)` says how to exercise a
candidate `f` and returns what to compare. For a class (an `nn.Module` the learner writes),
a case's run builds it, copies the weights of torch's module in, and returns a tuple of
outputs, gradients, parameter count, in train() and eval(); a mistake is then a wrong class,
run the same way. Build modules under `seeded(seed)`, which leaves the caller's random
streams alone.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import linecache
import math
import os
import random
import re
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import FrameType

import numpy as np
import torch
from torch import Tensor

from helpers.checks.language import current_language, translate, word
from helpers.tensors import format_shape

#: MIME type of a check result's machine-readable payload (read by `course progress`).
MIME_TYPE = "application/vnd.attention-course.check+json"
#: Authors: a file to which every check result's English texts are appended (see locale/ko/checks.po).
COLLECT_ENV = "COURSE_COLLECT_CHECK_TEXTS"

#: Seconds a candidate may run, all its calls in one check together.
TIME_LIMIT = 20.0

#: (rtol, atol) of a comparison; EXACT for outputs that only move numbers around.
TOLERANCE = (1e-4, 1e-5)
EXACT = (0.0, 0.0)

_HELPERS_DIR = Path(__file__).resolve().parent.parent


# ---- the result ---------------------------------------------------------------------------------


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_ATTEMPTED = "not attempted"

    @property
    def icon(self) -> str:
        return {"passed": "✅", "failed": "❌", "not attempted": "⏳"}[self.value]


_COLOURS = {  # (bar, background) per status
    Status.PASSED: ("#2e7d32", "#e8f5e9"),
    Status.FAILED: ("#c62828", "#ffebee"),
    Status.NOT_ATTEMPTED: ("#ef6c00", "#fff3e0"),
}


@dataclass(frozen=True)
class CheckResult:
    """What a check found. Shown as a coloured box in Jupyter and as plain text elsewhere."""

    name: str
    status: Status
    summary: str
    hint: str = ""
    printed: str = ""

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    def __post_init__(self) -> None:
        if os.environ.get(COLLECT_ENV):  # authors: gather every message the checks compose (locale/ko/checks.po)
            with open(os.environ[COLLECT_ENV], "a", encoding="utf-8") as out:
                out.write(json.dumps({"summary": self.summary, "hint": self.hint}, ensure_ascii=False) + "\n")

    @property
    def message(self) -> str:
        """One readable paragraph: the status, what happened and, on failure, the hint."""
        return self.render_text()

    def render_text(self, language: str | None = None) -> str:
        """The message in `language` (by default the one the notebook's setup chose)."""
        language = language or current_language()
        status, summary = word(self.status.value, language), translate(self.summary, language)
        text = f"{self.status.icon} {self.name}: {status}. {summary}"
        if self.hint:
            text += f"\n{word('Hint', language)}: {translate(self.hint, language)}"
        if self.printed:
            text += f"\n{word('Your function printed:', language)}\n{self.printed}"
        return text

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "summary": self.summary, "hint": self.hint}

    def _repr_html_(self) -> str:
        return self.render_html()

    def render_html(self, language: str | None = None) -> str:
        language = language or current_language()
        bar, background = _COLOURS[self.status]
        parts = [
            f"<b>{self.status.icon} {html.escape(self.name)}: {word(self.status.value, language)}.</b> ",
            html.escape(translate(self.summary, language)),
        ]
        if self.hint:
            parts.append(f"<br><b>{word('Hint', language)}:</b> {html.escape(translate(self.hint, language))}")
        if self.printed:
            parts.append(f"<br>{word('Your function printed:', language)}<pre>{html.escape(self.printed)}</pre>")
        return (
            f'<div style="border-left: 6px solid {bar}; background: {background}; color: #1a1a1a; '
            f'padding: 0.6em 1em; margin: 0.3em 0; font-size: 1.05em; line-height: 1.5;">'
            + "".join(parts)
            + "</div>"
        )

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, object]:
        return {"text/plain": self.message, "text/html": self._repr_html_(), MIME_TYPE: self.to_dict()}


# ---- failure kinds and comparing ------------------------------------------------------------------


class Kind(StrEnum):
    """What went wrong on a case. Any kind may also reproduce a named mistake (then its hint wins)."""

    RAISED = "raised"
    IN_PLACE = "changed its input in place"
    TIMED_OUT = "timed out"
    WRONG_TYPE = "wrong type"
    WRONG_DTYPE = "wrong dtype"
    WRONG_SHAPE = "wrong shape"
    NAN = "NaN"
    WRONG_VALUES = "wrong values"


@dataclass(frozen=True)
class Failure:
    """A difference from the answer: its kind, what it is in words, and the hint it implies, if any."""

    kind: Kind
    summary: str
    hint: str = ""


NUMPY_HINT = (
    "return torch tensors, not NumPy arrays: torch operations work on tensors directly "
    "(torch.from_numpy converts an array)."
)

_GENERIC_HINTS = {
    Kind.IN_PLACE: "operations like `x -= ...`, `x[...] = ...` or methods ending in `_` change the caller's "
                   "tensor; compute a new tensor instead.",
    Kind.TIMED_OUT: "look for a loop that never ends, or a Python loop over every element of a large tensor.",
    Kind.NAN: "NaN or inf usually comes from dividing by zero, log of zero, or exp of a huge number.",
}

#: Hints for an exception the candidate raised, by its type (most specific first).
_EXCEPTION_HINTS: list[tuple[type[BaseException], str]] = [
    (NameError, "a name is not defined: check for a typo, and run the cells above this one first."),
    (IndexError, "you used a dimension (or an index) the input does not have. Count dimensions from the end "
                 "(dim=-1, transpose(-2, -1)) so the same code works with any number of batch dimensions."),
    (AttributeError, "you used an attribute or method the object does not have; if it is a NumPy array, "
                     "use torch operations on the tensors instead."),
    (RuntimeError, "torch could not run an operation, usually because two tensors' shapes do not fit together: "
                   "print the shapes step by step."),
]


def describe_difference(
    actual: object, expected: Tensor, rtol: float = TOLERANCE[0], atol: float = TOLERANCE[1],
    what: str = "the output",
) -> Failure | None:
    """None if `actual` equals `expected` within tolerance; otherwise the difference, with its kind.

    Any floating dtype and any device are accepted (a float64 answer to a float32 question
    is right); type, shape, dtype, NaN and values are checked in that order.
    """
    if isinstance(actual, np.ndarray):
        return Failure(Kind.WRONG_TYPE, f"{what} is a NumPy array; return a torch.Tensor (torch.from_numpy "
                       "converts one)", NUMPY_HINT)
    if not isinstance(actual, Tensor):
        return Failure(Kind.WRONG_TYPE, f"{what} is of type {type(actual).__name__}, expected a torch.Tensor")
    if tuple(actual.shape) != tuple(expected.shape):
        return Failure(Kind.WRONG_SHAPE, f"{what} has shape {format_shape(actual.shape)}, "
                       f"expected {format_shape(expected.shape)}")
    if expected.is_floating_point() and not (actual.is_floating_point() or actual.is_complex()):
        return Failure(Kind.WRONG_DTYPE, f"{what} has dtype {actual.dtype}, expected a floating-point tensor")
    if expected.dtype == torch.bool and actual.dtype != torch.bool:
        return Failure(Kind.WRONG_DTYPE, f"{what} has dtype {actual.dtype}, expected torch.bool")
    got, want = actual.detach().cpu(), expected.detach().cpu()
    if want.dtype == torch.bool:
        wrong = int((got != want).sum())
        return None if wrong == 0 else Failure(Kind.WRONG_VALUES,
                                                f"{what} has {wrong} of {want.numel()} entries wrong")
    got, want = got.to(torch.float64), want.to(torch.float64)
    bad = ~torch.isfinite(got) & torch.isfinite(want)
    if bool(bad.any()):
        kind = "NaN" if bool(torch.isnan(got[bad]).any()) else "infinite values"
        count = int(bad.sum())
        return Failure(Kind.NAN, f"{what} contains {kind} where the answer is finite "
                       f"({count} {'entry' if count == 1 else 'entries'})")
    if bool(torch.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)):
        return None
    diff = torch.nan_to_num((got - want).abs(), nan=math.inf)
    index = tuple(int(i) for i in np.unravel_index(int(diff.argmax()), tuple(want.shape))) if want.ndim else ()
    return Failure(Kind.WRONG_VALUES, f"{what} differs from the answer: at index {index} it is "
                   f"{got[index].item():.4g}, expected {want[index].item():.4g}")


def _number(n: int) -> str:
    return {2: "two", 3: "three", 4: "four"}.get(n, str(n))


def unpack(value: object, names: Sequence[str], expected: Sequence[object] = (),
           shown: Mapping[str, str] | None = None) -> tuple[object, ...] | Failure:
    """The parts of a returned tuple, or the Failure that says what came back instead.

    `names` are the parts as the learner's code names them (`output, weights`); if `expected`
    is given, a lone tensor equal to one of its parts is named ("you returned only the output").
    """
    listed = ", ".join(names)
    wanted = f"expected a tuple ({listed})"
    fix = f"`return {listed}`"
    every = "both" if len(names) == 2 else f"all {_number(len(names))}"
    if isinstance(value, np.ndarray):
        return Failure(Kind.WRONG_TYPE, f"your function returned one NumPy array, {wanted}", NUMPY_HINT)
    if isinstance(value, Tensor):
        hint = f"return {every}: {fix}."
        for name, part in zip(names, expected):
            if isinstance(part, Tensor) and describe_difference(value, part) is None:
                hint = f"you returned only {(shown or {}).get(name, name)}; return {every}: {fix}."
                break
        return Failure(Kind.WRONG_TYPE, f"your function returned one tensor of shape {format_shape(value.shape)}, "
                       f"{wanted}", hint)
    kind = type(value).__name__
    if not isinstance(value, (tuple, list)):
        return Failure(Kind.WRONG_TYPE, f"your function returned {kind}, {wanted}",
                       f"your function returned a {kind}, not a tuple: end it with {fix}.")
    if len(value) != len(names):
        return Failure(Kind.WRONG_TYPE, f"your function returned a {kind} of length {len(value)}, {wanted}",
                       f"return exactly {_number(len(names))}: {fix}.")
    return tuple(value)


def unpack_or_stop(value: object, names: Sequence[str]) -> tuple[object, ...]:
    """`unpack` inside a `Case.run` that calls the candidate several times: what came back ends the case."""
    parts = unpack(value, names)
    if isinstance(parts, Failure):
        raise Stop(parts)
    return parts


# ---- cases, mistakes, clues ---------------------------------------------------------------------


_UNSET = object()


@dataclass(frozen=True)
class Case:
    """One input to check on. The summary of a failure reads "On {name}: {what differs}."

    `run(f)` exercises a function or class `f` (candidate, reference or mistake alike) and
    returns what is compared; by default `f(*args, **kwargs)`. `expected` replaces the
    reference's result (for related cases, see `Clue`). `what` names the result of a `run`
    that returns one value although the check's function returns a tuple.
    """

    name: str
    args: tuple[object, ...] = ()
    kwargs: Mapping[str, object] = field(default_factory=dict)
    hint: str = ""
    tolerance: tuple[float, float] = TOLERANCE
    run: Callable[[Callable[..., object]], object] | None = None
    what: str | None = None
    expected: object = _UNSET

    def outcome(self, function: Callable[..., object]) -> object:
        return self.run(function) if self.run is not None else function(*self.args, **self.kwargs)


@dataclass(frozen=True)
class Mistake:
    """A named mistake: the hint, and a wrong implementation with the candidate's signature.

    The candidate reproduces it when it returns the same as `wrong` on the failing case (only
    the part `part` of a returned tuple, if given, and only when that part is the first one
    that differs), or, if `crashes`, when both raise the same exception with the same message.
    """

    hint: str
    wrong: Callable[..., object]
    part: str | None = None
    crashes: bool = False


@dataclass(frozen=True)
class Clue:
    """A mistake recognised by behaviour: the candidate is right on a case related to the failing one.

    `related(case, got)` yields such cases (`got` is what the candidate returned on `case`);
    `hint` may be a function of the failing and the related case.
    """

    hint: str | Callable[[Case, Case], str]
    related: Callable[[Case, object], Iterable[Case]]


@dataclass(frozen=True)
class Term:
    """One entry of an exercise's contract: something its statement allows, and how the check holds it.

    `allows` is the entry in words ("padding at the start of a row", "mask of shape (B, 1, n_k)",
    "mask=None"); `covered_by` is a phrase that appears in the name of every generated case that covers
    it (at least one case must); `wrong` is an implementation right everywhere else and wrong only
    there; `named` is what the ❌ hint must contain, the words that name that mistake. The table of a
    check's terms sits beside it in its module; `tests/test_check_contracts.py` holds every check to it.
    """

    allows: str
    covered_by: str
    wrong: Callable[..., object]
    named: str


def contract_table(terms: Sequence[Term]) -> str:
    """The contract as a markdown table: what the statement allows, and the cases that cover it."""
    rows = ["| the statement allows | covered by the cases named |", "|---|---|"]
    rows += [f"| {t.allows} | {t.covered_by} |" for t in terms]
    return "\n".join(rows)


# ---- shared inputs --------------------------------------------------------------------------------


def generator(seed: int) -> torch.Generator:
    """A local random generator: a check never draws from (or shifts) the global one."""
    return torch.Generator().manual_seed(seed)


def randn(g: torch.Generator, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.randn(*shape, generator=g, dtype=dtype)


def distinct_sizes(g: torch.Generator, count: int, low: int = 2, high: int = 10) -> list[int]:
    """`count` different sizes in [low, high), drawn from `g`: no two dimensions can be mixed up unseen."""
    return [low + int(i) for i in torch.randperm(high - low, generator=g)[:count]]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Build an nn.Module reproducibly: its initialisation draws from the global generator, so seed a fork of it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def key_mismatch(yours: Iterable[str], reference: Iterable[str], shown: int = 4) -> str:
    """What keeps the reference's weights out of a learner's module, in words; "" when the names fit.

    `yours` and `reference` are state_dict keys. Class checks copy the reference's weights in by name,
    so this names the keys the learner's module lacks and those it has that the reference has not.
    """
    yours, reference = list(yours), list(reference)

    def listed(keys: list[str]) -> str:
        return ", ".join(keys[:shown]) + (", ..." if len(keys) > shown else "")

    missing = [k for k in reference if k not in yours]
    unexpected = [k for k in yours if k not in reference]
    parts = ([f"it lacks {listed(missing)}"] if missing else []) + \
            ([f"it has {listed(unexpected)}, which the reference has not"] if unexpected else [])
    return "; ".join(parts)


def leading(x: Tensor, count: int = 1) -> Tensor:
    """`x` without its first `count` batch dimensions (their first entry)."""
    return x[(0,) * count]


# ---- running a candidate --------------------------------------------------------------------------


class _TimeUp(Exception):
    pass


class Stop(Exception):
    """The candidate failed in a way that ends the case at once (it changed its input, it timed out).

    A check's own `Case.run` raises it too, e.g. when a learner's module does not fit the reference's weights.
    """

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.summary)
        self.failure = failure


@dataclass(frozen=True)
class Raised:
    """The outcome of a run that raised."""

    error: BaseException

    def same_as(self, other: object) -> bool:
        return isinstance(other, Raised) and type(self.error) is type(other.error) \
            and str(self.error) == str(other.error)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after `seconds` (Unix main thread only; elsewhere no limit)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise _TimeUp

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _preserved_random_state() -> Iterator[None]:
    """A check must not shift the notebook's random streams, or later outputs would change."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(py_state)
    np.random.set_state(np_state)


def _clone(value: object) -> object:
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (tuple, list)):
        return type(value)(_clone(v) for v in value)
    return value


def _same(a: object, b: object) -> bool:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return a.shape == b.shape and bool(torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)))
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return True


def _guarded(candidate: Callable[..., object]) -> Callable[..., object]:
    """The candidate, called on copies of its arguments; changing them in place, or running too long, stops it."""

    def call(*args: object, **kwargs: object) -> object:
        copies, kwcopies = [_clone(a) for a in args], {k: _clone(v) for k, v in kwargs.items()}
        try:
            result = candidate(*copies, **kwcopies)
        except _TimeUp:
            raise Stop(Failure(Kind.TIMED_OUT, f"your function ran longer than {TIME_LIMIT:.0f} s "
                                "on small inputs")) from None
        changed = [f"#{i + 1}" for i, (a, c) in enumerate(zip(args, copies)) if not _same(a, c)]
        changed += [f"`{k}`" for k, v in kwargs.items() if not _same(v, kwcopies[k])]
        if changed:
            raise Stop(Failure(Kind.IN_PLACE, f"your function changed its argument {changed[0]} in place"))
        return result

    return call


def _outcome(function: Callable[..., object], case: Case) -> object:
    """What `case` gives with `function`, or `Raised`; the time limit and the stub's NotImplementedError pass."""
    try:
        return case.outcome(function)
    except (_TimeUp, Stop, NotImplementedError):
        raise
    except (Exception, SystemExit) as error:  # the candidate's (or a mistake's) code may raise anything
        return Raised(error)


def _quiet(function: Callable[..., object], case: Case) -> object:
    """Like `_outcome` while diagnosing: a stop or a stub counts as raised."""
    try:
        return _outcome(function, case)
    except (Stop, NotImplementedError) as error:
        return Raised(error)


def _where_in_student_code(error: BaseException) -> str:
    """` (in f, line 4: return a @ b.T)`, the last frame outside helpers, torch and numpy."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        filename = frame.filename or ""
        if not (filename.startswith(str(_HELPERS_DIR)) or "site-packages" in filename):
            line = (frame.line or "").strip()
            return f" (in {frame.name}, line {frame.lineno}: {line})" if line else ""
    return ""


def _stub_raised_in(error: BaseException) -> str | None:
    """The exercise whose stub raised `error`: `FeedForward` for `FeedForward.__init__`, else the function's name.

    Only the learner's code counts (frames outside helpers, torch and numpy); None if there is none.
    """
    owner = None
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if not (code.co_filename.startswith(str(_HELPERS_DIR)) or "site-packages" in code.co_filename):
            parts = [p for p in code.co_qualname.split(".") if p != "<locals>"]
            is_method = code.co_argcount > 0 and code.co_varnames[0] in ("self", "cls") and len(parts) >= 2
            owner = parts[-2] if is_method else parts[-1]
        tb = tb.tb_next
    return None if owner is None or owner.startswith("<") else owner


# ---- the one loop ---------------------------------------------------------------------------------


def _no_cases(case: Case) -> Iterable[Case]:
    return ()


def compare_tensors(actual: object, expected: object, what: str, tolerance: tuple[float, float]) -> Failure | None:
    """The default comparison of one returned value (a tensor)."""
    return describe_difference(actual, expected, *tolerance, what=what)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Check:
    """A check as data. Use the `check` decorator to define one; `Check.run(candidate)` runs it."""

    name: str
    reference: Callable[..., object]
    cases: Callable[[], Iterable[Case]]
    passed: str  # the ✅ summary; {cases} and {comparisons} are filled in
    mistakes: Sequence[Mistake] = ()
    clues: Sequence[Clue] = ()
    diagnostic: Callable[[Case], Iterable[Case]] = _no_cases  # cases where every mistake runs
    returns: Sequence[str] = ()  # the parts of a returned tuple, in order; () for one value
    shown: Mapping[str, str] = field(default_factory=dict)  # how messages name a part
    compare_first: Sequence[str] = ()  # parts compared before the others
    what: str = "the output"  # how messages name one returned value
    hints: Mapping[Kind, str] = field(default_factory=dict)  # this exercise's words for a kind
    compare: Callable[[object, object, str, tuple[float, float]], Failure | None] = compare_tensors
    contract: Sequence[Term] = ()  # what the statement allows, each entry covered by cases (see `Term`)

    def run(self, candidate: object) -> CheckResult:
        if not callable(candidate):
            return CheckResult(self.name, Status.FAILED, f"Expected a function, got {type(candidate).__name__}.",
                               f"pass the function itself: check_{self.name}({self.name}), without calling it.")
        buffer = io.StringIO()
        try:
            # Warnings are swallowed: the hint names the mistake more precisely than they do.
            with _preserved_random_state(), time_limit(TIME_LIMIT), contextlib.redirect_stdout(buffer), \
                    contextlib.redirect_stderr(buffer), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                status, summary, hint = self._loop(candidate)
        except _TimeUp:
            status, summary = Status.FAILED, f"The check took longer than {TIME_LIMIT:.0f} s."
            hint = "look for a loop that never ends in your function."
        except (Exception, SystemExit) as error:  # something the candidate returned broke the check itself
            status, summary = Status.FAILED, f"The check could not finish: {type(error).__name__}: {error}"
            hint = "your function probably returned something unusual; return a torch.Tensor."
        printed = buffer.getvalue()
        if len(printed) > 600:
            printed = printed[:600] + "\n[... cut]"
        return CheckResult(self.name, status, summary, hint, printed)

    def _loop(self, candidate: Callable[..., object]) -> tuple[Status, str, str]:
        guarded = _guarded(candidate)
        cases = comparisons = 0
        for case in self.cases():
            expected = self._expected(case)
            try:
                got = _outcome(guarded, case)
            except NotImplementedError as error:
                earlier = _stub_raised_in(error)
                if earlier is not None and earlier not in (self.name, getattr(candidate, "__name__", None)):
                    return Status.FAILED, (f"Your {self.name} calls your `{earlier}`, which is still the stub "
                                           "(it raises NotImplementedError)."), \
                        f"finish the `{earlier}` exercise above first and run its cell, then run this check again."
                return Status.NOT_ATTEMPTED, ("Replace `raise NotImplementedError()` with your code, run that cell, "
                                              "then run this one again."), ""
            except Stop as stop:
                failure, part, got = stop.failure, None, None
            else:
                failure, part = self._difference(got, expected, case)
            if failure is not None:
                hint = self._hint(guarded, case, got, failure, part)
                return Status.FAILED, f"On {case.name}: {failure.summary}.", hint
            cases += 1
            comparisons += 1 if case.what or not self.returns else len(self.returns)
        return Status.PASSED, self.passed.format(cases=cases, comparisons=comparisons), ""

    def _expected(self, case: Case) -> object:
        if case.expected is not _UNSET:
            return case.expected
        expected = _outcome(self.reference, case)
        if isinstance(expected, Raised):  # the check's own fault: report it, never blame the learner
            raise RuntimeError(f"the reference failed on {case.name}: {expected.error!r}")
        return expected

    def _difference(self, got: object, expected: object, case: Case) -> tuple[Failure | None, str | None]:
        """The first difference between `got` and `expected` on `case`, and the tuple part where it is."""
        if isinstance(got, Raised):
            error = got.error
            return Failure(Kind.RAISED, f"your function raised {type(error).__name__}: {error}"
                           f"{_where_in_student_code(error)}"), None
        if case.what is not None or not self.returns:
            return self.compare(got, expected, case.what or self.what, case.tolerance), None
        wanted = unpack(expected, self.returns)
        assert not isinstance(wanted, Failure), f"the reference of {self.name} returns {self.returns}"
        parts = unpack(got, self.returns, wanted, self.shown)
        if isinstance(parts, Failure):
            return parts, None
        order = [*self.compare_first, *(n for n in self.returns if n not in self.compare_first)]
        for name in order:
            i = self.returns.index(name)
            failure = self.compare(parts[i], wanted[i], self.shown.get(name, name), case.tolerance)
            if failure is not None:
                return failure, name
        return None, None

    def _reproduces(self, got: object, part: str | None, mistake: Mistake, case: Case) -> bool:
        wrong = _quiet(mistake.wrong, case)
        if isinstance(got, Raised) or isinstance(wrong, Raised):
            return mistake.crashes and isinstance(got, Raised) and got.same_as(wrong)
        if mistake.part is None:
            return self._difference(got, wrong, case)[0] is None
        if part != mistake.part:
            return False
        i = self.returns.index(part)
        ours, theirs = unpack(got, self.returns), unpack(wrong, self.returns)
        return not isinstance(ours, Failure) and not isinstance(theirs, Failure) and \
            self.compare(ours[i], theirs[i], part, case.tolerance) is None

    def _named_mistake(self, got: object, part: str | None, case: Case) -> Mistake | None:
        return next((m for m in self.mistakes if self._reproduces(got, part, m, case)), None)

    def _hint(self, candidate: Callable[..., object], case: Case, got: object, failure: Failure,
              part: str | None) -> str:
        """The one place a hint is chosen (see the module's docstring for the order)."""
        if failure.kind in (Kind.IN_PLACE, Kind.TIMED_OUT):
            return self.hints.get(failure.kind) or _GENERIC_HINTS[failure.kind]
        mistake = self._named_mistake(got, part, case)
        for related in self.diagnostic(case):
            if mistake is not None:
                break
            there = _quiet(candidate, related)
            difference, part_there = self._difference(there, self._expected(related), related)
            if difference is not None:
                mistake = self._named_mistake(there, part_there, related)
        if mistake is not None:
            return mistake.hint
        for clue in self.clues:
            for related in clue.related(case, got):
                if self._difference(_quiet(candidate, related), self._expected(related), related)[0] is None:
                    return clue.hint(case, related) if callable(clue.hint) else clue.hint
        if case.hint and failure.kind in (Kind.NAN, Kind.WRONG_VALUES):
            return case.hint
        if failure.kind in self.hints:
            return self.hints[failure.kind]
        if failure.hint:
            return failure.hint
        if isinstance(got, Raised):
            error = got.error
            return next((h for t, h in _EXCEPTION_HINTS if isinstance(error, t)),
                        "read the error: it names the line in your function that failed.")
        return _GENERIC_HINTS.get(failure.kind, "")


# ---- grading: nbgrader's runs ---------------------------------------------------------------------

#: The variable nbgrader sets while it executes notebooks, and its values for autograde and validate.
GRADER_VARIABLE = "NBGRADER_EXECUTION"
GRADER_RUNS = ("autograde", "validate")


def under_grader() -> bool:
    """True while nbgrader executes the notebook (`nbgrader autograde`, `nbgrader validate`)."""
    return os.environ.get(GRADER_VARIABLE, "").strip().lower() in GRADER_RUNS


def is_graded_call(name: str, frame: FrameType | None) -> bool:
    """True if the line that called the check is the graded form `check_<name>(<name>)`.

    Only the exercise's own check cell calls a check on the exercise itself (nbgrader locks
    that cell and its checksum); the course also calls checks on wrong answers on purpose
    (`checks.check_softmax(naive_softmax)`) and asserts the ❌, and those must not raise. A
    learner who rebinds the exercise's name (`softmax = my_softmax`) is still graded: the
    line names the exercise, whatever object it holds.
    """
    if frame is None:
        return False
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
    return re.search(rf"\bcheck_{re.escape(name)}\(\s*{re.escape(name)}\s*\)", line) is not None


def graded(result: CheckResult, frame: FrameType | None) -> CheckResult:
    """`result`, or, under nbgrader, AssertionError with its message if it is not ✅ and `frame` is graded."""
    if not result.passed and under_grader() and is_graded_call(result.name, frame):
        raise AssertionError(result.message)
    return result


def check(**spec: object) -> Callable[[Callable[[], Iterable[Case]]], Callable[[object], CheckResult]]:
    """Define `check_<name>(candidate)` from a generator of its cases; `spec` holds `Check`'s other fields.

    The function returns the `CheckResult`; under nbgrader its graded call raises instead of
    returning a ❌ or ⏳ (see `graded`).
    """

    def define(cases: Callable[[], Iterable[Case]]) -> Callable[[object], CheckResult]:
        definition = Check(name=cases.__name__.removeprefix("check_"), cases=cases, **spec)  # type: ignore[arg-type]

        def run(candidate: object) -> CheckResult:
            __tracebackhide__ = True  # IPython and pytest leave this frame out of a graded check's traceback
            return graded(definition.run(candidate), sys._getframe(1))

        run.__name__ = run.__qualname__ = cases.__name__
        run.__doc__, run.__module__ = cases.__doc__, cases.__module__
        run.spec = definition  # type: ignore[attr-defined]  # tests vary a check's cases through it
        return run

    return define
