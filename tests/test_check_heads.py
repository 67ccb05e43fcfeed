"""Checks of notebook 05: correct variants pass, stubs are ⏳, each typical mistake gets its own hint."""

from __future__ import annotations

import math

import pytest
import torch

from helpers.attention import merge_heads, scaled_dot_product_attention, split_heads
from helpers.checks import Status
from helpers.checks.nb05_multi_head import check_merge_heads, check_multi_head_attention, check_split_heads


def stub(*args, **kwargs):
    raise NotImplementedError()


# ---- split_heads -------------------------------------------------------------------------------------

def split_with_unflatten(x, num_heads):
    return x.unflatten(-1, (num_heads, -1)).permute(0, 2, 1, 3)


def split_with_loop(x, num_heads):
    d_k = x.shape[-1] // num_heads
    return torch.stack([x[..., h * d_k:(h + 1) * d_k] for h in range(num_heads)], dim=1)


@pytest.mark.parametrize("candidate", [split_heads, split_with_unflatten, split_with_loop])
def test_split_heads_correct_variants_pass(candidate):
    assert check_split_heads(candidate).passed


@pytest.mark.parametrize(
    ("mistake", "words"),
    [
        (lambda x, h: x.view(x.shape[0], h, x.shape[1], -1), "reshaped straight to (B, h, n, d_k)"),
        (lambda x, h: x.view(x.shape[0], x.shape[1], h, -1), "must come before the tokens"),
        (lambda x, h: x.view(x.shape[0], x.shape[1], -1, h).permute(0, 3, 1, 2), "every h-th column"),
        (lambda x, h: x.view(x.shape[0], x.shape[1], -1, h).transpose(1, 2), "heads of size h"),
    ],
)
def test_split_heads_mistakes_are_named(mistake, words):
    result = check_split_heads(mistake)
    assert result.status is Status.FAILED and words in result.hint, result.message


# ---- merge_heads -------------------------------------------------------------------------------------

def merge_with_cat(x):
    return torch.cat(list(x.unbind(dim=1)), dim=-1)


def merge_with_contiguous_view(x):
    return x.transpose(1, 2).contiguous().view(x.shape[0], x.shape[2], -1)


@pytest.mark.parametrize("candidate", [merge_heads, merge_with_cat, merge_with_contiguous_view])
def test_merge_heads_correct_variants_pass(candidate):
    assert check_merge_heads(candidate).passed


@pytest.mark.parametrize(
    ("mistake", "words"),
    [
        (lambda x: x.transpose(1, 2).view(x.shape[0], x.shape[2], -1), ".contiguous()"),
        (lambda x: x.reshape(x.shape[0], x.shape[2], -1), "without moving the heads back"),
        (lambda x: x.permute(0, 2, 3, 1).reshape(x.shape[0], x.shape[2], -1), "(d_k, h) instead of (h, d_k)"),
        (lambda x: x.transpose(1, 2), "did not flatten"),
    ],
)
def test_merge_heads_mistakes_are_named(mistake, words):
    result = check_merge_heads(mistake)
    assert result.status is Status.FAILED and words in result.hint, result.message


# ---- multi_head_attention ----------------------------------------------------------------------------

def mha(query, key, value, W_q, W_k, W_v, W_o, num_heads, mask=None, *, wo=True, scale=None, use_mask=True,
        average=False):
    q, k, v = (split_heads(t, num_heads) for t in (query @ W_q, key @ W_k, value @ W_v))
    if mask is not None and mask.ndim == 3:
        mask = mask.unsqueeze(1)
    if scale is None:
        out, weights = scaled_dot_product_attention(q, k, v, mask if use_mask else None)
    else:
        weights = torch.softmax(q @ k.mT / math.sqrt(scale), dim=-1)
        out = weights @ v
    merged = merge_heads(out)
    return (merged @ W_o if wo else merged), (weights.mean(1) if average else weights)


def mha_einsum_float64(query, key, value, W_q, W_k, W_v, W_o, num_heads, mask=None):
    B, n_q, d = query.shape
    d_k = d // num_heads
    q = (query.double() @ W_q.double()).view(B, n_q, num_heads, d_k)
    k = (key.double() @ W_k.double()).view(B, key.shape[1], num_heads, d_k)
    v = (value.double() @ W_v.double()).view(B, key.shape[1], num_heads, d_k)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / d_k**0.5
    if mask is not None:
        scores = torch.where(mask.unsqueeze(1) if mask.ndim == 3 else mask, scores, -torch.inf)
    weights = scores.softmax(-1)
    out = torch.einsum("bhqk,bkhd->bqhd", weights, v).reshape(B, n_q, d)
    return out @ W_o.double(), weights


