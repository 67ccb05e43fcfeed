"""The causal-mask check: any correct construction passes; the stub is ⏳; each typical mistake gets its own hint."""

import pytest
import torch

from helpers.checks import Status, check_causal_mask


def with_tril(n):
    return torch.tril(torch.ones(n, n, dtype=torch.bool))


def with_triu_transposed(n):
    return torch.ones(n, n, dtype=torch.bool).triu().T


def with_not_strict_upper(n):
    return ~torch.ones(n, n, dtype=torch.bool).triu(diagonal=1)


def with_arange(n):
    i = torch.arange(n)
    return i[:, None] >= i[None, :]


def with_loops(n):
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(i + 1):
            mask[i, j] = True
    return mask


def float_then_bool(n):
    return torch.tril(torch.ones(n, n)).bool()


@pytest.mark.parametrize(
    "candidate", [with_tril, with_triu_transposed, with_not_strict_upper, with_arange, with_loops, float_then_bool]
)
def test_correct_answers_pass(candidate):
    result = check_causal_mask(candidate)
    assert result.passed, result.message


def test_stub_is_not_attempted():
    def causal_mask(n):
        # YOUR CODE HERE
        raise NotImplementedError()

    assert check_causal_mask(causal_mask).status is Status.NOT_ATTEMPTED


@pytest.mark.parametrize(
    ("mistake", "hint_words"),
    [
        (lambda n: torch.ones(n, n, dtype=torch.bool).triu(), "upper triangle"),
        (lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1), "left out the diagonal"),
        (lambda n: torch.ones(n, n).tril(), "return dtype torch.bool"),
        (lambda n: torch.ones(n, n, dtype=torch.long).tril(), "return dtype torch.bool"),
        (lambda n: torch.ones(n, n).triu(), "masks are boolean"),
        (lambda n: torch.ones(n, n, dtype=torch.bool).triu(1), "True = may attend"),
        (lambda n: torch.ones(n, n, dtype=torch.bool), "every position"),
    ],
)
def test_typical_mistakes_get_their_own_hint(mistake, hint_words):
    result = check_causal_mask(mistake)
    assert result.status is Status.FAILED
    assert hint_words in result.hint, result.message


def test_inverted_mask_names_the_modules_that_read_masks_that_way():
    """True = blocked is how nn.MultiheadAttention and nn.Transformer* read a boolean mask, not "older code"."""
    result = check_causal_mask(lambda n: torch.ones(n, n, dtype=torch.bool).triu(1))
    assert "inverted" in result.hint and "nn.MultiheadAttention" in result.hint, result.message
    assert "older" not in result.hint


def test_a_squeezed_mask_fails_at_n_1_with_the_shape_named():
    result = check_causal_mask(lambda n: torch.ones(n, n, dtype=torch.bool).tril().squeeze())
    assert result.status is Status.FAILED and "n=1" in result.summary and "n = 1 included" in result.hint, \
        result.message


def test_sizes_come_from_a_seed_and_include_odd_even_and_one():
    names = [case.name for case in check_causal_mask.spec.cases()]
    assert any("(odd)" in n for n in names) and any("(even)" in n for n in names) and "n=1 (a single token)" in names


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        (lambda n: (_ for _ in ()).throw(ValueError("boom")), "raised ValueError: boom"),
        (lambda n: [[True]], "is of type list"),
        (lambda n: torch.ones(n, n, dtype=torch.bool).tril().numpy(), "NumPy array"),
        (lambda n: torch.ones(1, n, n, dtype=torch.bool).tril(), "has shape"),
    ],
)
def test_broken_candidates_fail_cleanly(candidate, words):
    result = check_causal_mask(candidate)
    assert result.status is Status.FAILED
    assert words in result.message
