"""The checks framework: run a student's function on known cases and say what is wrong.

A check never lets an exception escape, whatever the candidate does: it may raise, loop
for too long, print, return the wrong type or shape, return NaN, or change its input in
place. Every outcome becomes a `CheckResult`:

- ✅ passed: every case matched the reference;
- ❌ failed: the first case that did not, and a hint that names the likely mistake;
- ⏳ not attempted: the candidate is still the workbook's stub (`NotImplementedError`).

A check is written as a function of a `Probe`: it builds inputs, calls `probe.call(...)`
and compares with `probe.expect_close(...)`, giving the outputs that typical mistakes
would produce so the hint can name the mistake the student actually made.
"""

from __future__ import annotations

import contextlib
import html
import io
import math
import random
import signal
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

#: MIME type of a check result's machine-readable payload (read by `course progress`).
MIME_TYPE = "application/vnd.attention-course.check+json"

#: Seconds a candidate may run, all its calls in one check together.
TIME_LIMIT = 20.0

_HELPERS_DIR = Path(__file__).resolve().parent.parent


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

    @property
    def message(self) -> str:
        """One readable paragraph: the status, what happened and, on failure, the hint."""
        text = f"{self.status.icon} {self.name}: {self.status.value}. {self.summary}"
        if self.hint:
            text += f"\nHint: {self.hint}"
        if self.printed:
            text += f"\nYour function printed:\n{self.printed}"
        return text

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "summary": self.summary, "hint": self.hint}

    def _repr_html_(self) -> str:
        bar, background = _COLOURS[self.status]
        parts = [
            f"<b>{self.status.icon} {html.escape(self.name)}: {self.status.value}.</b> ",
            html.escape(self.summary),
        ]
        if self.hint:
            parts.append(f"<br><b>Hint:</b> {html.escape(self.hint)}")
        if self.printed:
            parts.append(f"<br>Your function printed:<pre>{html.escape(self.printed)}</pre>")
        return (
            f'<div style="border-left: 6px solid {bar}; background: {background}; color: #1a1a1a; '
            f'padding: 0.6em 1em; margin: 0.3em 0; font-size: 1.05em; line-height: 1.5;">'
            + "".join(parts)
            + "</div>"
        )

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, object]:
        return {"text/plain": self.message, "text/html": self._repr_html_(), MIME_TYPE: self.to_dict()}


class Failure(Exception):
    """Raised inside a check body: the candidate is wrong; `hint` says why."""

    def __init__(self, summary: str, hint: str = "") -> None:
        super().__init__(summary)
        self.summary = summary
        self.hint = hint


class NotAttempted(Exception):
    """The candidate raised NotImplementedError: it is still the stub."""


