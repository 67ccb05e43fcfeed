"""Check of notebook 04's `padding_mask(tokens, pad_id)`: correct variants pass, each mistake is named."""

from __future__ import annotations

import pytest
import torch

from helpers.attention import padding_mask
from helpers.checks import Status
from helpers.checks.nb04_softmax import PADDING_MISTAKES, check_padding_mask


def with_ne_and_indexing(tokens, pad_id):
    return tokens.ne(pad_id)[:, None, :]


def with_a_loop(tokens, pad_id):
    rows = [[int(t) != pad_id for t in sentence] for sentence in tokens]
    return torch.tensor(rows, dtype=torch.bool).unsqueeze(1)


def with_logical_not(tokens, pad_id):
    return torch.logical_not(tokens.eq(pad_id)).view(tokens.shape[0], 1, tokens.shape[1])


@pytest.mark.parametrize("candidate", [padding_mask, with_ne_and_indexing, with_a_loop, with_logical_not])
def test_correct_variants_pass(candidate):
    result = check_padding_mask(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize("mistake", PADDING_MISTAKES, ids=lambda m: m.hint[:40])
def test_each_listed_mistake_gets_exactly_its_hint(mistake):
    result = check_padding_mask(mistake.wrong)
    assert result.status is Status.FAILED and result.hint == mistake.hint, result.message


@pytest.mark.parametrize(("candidate", "words"), [
    (lambda tokens, pad_id: (tokens == pad_id)[:, None], "inverted"),
    (lambda tokens, pad_id: tokens.ne(pad_id), "shape (B, n)"),
    (lambda tokens, pad_id: tokens.ne(pad_id)[..., None], "(B, n, 1)"),
    (lambda tokens, pad_id: (tokens > 0).unsqueeze(1), "compared the tokens with 0"),
    (lambda tokens, pad_id: (tokens != pad_id).unsqueeze(1).float(), "boolean"),
    (lambda tokens, pad_id: (tokens != pad_id).unsqueeze(1).int(), "boolean"),
])
def test_mistakes_written_independently_are_named(candidate, words):
    result = check_padding_mask(candidate)
    assert result.status is Status.FAILED and words in result.hint, result.message


def right_padding_only(tokens, pad_id):
    """Built from each row's length: right only when every row is padded at its end."""
    lengths = (tokens != pad_id).sum(dim=-1)
    return (torch.arange(tokens.shape[-1]) < lengths[:, None])[:, None, :]


def left_padding_only(tokens, pad_id):
    lengths = (tokens != pad_id).sum(dim=-1)
    return (torch.arange(tokens.shape[-1]) >= tokens.shape[-1] - lengths[:, None])[:, None, :]


@pytest.mark.parametrize(("candidate", "words"), [
    (right_padding_only, "always came last"),
    (left_padding_only, "always came first"),
])
def test_padding_assumed_at_one_end_is_named(candidate, words):
    """Padding sits at the end of some rows and at the start of others: a mask from lengths fails."""
    result = check_padding_mask(candidate)
    assert result.status is Status.FAILED and words in result.hint, result.message


def test_the_cases_vary_the_pad_id_and_the_side_of_the_padding():
    cases = list(check_padding_mask.spec.cases())
    assert len({case.args[1] for case in cases}) >= 3
    assert any("padding at the start" in case.name for case in cases)
    assert any("padding at the end" in case.name for case in cases)


def test_stub_and_broken_candidates():
    def stub(tokens, pad_id):
        raise NotImplementedError()

    def in_place(tokens, pad_id):
        tokens[tokens == pad_id] = -1
        return (tokens != -1).unsqueeze(1)

    assert check_padding_mask(stub).status is Status.NOT_ATTEMPTED
    assert check_padding_mask(lambda *a: 1 / 0).status is Status.FAILED
    assert check_padding_mask(lambda *a: "nonsense").status is Status.FAILED
    result = check_padding_mask(in_place)
    assert result.status is Status.FAILED and "in place" in result.summary
