"""The warm-up check: any correct answer passes; the stub is ⏳; each typical mistake gets its own hint."""

import pytest
import torch

from helpers.checks import Status, check_batched_dot


def with_sum(a, b):
    return (a * b).sum(dim=-1)


def with_einsum(a, b):
    return torch.einsum("...d,...d->...", a, b)


def with_loop_in_float64(a, b):
    flat_a = a.reshape(-1, a.shape[-1]).double()
    flat_b = b.reshape(-1, b.shape[-1]).double()
    out = torch.stack([sum(x * y for x, y in zip(row_a, row_b)) for row_a, row_b in zip(flat_a, flat_b)])
    return out.reshape(a.shape[:-1])


def with_matmul(a, b):
    return (a.unsqueeze(-2) @ b.unsqueeze(-1)).squeeze(-1).squeeze(-1)


@pytest.mark.parametrize("candidate", [with_sum, with_einsum, with_loop_in_float64, with_matmul, torch.linalg.vecdot])
def test_correct_answers_pass(candidate):
    result = check_batched_dot(candidate)
    assert result.passed, result.message


def test_stub_is_not_attempted():
    def batched_dot(a, b):
        # YOUR CODE HERE
        raise NotImplementedError()

    assert check_batched_dot(batched_dot).status is Status.NOT_ATTEMPTED


@pytest.mark.parametrize(
    ("mistake", "hint_words"),
    [
        (lambda a, b: a * b, "did not sum"),
        (lambda a, b: (a * b).sum(), "lost the batch"),
        (lambda a, b: (a * b).sum(dim=0), "summed over the first dimension"),
        (lambda a, b: (a * b).sum(dim=-1, keepdim=True), "keepdim=True"),
        (lambda a, b: a @ b.transpose(-2, -1), "every vector against every other"),
        (lambda a, b: torch.nn.functional.cosine_similarity(a, b, dim=-1), "cosine similarity"),
        (lambda a, b: (a * a).sum(dim=-1), "instead of multiplying a with b"),
        (lambda a, b: (a * b).sum(dim=-1).squeeze(), "squeezed away every dimension of size 1"),
        (lambda a, b: torch.einsum("bnd,bnd->bn", a, b) if a.ndim >= 3 else (a * b).sum(dim=-1),
         "any number of leading batch dimensions"),
        (lambda a, b: (a * b).sum(dim=-1) if a.ndim > 1 else (a * b).sum().item(), "a single pair of shape (d,)"),
    ],
)
def test_typical_mistakes_get_their_own_hint(mistake, hint_words):
    result = check_batched_dot(mistake)
    assert result.status is Status.FAILED
    assert hint_words in result.hint, result.message


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        (lambda a, b: (_ for _ in ()).throw(ValueError("boom")), "raised ValueError: boom"),
        (lambda a, b: [1.0, 2.0], "is of type list"),
        (lambda a, b: torch.full(a.shape[:-1], float("nan")), "contains NaN"),
    ],
)
def test_broken_candidates_fail_cleanly(candidate, words):
    result = check_batched_dot(candidate)
    assert result.status is Status.FAILED
    assert words in result.message


def test_no_mistake_hint_prints_the_answer():
    from helpers.checks.nb00_warmup import MISTAKES

    for mistake in MISTAKES:  # the hint names the mistake; the learner writes the code
        assert ".sum(dim=-1)" not in mistake.hint and "(a * b)" not in mistake.hint, mistake.hint


def test_cases_are_drawn_and_cover_every_layout():
    """Sizes come from seeded generators, all different within a case; every layout of the statement is there."""
    shapes = [tuple(case.args[0].shape) for case in check_batched_dot.spec.cases()]
    assert {len(s) for s in shapes} == {1, 2, 3, 4} and any(1 in s for s in shapes), shapes
    assert all(len(set(s)) == len(s) for s in shapes if 1 not in s), shapes
    assert shapes == [tuple(case.args[0].shape) for case in check_batched_dot.spec.cases()]  # seeded: the same twice
