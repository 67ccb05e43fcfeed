"""The checks framework: results render three ways, and nothing a candidate does escapes."""

import linecache
import random
import sys

import numpy as np
import pytest
import torch

import helpers.checks.core as core
from helpers.checks import MIME_TYPE, CheckResult, Status
from helpers.checks.core import Case, Check, Clue, Failure, Kind, Mistake, describe_difference


def one_tensor():
    yield Case("a (2, 3) tensor", (torch.arange(6.0).reshape(2, 3),))


IDENTITY = Check("identity", reference=lambda x: x.clone(), cases=one_tensor, passed="{cases} case.")


def run(candidate):
    return IDENTITY.run(candidate)


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


def test_an_earlier_exercise_still_the_stub_is_named():
    def feed_forward(x):  # the learner's earlier exercise, still the stub
        raise NotImplementedError()

    class FeedForwardModule:  # or a class whose method is the stub
        def __init__(self):
            raise NotImplementedError()

    def identity(x):  # this exercise, done, but it calls the earlier one
        return x + 0 * feed_forward(x)

    def identity_with_class(x):
        FeedForwardModule()
        return x

    result = run(identity)
    assert result.status is Status.FAILED and "`feed_forward`" in result.message and "stub" in result.summary
    assert "finish the `feed_forward` exercise" in result.hint
    assert "`FeedForwardModule`" in run(identity_with_class).message


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
    def cases():
        raise RuntimeError("internal")

    result = Check("weird", reference=lambda: None, cases=cases, passed="").run(lambda: None)
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
    mistakes = [Mistake("summed the wrong dim", lambda x: x.sum(0)), Mistake("unrunnable mistake", lambda x: 1 / 0)]
    summing = Check("s", reference=lambda x: x.sum(-1), cases=one_tensor, passed="ok", mistakes=mistakes)
    assert summing.run(lambda x: x.sum(0)).hint == "summed the wrong dim"
    assert summing.run(lambda x: x.sum(-1) + 5).hint == ""


def test_describe_difference_accepts_float64_answers():
    x = torch.randn(3, 4)
    assert describe_difference(x.double(), x) is None
    assert describe_difference(x, x + 1e-3) is not None


def test_failure_carries_summary_and_hint():
    failure = Failure(Kind.WRONG_VALUES, "summary", "hint")
    assert failure.summary == "summary" and failure.hint == "hint"


@pytest.mark.parametrize(
    ("candidate", "kind"),
    [
        (lambda x: 1 / 0, Kind.RAISED),
        (lambda x: x.add_(1), Kind.IN_PLACE),
        (lambda x: "hello", Kind.WRONG_TYPE),
        (lambda x: x.long(), Kind.WRONG_DTYPE),
        (lambda x: x[0], Kind.WRONG_SHAPE),
        (lambda x: x * float("nan"), Kind.NAN),
        (lambda x: x + 1, Kind.WRONG_VALUES),
    ],
)
def test_each_failure_has_a_structured_kind_with_its_own_hint(monkeypatch, candidate, kind):
    hints = {k: f"hint for {k.value}" for k in Kind}
    result = Check("identity", reference=lambda x: x.clone(), cases=one_tensor, passed="", hints=hints).run(candidate)
    assert result.hint == f"hint for {kind.value}", result.message


def test_a_mistake_that_crashes_is_named_only_when_the_candidate_crashes_the_same_way():
    mistakes = [Mistake("lost keepdim", lambda x: x - x.amax(dim=1), crashes=True)]
    centred = Check("c", reference=lambda x: x - x.amax(dim=1, keepdim=True), cases=one_tensor, passed="",
                    mistakes=mistakes)
    assert centred.run(lambda x: x - x.max(dim=1).values).hint == "lost keepdim"
    assert centred.run(lambda x: x @ x).hint != "lost keepdim"  # raises too, with another message


def test_a_part_mistake_names_the_first_wrong_part_of_a_tuple():
    mistakes = [Mistake("b is negated", lambda x: (x, x), part="b"), Mistake("a is doubled", lambda x: (2 * x, -x),
                                                                          part="a")]
    pair = Check("pair", reference=lambda x: (x, -x), cases=one_tensor, passed="", mistakes=mistakes,
                 returns=("a", "b"))
    assert pair.run(lambda x: (x, x)).hint == "b is negated"
    assert pair.run(lambda x: (2 * x, x)).hint == "a is doubled"  # a is the first wrong part
    assert "returned only a" in pair.run(lambda x: x).hint
    assert "exactly two" in pair.run(lambda x: (x, -x, x)).hint


