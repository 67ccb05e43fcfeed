"""The attention check: differently written correct answers pass; the stub is ⏳; each typical mistake gets
its own hint; broken candidates fail cleanly."""

import math

import pytest
import torch
import torch.nn.functional as F

from helpers.attention import scaled_dot_product_attention as reference
from helpers.checks import Status, check_scaled_dot_product_attention

NEG_INF = float("-inf")


def with_masked_fill(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, NEG_INF)
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1))  # fully masked rows: NaN -> 0
    return weights @ v, weights


def with_einsum_and_where(q, k, v, mask=None):
    scores = torch.einsum("...qd,...kd->...qk", q, k) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = torch.where(mask, scores, NEG_INF)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = torch.where(mask.any(dim=-1, keepdim=True), weights, 0.0)
    return torch.einsum("...qk,...kd->...qd", weights, v), weights


def with_loops_in_float64(q, k, v, mask=None):
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    n_q, n_k, d_v = q.shape[-2], k.shape[-2], v.shape[-1]
    full_mask = torch.ones(n_q, n_k, dtype=torch.bool) if mask is None else mask
    full_mask = full_mask.broadcast_to(*batch, n_q, n_k).reshape(-1, n_q, n_k)
    qs = q.broadcast_to(*batch, *q.shape[-2:]).reshape(-1, n_q, q.shape[-1]).double()
    ks = k.broadcast_to(*batch, *k.shape[-2:]).reshape(-1, n_k, k.shape[-1]).double()
    vs = v.broadcast_to(*batch, *v.shape[-2:]).reshape(-1, n_k, d_v).double()
    outputs, all_weights = [], []
    for b in range(qs.shape[0]):
        out = torch.zeros(n_q, d_v, dtype=torch.float64)
        w = torch.zeros(n_q, n_k, dtype=torch.float64)
        for i in range(n_q):
            allowed = [j for j in range(n_k) if full_mask[b, i, j]]
            if not allowed:
                continue
            scores = {j: float(qs[b, i] @ ks[b, j]) / math.sqrt(q.shape[-1]) for j in allowed}
            top = max(scores.values())
            total = sum(math.exp(s - top) for s in scores.values())
            for j in allowed:
                w[i, j] = math.exp(scores[j] - top) / total
                out[i] += w[i, j] * vs[b, j]
        outputs.append(out)
        all_weights.append(w)
    output = torch.stack(outputs).reshape(*batch, n_q, d_v).to(q.dtype)
    return output, torch.stack(all_weights).reshape(*batch, n_q, n_k).to(q.dtype)


def in_float64(q, k, v, mask=None):
    output, weights = with_masked_fill(q.double(), k.double(), v.double(), mask)
    return output.to(q.dtype), weights.to(q.dtype)


def with_large_negative_fill(q, k, v, mask=None):
    """Documented decision: a large finite negative fill is fine, once fully masked rows are zeroed."""
    scores = q @ k.mT / math.sqrt(k.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), -1e9)
    weights = scores.softmax(dim=-1)
    if mask is not None:
        weights = weights * mask.any(dim=-1, keepdim=True)
    return weights @ v, weights


def zero_then_renormalise(q, k, v, mask=None):
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    if mask is not None:
        weights = weights * mask
        weights = weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-30)
    return weights @ v, weights


def output_from_torch(q, k, v, mask=None):
    _, weights = with_masked_fill(q, k, v, mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask), weights


def with_an_additive_mask(q, k, v, mask=None):
    """The mask turned into a float bias (0 or -inf) added to the scores; empty rows found after the softmax."""
    scores = q @ k.mT / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores + torch.zeros(mask.shape, dtype=q.dtype).masked_fill(~mask, NEG_INF)
    weights = scores.softmax(dim=-1)
    weights = torch.where(torch.isnan(weights), torch.zeros_like(weights), weights)
    return weights @ v, weights


@pytest.mark.parametrize(
    "candidate",
    [with_masked_fill, with_einsum_and_where, with_an_additive_mask, with_loops_in_float64, in_float64,
     with_large_negative_fill, zero_then_renormalise, output_from_torch, reference],
)
def test_correct_answers_pass(candidate):
    result = check_scaled_dot_product_attention(candidate)
    assert result.passed, result.message


def test_stub_is_not_attempted():
    def scaled_dot_product_attention(q, k, v, mask=None):
        # YOUR CODE HERE
        raise NotImplementedError()

    assert check_scaled_dot_product_attention(scaled_dot_product_attention).status is Status.NOT_ATTEMPTED


def attention(q, k, v, mask=None, *, scale=None, dim=-1, masking="before", fill=NEG_INF, values=None,
              fully_masked="zero", transpose=lambda t: t.transpose(-2, -1)):
    """A configurable attention for writing mistakes: each keyword breaks one thing."""
    scores = q @ transpose(k) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if mask is not None and masking == "before":
        scores = scores.masked_fill(~mask, fill)
    elif mask is not None and masking == "inverted":
        scores = scores.masked_fill(mask, fill)
    elif mask is not None and masking == "zero scores":
        scores = scores.masked_fill(~mask, 0.0)
    weights = torch.softmax(scores, dim=dim)
    if mask is not None and masking == "after":
        weights = weights * mask
    if fully_masked == "zero":
        weights = torch.nan_to_num(weights)
    return weights @ (v if values is None else values(q, k, v)), weights


