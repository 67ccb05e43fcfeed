"""Notebook 03's check: any correct answer passes; the stub is ⏳; each typical mistake gets its own hint."""

import math

import pytest
import torch

from helpers.checks import Status, check_scaled_scores


def with_transpose(Q, K):
    d_k = Q.shape[-1]
    return Q @ K.transpose(-2, -1) / math.sqrt(d_k)


def scale_queries_first_with_mT(Q, K):
    d_k = K.shape[-1]
    return (Q / d_k**0.5) @ K.mT


def with_einsum(Q, K):
    return torch.einsum("...qd,...kd->...qk", Q, K) / math.sqrt(Q.size(-1))


def with_torch_sqrt(Q, K):
    d_k = Q.shape[-1]
    return torch.matmul(Q, K.transpose(-2, -1)) / torch.sqrt(torch.tensor(d_k))


def in_float64(Q, K):
    Q64, K64 = Q.double(), K.double()
    return Q64 @ K64.transpose(-2, -1) / math.sqrt(Q.shape[-1])


def with_loops(Q, K):
    d_k = Q.shape[-1]
    flat_q = Q.reshape(-1, Q.shape[-2], d_k)
    flat_k = K.reshape(-1, K.shape[-2], d_k)
    out = torch.stack([
        torch.stack([torch.stack([(q * k).sum() for k in ks]) for q in qs]) for qs, ks in zip(flat_q, flat_k)
    ])
    return out.reshape(*Q.shape[:-1], K.shape[-2]) / d_k**0.5


def with_reference(Q, K):
    from helpers.attention import scaled_scores

    return scaled_scores(Q, K)


@pytest.mark.parametrize(
    "candidate",
    [with_transpose, scale_queries_first_with_mT, with_einsum, with_torch_sqrt, in_float64, with_loops, with_reference],
)
def test_correct_answers_pass(candidate):
    result = check_scaled_scores(candidate)
    assert result.passed, result.message


def test_stub_is_not_attempted():
    def scaled_scores(Q, K):
        # YOUR CODE HERE
        raise NotImplementedError()

    assert check_scaled_scores(scaled_scores).status is Status.NOT_ATTEMPTED


@pytest.mark.parametrize(
    ("mistake", "hint_words"),
    [
        (lambda Q, K: Q @ K.transpose(-2, -1), "without scaling"),
        (lambda Q, K: Q @ K.transpose(-2, -1) / Q.shape[-1], "divided by d_k instead of √d_k"),
        (lambda Q, K: (Q / Q.shape[-1] ** 0.5) @ (K / K.shape[-1] ** 0.5).mT, "divided by d_k instead of √d_k"),
        (lambda Q, K: Q @ K.transpose(-2, -1) * math.sqrt(Q.shape[-1]), "multiplied by √d_k"),
        (lambda Q, K: Q @ K.transpose(-2, -1) / Q.shape[-1] ** 1 / 2, "d_k ** 1/2"),
        (lambda Q, K: Q @ K.transpose(-2, -1) / int(math.sqrt(Q.shape[-1])), "rounded down"),
        (lambda Q, K: Q @ K.transpose(-2, -1) / math.sqrt(K.shape[-2]), "√n_k"),
        (lambda Q, K: Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-2]), "√n_q"),
        (lambda Q, K: Q @ K.transpose(-2, -1) / math.sqrt(len(Q)), "batch size"),
        (lambda Q, K: Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1] if Q.ndim < 4 else Q.shape[1]),
         "number of heads"),
        (lambda Q, K: Q @ K.T / math.sqrt(Q.shape[-1]), "counts dimensions from the front"),
        (lambda Q, K: Q @ K.transpose(0, 1) / math.sqrt(Q.shape[-1]), "counts dimensions from the front"),
        (lambda Q, K: Q @ K.transpose(1, 2) / math.sqrt(Q.shape[-1]), "right for 3-D inputs but fails for 4-D"),
        (lambda Q, K: K @ Q.transpose(-2, -1) / math.sqrt(Q.shape[-1]), "K Qᵀ"),
        (lambda Q, K: Q @ Q.transpose(-2, -1) / math.sqrt(Q.shape[-1]), "Q Qᵀ"),
        (lambda Q, K: torch.softmax(Q @ K.mT / math.sqrt(Q.shape[-1]), dim=-1), "applied the softmax already"),
        (lambda Q, K: torch.softmax(Q @ K.mT / math.sqrt(Q.shape[-1]), dim=-2), "over the queries"),
        (lambda Q, K: torch.softmax(Q @ K.mT, dim=-1), "softmax to unscaled scores"),
    ],
)
def test_typical_mistakes_get_their_own_hint(mistake, hint_words):
    result = check_scaled_scores(mistake)
    assert result.status is Status.FAILED
    assert hint_words in result.hint, result.message


def test_in_place_scaling_is_caught():
    def scales_q_in_place(Q, K):
        Q /= math.sqrt(Q.shape[-1])
        return Q @ K.transpose(-2, -1)

    result = check_scaled_scores(scales_q_in_place)
    assert result.status is Status.FAILED
    assert "in place" in result.message


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        (lambda Q, K: (_ for _ in ()).throw(ValueError("boom")), "raised ValueError: boom"),
        (lambda Q, K: [1.0, 2.0], "is of type list"),
        (lambda Q, K: (Q @ K.mT).numpy(), "NumPy array"),
        (lambda Q, K: torch.full((*Q.shape[:-1], K.shape[-2]), float("nan")), "contains NaN"),
        (lambda Q, K: None, "is of type NoneType"),
    ],
)
def test_broken_candidates_fail_cleanly(candidate, words):
    result = check_scaled_scores(candidate)
    assert result.status is Status.FAILED
    assert words in result.message


def test_not_a_function():
    result = check_scaled_scores(torch.zeros(3))
    assert result.status is Status.FAILED and "Expected a function" in result.message


def test_no_mistake_hint_prints_the_answer():
    from helpers.checks.nb03_scaling import MISTAKES

    for mistake in MISTAKES:
        assert "math.sqrt(" not in mistake.hint and "Q.shape[-1]" not in mistake.hint, mistake.hint
        assert "** 0.5" not in mistake.hint, mistake.hint


def test_generated_sizes_make_every_wrong_divisor_differ():
    for case in check_scaled_scores.spec.cases():
        Q, K = case.args
        d_k = Q.shape[-1]
        divisors = {math.sqrt(d_k), d_k, math.isqrt(d_k), *(math.sqrt(n) for n in (*Q.shape[:-1], K.shape[-2]))}
        assert math.sqrt(d_k) not in {math.sqrt(n) for n in (*Q.shape[:-1], K.shape[-2])}, case.name
        assert len(divisors) >= 3, case.name


def test_no_hint_of_a_contract_entry_prints_solution_code():
    from helpers.checks.nb03_scaling import CONTRACT, SOLUTION_FRAGMENTS

    for term in CONTRACT:
        hint = check_scaled_scores(term.wrong).hint
        leaked = [p for p in SOLUTION_FRAGMENTS["scaled_scores"] if p in hint]
        assert not leaked, (term.allows, hint)
