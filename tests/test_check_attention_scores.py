"""The attention-scores check: any correct answer passes; the stub is ⏳; each typical mistake gets its own hint."""

import math

import pytest
import torch

from helpers.checks import Status, check_attention_scores


def with_transpose(Q, K):
    return Q @ K.transpose(-2, -1)


def with_mT(Q, K):
    return Q @ K.mT


def with_einsum(Q, K):
    return torch.einsum("...qd,...kd->...qk", Q, K)


def with_matmul(Q, K):
    return torch.matmul(Q, K.transpose(-1, -2))


def with_broadcasting(Q, K):
    return (Q.unsqueeze(-2) * K.unsqueeze(-3)).sum(dim=-1)


def with_loop_over_query_rows(Q, K):
    rows = [(Q[..., i : i + 1, :] * K).sum(dim=-1) for i in range(Q.shape[-2])]  # each (..., n_k)
    return torch.stack(rows, dim=-2)


def with_2d_loops_over_the_flattened_batch(Q, K):
    batch = Q.shape[:-2]
    flat_q = Q.reshape(-1, *Q.shape[-2:])
    flat_k = K.reshape(-1, *K.shape[-2:])
    out = torch.empty(flat_q.shape[0], Q.shape[-2], K.shape[-2], dtype=Q.dtype)
    for b in range(flat_q.shape[0]):
        for i in range(Q.shape[-2]):
            for j in range(K.shape[-2]):
                out[b, i, j] = torch.dot(flat_q[b, i], flat_k[b, j])
    return out.reshape(*batch, Q.shape[-2], K.shape[-2])


def in_float64(Q, K):
    return Q.double() @ K.double().transpose(-2, -1)


def transpose_of_k_q(Q, K):
    return (K @ Q.transpose(-2, -1)).transpose(-2, -1)


@pytest.mark.parametrize(
    "candidate",
    [with_transpose, with_mT, with_einsum, with_matmul, with_broadcasting, with_loop_over_query_rows,
     with_2d_loops_over_the_flattened_batch, in_float64, transpose_of_k_q],
)
def test_correct_answers_pass(candidate):
    result = check_attention_scores(candidate)
    assert result.passed, result.message


def test_the_reference_passes():
    from helpers.attention import attention_scores

    assert check_attention_scores(attention_scores).passed


def test_stub_is_not_attempted():
    def attention_scores(Q, K):
        # YOUR CODE HERE
        raise NotImplementedError()

    assert check_attention_scores(attention_scores).status is Status.NOT_ATTEMPTED


def dot_T(Q, K):
    return Q @ K.T


@pytest.mark.parametrize(
    ("mistake", "hint_words"),
    [
        (dot_T, "`.T`"),
        (lambda Q, K: Q @ K.permute(*reversed(range(K.ndim))), "reverses ALL"),
        (lambda Q, K: K @ Q.transpose(-2, -1), "K Qᵀ"),
        (lambda Q, K: Q * K, "element by element"),
        (lambda Q, K: Q * K.transpose(-2, -1), "element by element"),
        (lambda Q, K: Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1]), "√d_k"),
        (lambda Q, K: Q @ K.transpose(-2, -1) / Q.shape[-1], "divided by d_k"),
        (lambda Q, K: torch.softmax(Q @ K.transpose(-2, -1), dim=-1), "softmax"),
        (lambda Q, K: torch.softmax(Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1]), dim=-1), "softmax"),
        (lambda Q, K: (Q * K).sum(dim=-1), "matching rows"),
        (lambda Q, K: (Q @ K.transpose(-2, -1)).sum(dim=-1), "summed each query's scores"),
        (lambda Q, K: Q @ K.transpose(0, 1), "transpose(0, 1)"),
        (lambda Q, K: Q @ K.transpose(1, 2) if K.ndim > 2 else Q @ K.T, "transpose(1, 2)"),
        (lambda Q, K: Q @ K, "without transposing K"),
        (lambda Q, K: Q.transpose(-2, -1) @ K, "transposed Q instead of K"),
    ],
)
def test_typical_mistakes_get_their_own_hint(mistake, hint_words):
    result = check_attention_scores(mistake)
    assert result.status is Status.FAILED
    assert hint_words in result.hint, result.message


