"""The softmax check: stable and differently written softmaxes pass; the stub is ⏳; each typical mistake
gets its own hint; broken candidates fail cleanly."""

import pytest
import torch

from helpers.checks import Status, check_softmax


def with_max_subtraction(x, dim=-1):
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)


def with_max_values(x, dim=-1):
    shifted = x - x.max(dim=dim, keepdim=True).values
    return shifted.exp() / shifted.exp().sum(dim=dim, keepdim=True)


def with_torch(x, dim=-1):
    return torch.softmax(x, dim=dim)


def with_logsumexp(x, dim=-1):
    return torch.exp(x - torch.logsumexp(x, dim=dim, keepdim=True))


def in_float64(x, dim=-1):
    y = x.double()
    e = torch.exp(y - y.amax(dim=dim, keepdim=True))
    return (e / e.sum(dim=dim, keepdim=True)).to(x.dtype)


def with_a_loop_over_rows(x, dim=-1):
    moved = x.movedim(dim, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    out = []
    for row in rows:
        m = max(float(value) for value in row)
        exps = [torch.exp(value - m) for value in row]
        total = sum(exps)
        out.append(torch.stack([e / total for e in exps]))
    return torch.stack(out).reshape(moved.shape).movedim(-1, dim)


@pytest.mark.parametrize(
    "candidate", [with_max_subtraction, with_max_values, with_torch, with_logsumexp, in_float64, with_a_loop_over_rows]
)
def test_correct_answers_pass(candidate):
    result = check_softmax(candidate)
    assert result.passed, result.message


def test_stub_is_not_attempted():
    def softmax(x, dim=-1):
        # YOUR CODE HERE
        raise NotImplementedError()

    assert check_softmax(softmax).status is Status.NOT_ATTEMPTED


def naive(x, dim=-1):
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def naive_in_float64(x, dim=-1):
    e = torch.exp(x.double())
    return e / e.sum(dim=dim, keepdim=True)


def global_max(x, dim=-1):
    e = torch.exp(x - x.max())
    return e / e.sum(dim=dim, keepdim=True)


def in_place(x, dim=-1):
    x -= x.amax(dim=dim, keepdim=True)
    x.exp_()
    return x / x.sum(dim=dim, keepdim=True)


def max_without_values(x, dim=-1):
    e = torch.exp(x - x.max(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)


def without_keepdim(x, dim=-1):
    e = torch.exp(x - x.amax(dim=dim))
    return e / e.sum(dim=dim)


def max_along_first_dim(x, dim=-1):
    e = torch.exp(x - x.amax(dim=0, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)


@pytest.mark.parametrize(
    ("mistake", "hint_words"),
    [
        (naive, "overflows"),
        (naive_in_float64, "overflows"),
        (global_max, "maximum of the whole tensor"),
        (lambda x, dim=-1: torch.exp(x), "did not normalise"),
        (lambda x, dim=-1: torch.exp(x - x.amax(dim=dim, keepdim=True)), "did not normalise"),
        (lambda x, dim=-1: torch.exp(x) / torch.exp(x).sum(), "sum of the whole tensor"),
        (lambda x, dim=-1: torch.softmax(x, dim=0), "along the first dimension"),
        (lambda x, dim=-1: torch.softmax(x, dim=-2), "wrong dimension"),
        (lambda x, dim=-1: torch.softmax(x, dim=-1), "ignored the `dim` argument"),
        (in_place, "must not change its input"),
        (max_without_values, "returns a pair"),
        (without_keepdim, "keepdim=True"),
        (max_along_first_dim, "another dimension"),
    ],
)
def test_typical_mistakes_get_their_own_hint(mistake, hint_words):
    result = check_softmax(mistake)
    assert result.status is Status.FAILED
    assert hint_words in result.hint, result.message


def test_naive_fails_once_a_score_passes_88_7_in_float32():
    """exp overflows float32 past about 88.7: the naive softmax fails there, long before magnitude 1e4."""
    result = check_softmax(naive)
    assert "past 88.7" in result.summary and "88.7" in result.hint, result.message


def test_naive_in_float64_fails_only_at_magnitude_1e4():
    result = check_softmax(naive_in_float64)
    assert "magnitude 1e4" in result.summary and "709.8" in result.hint, result.message


@pytest.mark.parametrize(("mistake", "hint_words"), [
    (lambda x, dim=-1: torch.softmax(x.float(), dim=dim).to(x.dtype), "float64"),
    (lambda x, dim=-1: torch.softmax(x - x.mean(dim=dim, keepdim=True), dim=dim), "mean"),
    (lambda x, dim=0: torch.softmax(x, dim=dim), "default for `dim`"),
])
def test_mistakes_of_the_contract_written_independently(mistake, hint_words):
    """Computing in float32, shifting by the mean, another default dim: each fails where the contract says."""
    result = check_softmax(mistake)
    assert result.status is Status.FAILED and hint_words in result.hint, result.message


def test_global_max_passes_where_the_rows_are_at_similar_levels():
    """Documented decision: the global maximum is correct on paper, so only the case with rows ~1e4 apart fails."""
    result = check_softmax(global_max)
    assert "rows sit near +1e4, 0 and -1e4" in result.summary, result.message


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        (lambda x, dim=-1: (_ for _ in ()).throw(ValueError("boom")), "raised ValueError: boom"),
        (lambda x, dim=-1: [1.0, 2.0], "is of type list"),
        (lambda x, dim=-1: torch.full_like(x, float("nan")), "contains NaN"),
        (lambda x, dim=-1: torch.softmax(x, dim=dim).numpy(), "NumPy array"),
        (lambda x, dim=-1: torch.softmax(x, dim=dim)[..., :1], "has shape"),
        (lambda x, dim=-1: (torch.softmax(x, dim=dim) > 0.5).long(), "floating-point"),
    ],
)
def test_broken_candidates_fail_cleanly(candidate, words):
    result = check_softmax(candidate)
    assert result.status is Status.FAILED
    assert words in result.message