@pytest.mark.parametrize(
    ("mistake", "hint_words"),
    [
        (lambda q, k, v, mask=None: attention(q, k, v, mask, scale=1.0), "did not scale"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, scale=1 / q.shape[-1]), "divided the scores by d_k"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, scale=1 / math.sqrt(v.shape[-1])), "√d_v"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, scale=math.sqrt(q.shape[-1])), "multiplied the scores"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, dim=-2), "wrong axis, dim=-2"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, dim=1), "wrong axis, dim=1"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, dim=0), "wrong axis, dim=0"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, masking="inverted"), "mask is inverted"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, masking="inverted", fully_masked="nan"),
         "mask is inverted"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, masking="after"), "after the softmax"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, masking="ignored"), "ignored the mask"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, masking="zero scores"), "exp(0) = 1"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, values=lambda q, k, v: k), "multiplied the weights by K"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, transpose=lambda t: t.T), "not on a batch"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, transpose=lambda t: t.t()), "not on a batch"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, fully_masked="nan"), "nothing to attend to"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask, fill=-1e9, fully_masked="nan"), "large finite number"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask)[0], "returned only the output"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask)[1], "returned only the weights"),
        (lambda q, k, v, mask=None: attention(q, k, v, mask)[::-1], "swapped"),
        (lambda q, k, v, mask=None: (*attention(q, k, v, mask), q), "exactly two"),
    ],
)
def test_typical_mistakes_get_their_own_hint(mistake, hint_words):
    result = check_scaled_dot_product_attention(mistake)
    assert result.status is Status.FAILED
    assert hint_words in result.hint, result.message


def test_forgotten_softmax_is_named():
    def no_softmax(q, k, v, mask=None):
        weights = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        return weights @ v, weights

    result = check_scaled_dot_product_attention(no_softmax)
    assert "forgot the softmax" in result.hint, result.message


def test_boolean_indexing_with_a_broadcast_mask_gets_the_masked_fill_hint():
    def boolean_index(q, k, v, mask=None):
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores[~mask] = NEG_INF
        weights = torch.nan_to_num(torch.softmax(scores, dim=-1))
        return weights @ v, weights

    result = check_scaled_dot_product_attention(boolean_index)
    assert result.status is Status.FAILED
    assert "masked_fill" in result.hint, result.message


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        (lambda q, k, v, mask=None: (_ for _ in ()).throw(ValueError("boom")), "raised ValueError: boom"),
        (lambda q, k, v, mask=None: "attention", "returned str"),
        (lambda q, k, v, mask=None: ([1.0], [2.0]), "is of type list"),
        (lambda q, k, v, mask=None: tuple(torch.full_like(t, float("nan")) for t in reference(q, k, v, mask)),
         "contains NaN"),
    ],
)
def test_broken_candidates_fail_cleanly(candidate, words):
    result = check_scaled_dot_product_attention(candidate)
    assert result.status is Status.FAILED
    assert words in result.message


def test_a_stub_softmax_inside_is_named():
    """Attention that calls the learner's own softmax, still the stub: the ❌ names `softmax`, not ⏳."""
    def softmax(x, dim=-1):
        raise NotImplementedError()

    def scaled_dot_product_attention(q, k, v, mask=None):
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask, NEG_INF)
        weights = torch.nan_to_num(softmax(scores, dim=-1))
        return weights @ v, weights

    result = check_scaled_dot_product_attention(scaled_dot_product_attention)
    assert result.status is Status.FAILED, result.message
    assert "calls your `softmax`, which is still the stub" in result.summary and "`softmax` exercise" in result.hint


_LEFT_OUT = object()


def crashes_on_explicit_none(q, k, v, mask=_LEFT_OUT):
    """Right when the mask is left out or given; `mask=None` passed explicitly crashes (None has no .bool)."""
    return with_masked_fill(q, k, v, None if mask is _LEFT_OUT else mask.bool())


def right_padding_from_lengths(q, k, v, mask=None):
    """Rebuilds a (..., 1, n_k) padding mask from its count of True entries: right for padding at the end only."""
    if mask is not None and mask.shape[-2] == 1:
        mask = torch.arange(mask.shape[-1]) < mask.sum(dim=-1, keepdim=True)
    return with_masked_fill(q, k, v, mask)


@pytest.mark.parametrize(("mistake", "hint_words"), [
    (lambda q, k, v, mask: with_masked_fill(q, k, v, mask), "the mask is optional"),
    (crashes_on_explicit_none, "the mask is optional"),
    (lambda q, k, v, mask=None: tuple(t.to(q.dtype) for t in with_masked_fill(q.float(), k.float(), v.float(), mask)),
     "float64"),
    (right_padding_from_lengths, "count of True entries"),
])
def test_contract_mistakes_written_independently(mistake, hint_words):
    """A mask required, a crash on mask=None, float32 arithmetic, padding assumed at the end: each is named."""
    result = check_scaled_dot_product_attention(mistake)
    assert result.status is Status.FAILED and hint_words in result.hint, result.message


def test_every_mask_layout_the_statement_allows_is_a_case():
    names = " ".join(case.name for case in check_scaled_dot_product_attention.spec.cases())
    for layout in ("(n_q, n_k)", "(B, 1, n_k)", "(B, 1, 1, n_k)", "(B, n_q, n_k)", "no mask", "mask=None"):
        assert layout in names, layout