def test_a_clue_names_a_candidate_that_is_right_on_a_related_case():
    def unbatched(case, got):
        yield Case("one row", (case.args[0][0],))

    clues = [Clue(lambda case, related: f"right on {related.name}, not on {case.name}", unbatched)]
    rows = Check("rows", reference=lambda x: x.sum(-1), cases=one_tensor, passed="", clues=clues)
    assert rows.run(lambda x: x.sum(0) if x.ndim == 2 else x.sum(-1)).hint == "right on one row, not on a (2, 3) tensor"


# ---- under nbgrader: a graded check raises, every other call returns its result ----------------------
# A graded call is the line `check_<name>(<name>)`, as in an exercise's locked check cell; here the
# exercise is `identity`, bound locally to a right, wrong or stub answer.

@core.check(reference=lambda x: x.clone(), passed="{cases} case.")
def check_identity():
    yield from one_tensor()


def doubled(x):
    return x * 2


def stub(x):
    raise NotImplementedError()


@pytest.fixture
def grader(monkeypatch):
    """As nbgrader's autograde sets it while it executes the notebook."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")


def test_in_normal_use_a_graded_check_never_raises(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    identity = doubled
    assert check_identity(identity).status is Status.FAILED
    identity = stub
    assert check_identity(identity).status is Status.NOT_ATTEMPTED


@pytest.mark.parametrize("run", ["autograde", "validate", " Validate"])
def test_under_nbgrader_a_failed_graded_check_raises_its_message(monkeypatch, run):
    monkeypatch.setenv("NBGRADER_EXECUTION", run)
    expected = check_identity.spec.run(doubled).message
    assert expected.startswith("❌ identity: failed. On a (2, 3) tensor: the output differs")
    identity = doubled
    with pytest.raises(AssertionError) as raised:
        check_identity(identity)
    assert str(raised.value) == expected


def test_under_nbgrader_the_stub_raises_not_attempted(grader):
    identity = stub
    with pytest.raises(AssertionError, match="^⏳ identity: not attempted. Replace `raise NotImplementedError"):
        check_identity(identity)


def test_under_nbgrader_a_passed_check_returns_its_result(grader):
    identity = lambda x: x.clone()  # noqa: E731
    result = check_identity(identity)
    assert result.passed and result.message == "✅ identity: passed. 1 case."


def test_under_nbgrader_a_demonstration_of_a_wrong_answer_still_returns(grader):
    # Notebooks check wrong answers on purpose and assert the ❌: `checks.check_softmax(naive_softmax)`.
    assert check_identity(doubled).status is Status.FAILED
    assert check_identity(stub).status is Status.NOT_ATTEMPTED
    assert check_identity(lambda x: 1 / 0).status is Status.FAILED


@pytest.mark.parametrize("value", ["", "1", "generate", "autograder"])
def test_other_values_of_the_variable_do_not_grade(monkeypatch, value):
    monkeypatch.setenv("NBGRADER_EXECUTION", value)
    assert not core.under_grader()
    identity = stub
    assert check_identity(identity).status is Status.NOT_ATTEMPTED


def frame_of_line(line: str):
    """The frame of code whose second line reads `line` (as IPython registers a cell's lines)."""
    filename = f"<cell {abs(hash(line))}>"
    linecache.cache[filename] = (0, None, ["import sys\n", line + "\n"], filename)
    namespace: dict[str, object] = {}
    exec(compile("import sys\nframe = sys._getframe(0)\n", filename, "exec"), namespace)
    return namespace["frame"]


@pytest.mark.parametrize(("line", "is_graded"), [
    ("checks.check_softmax(softmax)", True),
    ("checks.check_softmax( softmax )", True),
    ("check_softmax(softmax);", True),
    ("checks.check_softmax(naive_softmax)", False),
    ("checks.check_softmax(softmax_2)", False),
    ("checks.check_scaled_softmax(softmax)", False),
    ("result = checks.check_softmax(lambda x: x)", False),
])
def test_a_graded_call_is_recognised_by_its_line(line, is_graded):
    assert core.is_graded_call("softmax", frame_of_line(line)) is is_graded


def test_a_call_without_a_frame_is_not_graded():
    assert core.is_graded_call("softmax", None) is False


def test_key_mismatch_names_what_is_missing_and_what_is_extra():
    from helpers.checks.core import key_mismatch

    assert key_mismatch(["a.weight", "a.bias"], ["a.bias", "a.weight"]) == ""  # the order does not matter
    words = key_mismatch(["W.weight", "extra"], ["W.weight", "W.bias"])
    assert words == "it lacks W.bias; it has extra, which the reference has not"
    assert key_mismatch([], [f"k{i}" for i in range(6)], shown=4) == "it lacks k0, k1, k2, k3, ..."
