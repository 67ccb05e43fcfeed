"""Checks of notebooks 07 and 08: correct variants pass, stubs are ⏳, each typical mistake gets its own hint."""

from __future__ import annotations

import pytest
import torch

from helpers.checks import Status
from helpers.checks.nb07_encoder import _layer_norm_variant, check_layer_norm
from helpers.checks.nb08_decoder import _decoder_variant, check_decoder_layer


def stub(*args, **kwargs):
    raise NotImplementedError()


# ---- layer_norm ----------------------------------------------------------------------------------------

def ln_two_pass(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def ln_var_mean(x, weight, bias, eps=1e-5):
    var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
    return (x - mean) * torch.rsqrt(var + eps) * weight + bias


def ln_float64_loop(x, weight, bias, eps=1e-5):
    flat = x.reshape(-1, x.shape[-1]).double()
    rows = []
    for row in flat:
        m = sum(row) / len(row)
        v = sum((r - m) ** 2 for r in row) / len(row)
        rows.append((row - m) / (v + eps) ** 0.5)
    return (torch.stack(rows).reshape(x.shape) * weight + bias)


def ln_torch(x, weight, bias, eps=1e-5):
    return torch.nn.functional.layer_norm(x, x.shape[-1:], weight, bias, eps)


@pytest.mark.parametrize("candidate", [ln_two_pass, ln_var_mean, ln_float64_loop, ln_torch])
def test_layer_norm_correct_variants_pass(candidate):
    result = check_layer_norm(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize(
    ("switches", "words"),
    [
        (dict(eps_outside=True), "inside the square root"),
        (dict(unbiased=True), "biased variance"),
        (dict(dims="all"), "not over the whole tensor"),
        (dict(affine=False), "scale and shift"),
        (dict(no_eps=True), "left out eps"),
        (dict(dims=(1,)), "not over the tokens"),
    ],
)
def test_layer_norm_mistakes_are_named(switches, words):
    def wrong(x, weight, bias, eps=1e-5):
        kw = dict(switches)
        if kw.get("dims") == "all":
            kw["dims"] = tuple(range(x.ndim))
        return _layer_norm_variant(x, weight, bias, eps, **kw)

    result = check_layer_norm(wrong)
    assert result.status is Status.FAILED and words in result.hint, result.message


def test_layer_norm_that_ignores_the_eps_argument_fails():
    result = check_layer_norm(lambda x, w, b, eps=1e-5: ln_two_pass(x, w, b, 1e-5))
    assert result.status is Status.FAILED and "ignored the eps argument" in result.hint


def test_the_std_plus_eps_formula_of_tutorials_is_named():
    result = check_layer_norm(lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True))
                              / (x.std(-1, keepdim=True) + eps) * w + b)
    assert result.status is Status.FAILED and "x.std() + eps" in result.hint


# ---- decoder_layer -------------------------------------------------------------------------------------

def decoder_post_ln(layer, y, memory, tgt_mask, src_mask):
    y = layer.norm1(y + layer.self_attention(y, y, y, tgt_mask)[0])
    y = layer.norm2(y + layer.cross_attention(y, memory, memory, src_mask)[0])
    return layer.norm3(y + layer.feed_forward(y))


def decoder_with_dropouts_and_keywords(layer, y, memory, tgt_mask, src_mask):
    attended, _ = layer.self_attention(query=y, key=y, value=y, mask=tgt_mask)
    y = layer.norm1(y + layer.dropout1(attended))
    crossed, _ = layer.cross_attention(query=y, key=memory, value=memory, mask=src_mask)
    y = layer.norm2(y + layer.dropout2(crossed))
    return layer.norm3(y + layer.dropout3(layer.feed_forward(y)))


@pytest.mark.parametrize("candidate", [decoder_post_ln, decoder_with_dropouts_and_keywords])
def test_decoder_layer_correct_variants_pass(candidate):
    result = check_decoder_layer(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize(
    ("switches", "words"),
    [
        (dict(use_tgt_mask=False), "causal mask is not used"),
        (dict(cross_from="self"), "from the encoder output (memory)"),
        (dict(use_src_mask=False), "ignores the source padding: pass src_mask to it"),
        (dict(residual=False), "residual connection is missing"),
        (dict(pre_ln=True), "pre-LN order"),
        (dict(skip_ff=True), "feed-forward sub-layer is missing"),
        (dict(swap_cross=True), "queries and keys are swapped"),
    ],
)
def test_decoder_layer_mistakes_are_named(switches, words):
    result = check_decoder_layer(lambda *args: _decoder_variant(*args, **switches))
    assert result.status is Status.FAILED and words in result.hint, result.message


def test_decoder_check_leaves_the_global_random_stream_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check_decoder_layer(decoder_post_ln)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("check", [check_layer_norm, check_decoder_layer])
def test_stubs_are_not_attempted_and_broken_candidates_fail_cleanly(check):
    assert check(stub).status is Status.NOT_ATTEMPTED
    assert check(lambda *a, **k: 1 / 0).status is Status.FAILED
    assert check(lambda *a, **k: None).status is Status.FAILED
