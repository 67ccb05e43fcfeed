"""The checks framework: results render three ways, and nothing a candidate does escapes."""

import random
import sys

import numpy as np
import pytest
import torch

import helpers.checks.core as core
from helpers.checks import MIME_TYPE, CheckResult, Status
from helpers.checks.core import Failure, Probe, describe_difference, run_check


def identity_body(probe: Probe) -> str:
    x = torch.arange(6.0).reshape(2, 3)
    probe.expect_close(probe.call(x), x, "a (2, 3) tensor")
    return "1 case."


def run(candidate):
    return run_check("identity", candidate, identity_body)


def test_result_renders_as_text_html_and_payload():
    result = CheckResult("demo", Status.FAILED, "On a case: wrong.", "use dim=-1 <here>")
    assert not result.passed
    assert result.message.startswith("❌ demo: failed. On a case: wrong.")
    assert "Hint: use dim=-1 <here>" in str(result)
    bundle = result._repr_mimebundle_()
    assert bundle["text/plain"] == result.message
    assert "&lt;here&gt;" in bundle["text/html"]  # escaped
    assert bundle[MIME_TYPE] == {"name": "demo", "status": "failed", "summary": "On a case: wrong.",
                                 "hint": "use dim=-1 <here>"}


def test_passing_candidate():
    result = run(lambda x: x.clone())
    assert result.passed and result.status is Status.PASSED
    assert result.message == "✅ identity: passed. 1 case."


def test_stub_is_not_attempted():
    def stub(x):
        raise NotImplementedError()

    result = run(stub)
    assert result.status is Status.NOT_ATTEMPTED and not result.passed
    assert result.message.startswith("⏳")


@pytest.mark.parametrize(
    ("candidate", "expected_text"),
    [
        (lambda x: 1 / 0, "raised ZeroDivisionError"),
        (lambda x: x.numpy(), "is a NumPy array"),
        (lambda x: "hello", "is of type str"),
        (lambda x: None, "is of type NoneType"),
        (lambda x: x[0], "has shape (3,), expected (2, 3)"),
        (lambda x: x * float("nan"), "contains NaN"),
        (lambda x: x + 1, "at index (0, 0) it is 1, expected 0"),
        (lambda x: x.add_(1), "changed its argument #1 in place"),
        (lambda x: sys.exit(3), "raised SystemExit"),
        (lambda x: x.long(), "dtype torch.int64, expected a floating-point tensor"),
    ],
)
def test_wrong_candidates_fail_cleanly(candidate, expected_text):
    result = run(candidate)
    assert result.status is Status.FAILED
    assert expected_text in result.message


def test_error_names_the_line_of_student_code():
    def broken(x):
        y = x.sum(dim=5)
        return y

    result = run(broken)
    assert "line" in result.summary and "y = x.sum(dim=5)" in result.summary
    assert "Count dimensions from the end" in result.hint


def test_non_callable_candidate():
    result = run(None)
    assert result.status is Status.FAILED and "Expected a function, got NoneType" in result.message


def test_printing_is_captured_not_lost(capsys):
    result = run(lambda x: print("debug", x.shape) or x.clone())
    assert result.passed
    assert "debug torch.Size([2, 3])" in result.printed
    assert capsys.readouterr().out == ""


def test_infinite_loop_is_stopped(monkeypatch):
    monkeypatch.setattr(core, "TIME_LIMIT", 0.5)

    def forever(x):
        while True:
            pass

    result = run(forever)
    assert result.status is Status.FAILED and "longer than" in result.message


def test_a_result_that_breaks_the_check_is_reported():
    def body(probe: Probe) -> str:
        raise RuntimeError("internal")

    result = run_check("weird", lambda: None, body)
    assert result.status is Status.FAILED and "could not finish" in result.message


def test_check_does_not_shift_global_random_streams():
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)

    def greedy(x):
        torch.rand(100)
        np.random.rand(100)
        random.random()
        return x.clone()

    run(greedy)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_mistake_hint_is_chosen_by_matching_output():
    def body(probe: Probe) -> str:
        x = torch.arange(6.0).reshape(2, 3)
        probe.expect_close(probe.call(x), x.sum(-1), "a (2, 3) tensor",
                           mistakes=[("summed the wrong dim", lambda: x.sum(0)),
                                     ("unrunnable mistake", lambda: 1 / 0)])
        return "ok"

    assert run_check("s", lambda x: x.sum(0), body).hint == "summed the wrong dim"
    assert run_check("s", lambda x: x.sum(-1) + 5, body).hint == ""


def test_describe_difference_accepts_float64_answers():
    x = torch.randn(3, 4)
    assert describe_difference(x.double(), x) is None
    assert describe_difference(x, x + 1e-3) is not None


def test_failure_carries_summary_and_hint():
    failure = Failure("summary", "hint")
    assert failure.summary == "summary" and failure.hint == "hint"