class _TimeUp(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after `seconds` (Unix main thread only; elsewhere no limit)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
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
    py_state = random.getstate()
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(py_state)
    np.random.set_state(np_state)


def _where_in_student_code(exc: BaseException) -> str:
    """`line 4: return a @ b.T`, the last frame outside helpers, torch and numpy."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        filename = frame.filename or ""
        inside_library = filename.startswith(str(_HELPERS_DIR)) or "site-packages" in filename
        if not inside_library:
            line = (frame.line or "").strip()
            return f" (in {frame.name}, line {frame.lineno}: {line})" if line else ""
    return ""


def _hint_for_exception(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, NameError):
        return "a name is not defined: check for a typo, and run the cells above this one first."
    if isinstance(exc, IndexError) and "Dimension out of range" in text:
        return (
            "you used a dimension the input does not have. Count dimensions from the end "
            "(dim=-1, transpose(-2, -1)) so the same code works with any number of batch dimensions."
        )
    if isinstance(exc, RuntimeError) and ("size of tensor" in text or "shapes cannot be multiplied" in text
                                          or "must match" in text or "expected" in text):
        return "two tensors' shapes do not fit together inside your function: print the shapes step by step."
    if isinstance(exc, AttributeError) and "numpy" in text:
        return "you mixed NumPy and torch: inside this function, use torch operations on the tensors."
    return "read the error: it names the line in your function that failed."


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


def describe_difference(
    actual: object, expected: Tensor, rtol: float = 1e-4, atol: float = 1e-5, what: str = "the output"
) -> str | None:
    """None if `actual` equals `expected` within tolerance; otherwise what differs, in words.

    Any floating dtype and any device are accepted (a float64 answer to a float32 question
    is right); type, shape, NaN and values are checked in that order.
    """
    if isinstance(actual, np.ndarray):
        return f"{what} is a NumPy array; return a torch.Tensor (torch.from_numpy converts one)"
    if not isinstance(actual, Tensor):
        return f"{what} is of type {type(actual).__name__}, expected a torch.Tensor"
    if tuple(actual.shape) != tuple(expected.shape):
        return f"{what} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    if expected.is_floating_point() and not (actual.is_floating_point() or actual.is_complex()):
        return f"{what} has dtype {actual.dtype}, expected a floating-point tensor"
    if expected.dtype == torch.bool and actual.dtype != torch.bool:
        return f"{what} has dtype {actual.dtype}, expected torch.bool"
    got = actual.detach().cpu()
    want = expected.detach().cpu()
    if want.dtype == torch.bool:
        if bool(torch.equal(got, want)):
            return None
        wrong = int((got != want).sum())
        return f"{what} has {wrong} of {want.numel()} entries wrong"
    got = got.to(torch.float64)
    want = want.to(torch.float64)
    bad_got = ~torch.isfinite(got) & torch.isfinite(want)
    if bool(bad_got.any()):
        kind = "NaN" if bool(torch.isnan(got[bad_got]).any()) else "infinite values"
        count = int(bad_got.sum())
        return f"{what} contains {kind} where the answer is finite ({count} {'entry' if count == 1 else 'entries'})"
    if bool(torch.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)):
        return None
    diff = torch.nan_to_num((got - want).abs(), nan=math.inf)
    flat = int(diff.argmax())
    index = tuple(int(i) for i in np.unravel_index(flat, tuple(want.shape))) if want.ndim else ()
    return (
        f"{what} differs from the answer: at index {index} it is {got[index].item():.4g}, "
        f"expected {want[index].item():.4g}"
    )


@dataclass
class Probe:
    """Calls the candidate safely and compares its outputs; handed to each check body."""

    candidate: Callable[..., object]
    printed: list[str] = field(default_factory=list)
    cases: int = 0

    def call(self, *args: object, **kwargs: object) -> object:
        """Call the candidate on copies of the arguments; fail if it changed them."""
        originals = (args, kwargs)
        copies = _clone(list(args)), {k: _clone(v) for k, v in kwargs.items()}
        buffer = io.StringIO()
        try:
            # Warnings are swallowed: the hint names the mistake more precisely than they do.
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = self.candidate(*copies[0], **copies[1])
        except NotImplementedError:
            raise NotAttempted from None
        except _TimeUp:
            raise Failure(
                f"Your function ran longer than {TIME_LIMIT:.0f} s on small inputs",
                "look for a loop that never ends, or a Python loop over every element of a large tensor.",
            ) from None
        except (Exception, SystemExit) as exc:  # the student's code may raise anything
            raise Failure(
                f"Your function raised {type(exc).__name__}: {exc}{_where_in_student_code(exc)}",
                _hint_for_exception(exc),
            ) from None
        finally:
            if buffer.getvalue():
                self.printed.append(buffer.getvalue())
        for position, (before, after) in enumerate(zip(originals[0], copies[0])):
            if not _same(before, after):
                raise Failure(
                    f"Your function changed its argument #{position + 1} in place",
                    "operations like `x -= ...`, `x[...] = ...` or methods ending in `_` change the caller's "
                    "tensor; compute a new tensor instead.",
                )
        for name, before in originals[1].items():
            if not _same(before, copies[1][name]):
                raise Failure(f"Your function changed its argument `{name}` in place",
                              "compute a new tensor instead of modifying the input.")
        return result

    def expect_close(
        self,
        actual: object,
        expected: Tensor,
        case: str,
        mistakes: Sequence[tuple[str, Callable[[], object]]] = (),
        rtol: float = 1e-4,
        atol: float = 1e-5,
        what: str = "the output",
    ) -> None:
        """Fail, naming the case, if `actual` differs from `expected`.

        `mistakes` pairs a hint with a function that computes what that mistake would
        return for the same case; the first one the candidate matches gives the hint.
        """
        self.cases += 1
        problem = describe_difference(actual, expected, rtol, atol, what)
        if problem is None:
            return
        raise Failure(f"On {case}: {problem}.", self._diagnose(actual, mistakes, rtol, atol))

    @staticmethod
    def _diagnose(
        actual: object, mistakes: Sequence[tuple[str, Callable[[], object]]], rtol: float, atol: float
    ) -> str:
        for hint, wrong_answer in mistakes:
            try:
                wrong = wrong_answer()
            except Exception:  # that mistake cannot even run on this case: not this one
                continue
            if isinstance(wrong, Tensor) and describe_difference(actual, wrong, rtol, atol) is None:
                return hint
        if isinstance(actual, Tensor) and not bool(torch.isfinite(actual.detach().cpu().to(torch.float64)).all()):
            return "NaN or inf usually comes from dividing by zero, log of zero, or exp of a huge number."
        return ""


def run_check(name: str, candidate: object, body: Callable[[Probe], str]) -> CheckResult:
    """Run `body` against `candidate` and turn whatever happens into a CheckResult.

    `body` returns the summary shown when every case passed ("6 cases: ...").
    """
    if not callable(candidate):
        return CheckResult(
            name,
            Status.FAILED,
            f"Expected a function, got {type(candidate).__name__}.",
            f"pass the function itself: check_{name}({name}), without calling it.",
        )
    probe = Probe(candidate)
    try:
        with _preserved_random_state(), _time_limit(TIME_LIMIT):
            summary = body(probe)
        status, hint = Status.PASSED, ""
    except NotAttempted:
        status = Status.NOT_ATTEMPTED
        summary = "Replace `raise NotImplementedError()` with your code, run that cell, then run this one again."
        hint = ""
    except Failure as failure:
        status, summary, hint = Status.FAILED, failure.summary, failure.hint
    except _TimeUp:
        status, summary = Status.FAILED, f"The check took longer than {TIME_LIMIT:.0f} s"
        hint = "look for a loop that never ends in your function."
    except (Exception, SystemExit) as exc:  # something the candidate returned broke the check itself
        status = Status.FAILED
        summary = f"The check could not finish: {type(exc).__name__}: {exc}"
        hint = "your function probably returned something unusual; return a torch.Tensor."
    printed = "".join(probe.printed)
    if len(printed) > 600:
        printed = printed[:600] + "\n[... cut]"
    return CheckResult(name, status, summary, hint, printed)
