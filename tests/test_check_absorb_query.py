"""check_absorb_query (notebook 12): correct variants pass, the stub is ⏳, each mistake gets its own hint."""

from __future__ import annotations

import pytest
import torch

from helpers.checks import Status, check_absorb_query
from helpers.checks.nb12_modern import ABSORB_CONTRACT, ONE_HEAD, TRANSPOSED
from helpers.latent import absorb_query


def stub(*args, **kwargs):
    raise NotImplementedError()


def absorb_with_einsum(q_nope, w_uk):
    return torch.einsum("...hnd,hdc->...hnc", q_nope, w_uk)


def absorb_with_a_loop(q_nope, w_uk):
    return torch.stack([q_nope[..., i, :, :] @ w_uk[i] for i in range(w_uk.shape[0])], dim=-3)


def absorb_via_the_keys(q_nope, w_uk):
    """(W_UK_h q_hᵀ)ᵀ: the transpose of the product written out, in float64, cast back."""
    return (w_uk.double().mT @ q_nope.double().mT).mT.to(q_nope.dtype)


@pytest.mark.parametrize("candidate", [absorb_query, absorb_with_einsum, absorb_with_a_loop, absorb_via_the_keys])
def test_correct_variants_pass(candidate):
    result = check_absorb_query(candidate)
    assert result.passed, result.message


def test_the_stub_is_not_attempted_and_broken_candidates_fail():
    assert check_absorb_query(stub).status is Status.NOT_ATTEMPTED
    assert check_absorb_query(lambda q, w: q).status is Status.FAILED
    assert check_absorb_query(lambda q, w: None).status is Status.FAILED


@pytest.mark.parametrize(("wrong", "hint"), [
    (lambda q, w: q @ w.mT, TRANSPOSED),
    (lambda q, w: q @ w[0], ONE_HEAD),
])
def test_each_mistake_gets_its_hint(wrong, hint):
    result = check_absorb_query(wrong)
    assert result.status is Status.FAILED and result.hint == hint, result.message


@pytest.mark.parametrize("term", ABSORB_CONTRACT, ids=[t.allows for t in ABSORB_CONTRACT])
def test_wrong_only_on_one_entry_is_named(term):
    result = check_absorb_query(term.wrong)
    assert result.status is Status.FAILED and term.named in result.hint, result.message


def test_the_absorbed_query_gives_the_scores():
    g = torch.Generator().manual_seed(0)
    q, w, latent = (torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64),
                    torch.randn(3, 5, 7, generator=g, dtype=torch.float64),
                    torch.randn(2, 1, 6, 7, generator=g, dtype=torch.float64))
    keys = latent @ w.mT  # (2, 3, 6, 5): every head's k_C
    torch.testing.assert_close(absorb_query(q, w) @ latent.mT, q @ keys.mT)