def test_dot_T_hint_points_to_the_fix():
    result = check_attention_scores(dot_T)
    assert "last two dimensions of K" in result.hint, result.message
    assert "transpose(-2, -1)" not in result.hint and ".mT" not in result.hint, result.message  # no answer
    assert result.summary.startswith("On a batch (B, n, d_k)"), result.message


@pytest.mark.parametrize(
    ("mistake", "words"),
    [
        (lambda Q, K: Q @ K.t(), "right for 2-D inputs but not for 3-D"),
        (lambda Q, K: Q @ K.permute(0, 2, 1), "right for 3-D inputs but not for 4-D"),
        (lambda Q, K: torch.bmm(Q, K.transpose(1, 2)), "right for 3-D inputs but not for 4-D"),
        (lambda Q, K: torch.einsum("bqd,bkd->bqk", Q, K), "einsum with '...' standing for them"),
        (lambda Q, K: torch.bmm(Q, K.transpose(-2, -1)) if Q.ndim == 3 else torch.einsum("bhqd,bhkd->bhqk", Q, K),
         "handles 3-D batches but not 2-D input"),
    ],
)
def test_fixed_number_of_dimensions_is_named(mistake, words):
    result = check_attention_scores(mistake)
    assert result.status is Status.FAILED
    assert words in result.hint, result.message
    assert "from the end" in result.hint and "transpose(-2, -1)" not in result.hint


def test_a_wrong_single_query_case_is_not_blamed_on_dimensions():
    def squeezes(Q, K):
        return Q.squeeze() @ K.transpose(-2, -1)

    result = check_attention_scores(squeezes)
    assert result.status is Status.FAILED
    assert "single query" in result.summary and "right for" not in result.hint, result.message


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        (lambda Q, K: (_ for _ in ()).throw(ValueError("boom")), "raised ValueError: boom"),
        (lambda Q, K: [[1.0, 2.0]], "is of type list"),
        (lambda Q, K: (Q @ K.transpose(-2, -1)).numpy(), "NumPy array"),
        (lambda Q, K: torch.full((*Q.shape[:-1], K.shape[-2]), float("nan")), "contains NaN"),
        (lambda Q, K: K.transpose_(-2, -1) and Q @ K, "in place"),
        ("not a function", "Expected a function"),
    ],
)
def test_broken_candidates_fail_cleanly(candidate, words):
    result = check_attention_scores(candidate)
    assert result.status is Status.FAILED
    assert words in result.message


def test_the_check_leaves_the_global_random_stream_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    check_attention_scores(with_transpose)
    assert torch.equal(torch.rand(3), expected)


def test_no_mistake_hint_prints_the_answer():
    from helpers.checks.nb02_scores import MISTAKES

    for mistake in MISTAKES:
        assert "Q @ K.transpose(-2, -1)" not in mistake.hint and "Q @ K.mT" not in mistake.hint, mistake.hint
        assert "...qd,...kd->...qk" not in mistake.hint, mistake.hint


def test_cases_are_generated_from_a_seed_with_sizes_that_tell_mistakes_apart():
    from helpers.checks.nb02_scores import check_attention_scores as check

    first, second = list(check.spec.cases()), list(check.spec.cases())
    assert [c.name for c in first] == [c.name for c in second]
    assert all(torch.equal(a, b) for c, d in zip(first, second) for a, b in zip(c.args, d.args))
    for case in first:
        Q, K = case.args
        if Q.shape[-2] != K.shape[-2]:  # a cross-attention case: every size differs from every other
            sizes = [*Q.shape, K.shape[-2]]
            assert len(set(sizes)) == len(sizes), case.name


def test_no_hint_of_a_contract_entry_prints_solution_code():
    from helpers.checks.nb02_scores import CONTRACT, SOLUTION_FRAGMENTS

    for term in CONTRACT:
        hint = check_attention_scores(term.wrong).hint
        leaked = [p for p in SOLUTION_FRAGMENTS["attention_scores"] if p in hint]
        assert not leaked, (term.allows, hint)
