"""Checks of notebook 14: correct variants pass, stubs are ⏳, each typical mistake gets its own hint."""

from __future__ import annotations

import pytest
import torch

from helpers.checks import Status, check_ablate_head, check_induction_score, check_previous_token_score
from helpers.checks.nb14_reading import ABLATION_MISTAKES, INDUCTION_MISTAKES, PREVIOUS_MISTAKES
from helpers.interpret import ablate_head, induction_score, previous_token_score

CHECKS = [check_previous_token_score, check_induction_score, check_ablate_head]


def stub(*args, **kwargs):
    # YOUR CODE HERE
    raise NotImplementedError()


@pytest.mark.parametrize("check", CHECKS)
def test_stub_is_not_attempted(check):
    result = check(stub)
    assert result.status is Status.NOT_ATTEMPTED and not result.passed


@pytest.mark.parametrize("check", CHECKS)
def test_broken_candidates_fail_cleanly(check):
    assert check(lambda *args: 1 / 0).status is Status.FAILED
    assert check(lambda *args: "text").status is Status.FAILED
    assert "without calling it" in check(42).hint


MISTAKE_TABLES = [(check_previous_token_score, PREVIOUS_MISTAKES), (check_induction_score, INDUCTION_MISTAKES),
                  (check_ablate_head, ABLATION_MISTAKES)]


@pytest.mark.parametrize(
    ("check", "mistake"),
    [(check, m) for check, table in MISTAKE_TABLES for m in table],
    ids=[f"{check.__name__}: {m.hint.split(':')[0][:40]}" for check, table in MISTAKE_TABLES for m in table],
)
def test_each_mistake_gets_its_own_hint(check, mistake):
    result = check(mistake.wrong)
    assert result.status is Status.FAILED
    assert result.hint == mistake.hint, result.message


def test_the_three_named_mistakes_of_the_issue():
    """Off by one in the induction offset, the diagonal counted, the ablation after W_O: each named in words."""
    assert "off by one" in INDUCTION_MISTAKES[0].hint
    assert "diagonal counted" in PREVIOUS_MISTAKES[0].hint
    assert "after the output projection" in ABLATION_MISTAKES[0].hint


# ---- correct variants, written differently --------------------------------------------------------------------


def previous_with_a_loop(weights):
    n = weights.shape[-1]
    return torch.stack([weights[..., i, i - 1] for i in range(1, n)], dim=-1).mean(dim=-1)


def previous_with_a_mask(weights):
    n = weights.shape[-1]
    below = torch.eye(n, dtype=torch.bool).roll(-1, dims=1).tril(-1)  # (i, i - 1) for i ≥ 1
    return (weights * below).sum(dim=(-2, -1)) / (n - 1)


def induction_with_a_loop(weights, segment_length):
    L = segment_length
    return sum(weights[..., p, p - L + 1] for p in range(L + 1, 2 * L + 1)) / L


def induction_with_einsum(weights, segment_length):
    L, n = segment_length, weights.shape[-1]
    target = torch.zeros(n, n, dtype=weights.dtype)
    for p in range(L + 1, n):
        target[p, p - L + 1] = 1 / L
    return torch.einsum("...qk,qk->...", weights, target)


def ablate_in_place(attention, head):
    d = attention.d_model // attention.num_heads

    def hook(module, args):
        args[0][..., head * d : (head + 1) * d] = 0  # the merged heads are a fresh tensor: changing it is safe

    return attention.W_o.register_forward_pre_hook(hook)


def ablate_by_zeroing_its_values(attention, head):
    d = attention.d_model // attention.num_heads

    def hook(module, args, output):
        output = output.clone()
        output[..., head * d : (head + 1) * d] = 0  # V of head k is 0, so its weighted sum is 0 too
        return output

    return attention.W_v.register_forward_hook(hook)


@pytest.mark.parametrize(("check", "candidate"), [
    (check_previous_token_score, previous_token_score), (check_previous_token_score, previous_with_a_loop),
    (check_previous_token_score, previous_with_a_mask), (check_induction_score, induction_score),
    (check_induction_score, induction_with_a_loop), (check_induction_score, induction_with_einsum),
    (check_ablate_head, ablate_head), (check_ablate_head, ablate_in_place),
    (check_ablate_head, ablate_by_zeroing_its_values)])
def test_correct_variants_pass(check, candidate):
    result = check(candidate)
    assert result.passed, result.message


def test_the_reference_ablation_zeroes_exactly_one_head():
    """Against torch: the ablated output equals W_O applied to the heads with head k's columns zeroed by hand."""
    from helpers.attention import MultiHeadAttention, causal_mask

    torch.manual_seed(0)
    attention = MultiHeadAttention(16, 4).double().eval()
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    torch_mha = torch.nn.MultiheadAttention(16, 4, batch_first=True).double().eval()
    with torch.no_grad():
        torch_mha.in_proj_weight.copy_(torch.cat([attention.W_q.weight, attention.W_k.weight, attention.W_v.weight]))
        torch_mha.in_proj_bias.copy_(torch.cat([attention.W_q.bias, attention.W_k.bias, attention.W_v.bias]))
        weights = torch.nn.functional.softmax(
            (attention.W_q(x).view(2, 6, 4, 4).transpose(1, 2) @ attention.W_k(x).view(2, 6, 4, 4).transpose(1, 2).mT)
            / 2 + torch.zeros(6, 6).masked_fill(~causal_mask(6), float("-inf")), dim=-1)
        heads = (weights @ attention.W_v(x).view(2, 6, 4, 4).transpose(1, 2)).transpose(1, 2).reshape(2, 6, 16)
        heads[..., 8:12] = 0
        expected = attention.W_o(heads)
        handle = ablate_head(attention, 2)
        got = attention(x, x, x, causal_mask(6))[0]
        handle.remove()
        _, torch_weights = torch_mha(x, x, x, attn_mask=~causal_mask(6), average_attn_weights=False)
    assert torch.allclose(got, expected, atol=1e-12)
    assert torch.allclose(weights, torch_weights, atol=1e-12)


def test_scores_reject_bad_shapes():
    with pytest.raises(ValueError, match="expected attention maps"):
        previous_token_score(torch.ones(3, 4))
    with pytest.raises(ValueError, match="2 · segment_length \\+ 1"):
        induction_score(torch.ones(2, 9, 9), 3)