@pytest.mark.parametrize("candidate", [mha, mha_einsum_float64])
def test_mha_correct_variants_pass(candidate):
    result = check_multi_head_attention(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize(
    ("switches", "words"),
    [
        (dict(wo=False), "output projection W_O"),
        (dict(scale="d_model"), "√d_model"),
        (dict(use_mask=False), "mask was ignored"),
        (dict(average=True), "not their average"),
    ],
)
def test_mha_mistakes_are_named(switches, words):
    def wrong(query, key, value, W_q, W_k, W_v, W_o, num_heads, mask=None):
        kw = dict(switches)
        if kw.get("scale") == "d_model":
            kw["scale"] = query.shape[-1]
        return mha(query, key, value, W_q, W_k, W_v, W_o, num_heads, mask, **kw)

    result = check_multi_head_attention(wrong)
    assert result.status is Status.FAILED and words in result.hint, result.message


def test_mha_inverted_mask_and_view_without_transpose_are_named():
    def inverted(query, key, value, W_q, W_k, W_v, W_o, num_heads, mask=None):
        return mha(query, key, value, W_q, W_k, W_v, W_o, num_heads, None if mask is None else ~mask)

    def no_transpose(query, key, value, W_q, W_k, W_v, W_o, num_heads, mask=None):
        def split(t):
            return t.reshape(t.shape[0], num_heads, t.shape[1], -1)
        q, k, v = split(query @ W_q), split(key @ W_k), split(value @ W_v)
        if mask is not None and mask.ndim == 3:
            mask = mask.unsqueeze(1)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return merge_heads(out) @ W_o, weights

    assert "inverted" in check_multi_head_attention(inverted).hint
    assert "reshaped straight to (B, h, n, d_k)" in check_multi_head_attention(no_transpose).hint


def test_mha_returning_only_the_output_is_named():
    result = check_multi_head_attention(lambda *a, **k: mha(*a, **k)[0])
    assert result.status is Status.FAILED and "tuple (output, weights)" in result.message


@pytest.mark.parametrize("check", [check_split_heads, check_merge_heads, check_multi_head_attention])
def test_stubs_are_not_attempted_and_broken_candidates_fail_cleanly(check):
    assert check(stub).status is Status.NOT_ATTEMPTED
    assert check(lambda *a, **k: 1 / 0).status is Status.FAILED
    assert check(lambda *a, **k: "nonsense").status is Status.FAILED


# ---- issue 20: masks in every layout, an earlier stub named --------------------------------------------------

def test_mha_cases_cover_every_mask_layout():
    masks = [case.args[8] for case in check_multi_head_attention.spec.cases()]
    assert None in masks
    layouts = {tuple(1 if s == 1 else -1 for s in m.shape) for m in masks if m is not None}
    assert layouts == {(-1, -1), (-1, 1, -1), (-1, -1, -1)}, layouts
    padding = next(m for m in masks if m is not None and m.ndim == 3 and m.shape[1] == 1)
    assert bool(padding[0, 0, 0]) and not bool(padding[0, 0, -1])  # row 0 padded at the end
    assert not bool(padding[1, 0, 0]) and bool(padding[1, 0, -1])  # row 1 padded at the start


def mha_with_torch_sdpa(query, key, value, W_q, W_k, W_v, W_o, num_heads, mask=None):
    """Right, through torch's kernel for the output and by hand for the weights: any mask layout broadcasts."""
    q, k, v = (split_heads(t, num_heads) for t in (query @ W_q, key @ W_k, value @ W_v))
    m = mask[:, None] if mask is not None and mask.ndim == 3 else mask
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m)
    _, weights = scaled_dot_product_attention(q, k, v, m)
    return merge_heads(out) @ W_o, weights


def test_mha_through_torchs_kernel_passes():
    result = check_multi_head_attention(mha_with_torch_sdpa)
    assert result.passed, result.message


def learner_split_heads(x, num_heads):
    raise NotImplementedError()


def test_mha_calling_a_stub_split_heads_names_it():
    def calls_stub(query, key, value, W_q, W_k, W_v, W_o, num_heads, mask=None):
        return learner_split_heads(query @ W_q, num_heads), None

    result = check_multi_head_attention(calls_stub)
    assert result.status is Status.FAILED and "calls your `learner_split_heads`" in result.summary, result.message
