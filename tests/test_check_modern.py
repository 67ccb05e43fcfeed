"""Checks of notebook 12: correct variants pass, the stub is ⏳, each typical mistake gets its own hint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers.checks import Status, check_apply_rope, check_repeat_kv, check_rms_norm
from helpers.checks.nb12_modern import _rms_variant, _rope
from helpers.modern import apply_rope_interleaved


def stub(*args, **kwargs):
    raise NotImplementedError()


# --- apply_rope ------------------------------------------------------------------------------------------


def rope_with_loops(x, positions):
    out = x.clone()
    d = x.shape[-1]
    for t, pos in enumerate(positions.tolist()):
        for i in range(d // 2):
            angle = pos * 10000 ** (-2 * i / d)
            a, b = x[..., t, i], x[..., t, i + d // 2]
            out[..., t, i] = a * math.cos(angle) - b * math.sin(angle)
            out[..., t, i + d // 2] = a * math.sin(angle) + b * math.cos(angle)
    return out


def rope_with_complex_numbers(x, positions):
    d = x.shape[-1]
    theta = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    turn = torch.polar(torch.ones(len(positions), d // 2, dtype=torch.float64), positions[:, None] * theta)
    z = torch.complex(x[..., : d // 2].double(), x[..., d // 2:].double()) * turn
    return torch.cat([z.real, z.imag], dim=-1)


def rope_in_float32_with_rotate_half(x, positions):
    d = x.shape[-1]
    angles = positions.float()[:, None] / 10000 ** (torch.arange(0, d, 2).float() / d)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    x = x.float()
    return x * cos + torch.cat([-x[..., d // 2:], x[..., : d // 2]], -1) * sin


@pytest.mark.parametrize("candidate", [rope_with_loops, rope_with_complex_numbers, rope_in_float32_with_rotate_half])
def test_correct_rope_variants_pass(candidate):
    result = check_apply_rope(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize(
    ("mistake", "words"),
    [
        (apply_rope_interleaved, "(2i, 2i + 1)"),
        (lambda x, p: _rope(x, p + 1), "off by one"),
        (lambda x, p: _rope(x, p - 1), "off by one"),
        (lambda x, p: _rope(x, torch.arange(len(p))), "ignored the `positions`"),
        (lambda x, p: _rope(x, p, sign=-1), "other way"),
        (lambda x, p: _rope(x, p, exponent="i/d"), "i / head_dim"),
    ],
)
def test_rope_mistakes_are_named(mistake, words):
    result = check_apply_rope(mistake)
    assert result.status is Status.FAILED and words in result.hint, result.message


def test_rope_stub_and_broken_candidates():
    assert check_apply_rope(stub).status is Status.NOT_ATTEMPTED
    assert check_apply_rope(lambda x, p: x).status is Status.FAILED
    assert check_apply_rope(lambda x, p: None).status is Status.FAILED
    assert check_apply_rope(lambda x, p: x.numpy()).status is Status.FAILED


# --- rms_norm --------------------------------------------------------------------------------------------


def rms_norm_with_numpy(x, weight, eps):
    a = x.numpy().astype(np.float64)
    return torch.from_numpy(a / np.sqrt((a**2).mean(axis=-1, keepdims=True) + eps) * weight.numpy())


def rms_norm_with_rsqrt_and_norm(x, weight, eps):
    rms = x.norm(dim=-1, keepdim=True) / math.sqrt(x.shape[-1])
    return x * torch.rsqrt(rms**2 + eps) * weight


def rms_norm_with_torch(x, weight, eps):
    return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)


@pytest.mark.parametrize("candidate", [rms_norm_with_numpy, rms_norm_with_rsqrt_and_norm, rms_norm_with_torch])
def test_correct_rms_norm_variants_pass(candidate):
    result = check_rms_norm(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize(
    ("switches", "words"),
    [
        (dict(centre=True), "LayerNorm"),
        (dict(eps_outside=True), "eps is outside the square root"),
        (dict(no_weight=True), "`weight` is missing"),
        (dict(no_sqrt=True), "without the square root"),
        (dict(total=True), "take the mean"),
        (dict(dim=0), "wrong dimension"),
    ],
)
def test_rms_norm_mistakes_are_named(switches, words):
    result = check_rms_norm(lambda x, w, eps: _rms_variant(x, w, eps, **switches).float())
    assert result.status is Status.FAILED and words in result.hint, result.message


def test_layer_norm_is_not_rms_norm():
    result = check_rms_norm(lambda x, w, eps: torch.nn.functional.layer_norm(x, (x.shape[-1],), w, None, eps))
    assert result.status is Status.FAILED and "LayerNorm" in result.hint, result.message


def test_rms_norm_stub_and_in_place_change():
    assert check_rms_norm(stub).status is Status.NOT_ATTEMPTED

    def in_place(x, weight, eps):
        x /= torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)
        return x * weight

    result = check_rms_norm(in_place)
    assert result.status is Status.FAILED and "in place" in result.summary


# --- repeat_kv -------------------------------------------------------------------------------------------


def repeat_kv_with_expand(x, n_rep):
    b, h, n, d = x.shape
    return x.unsqueeze(2).expand(b, h, n_rep, n, d).reshape(b, h * n_rep, n, d)


def repeat_kv_with_a_loop(x, n_rep):
    return torch.cat([x[:, g:g + 1] for g in range(x.shape[1]) for _ in range(n_rep)], dim=1)


@pytest.mark.parametrize("candidate", [repeat_kv_with_expand, repeat_kv_with_a_loop,
                                       lambda x, r: torch.repeat_interleave(x, r, dim=1)])
def test_correct_repeat_kv_variants_pass(candidate):
    result = check_repeat_kv(candidate)
    assert result.passed, result.message


def test_repeat_kv_in_the_wrong_order_is_named():
    result = check_repeat_kv(lambda x, r: x.repeat(1, r, 1, 1))
    assert result.status is Status.FAILED and "wrong order" in result.hint, result.message


def test_repeat_kv_along_tokens_is_named():
    result = check_repeat_kv(lambda x, r: torch.repeat_interleave(x, r, dim=2))
    assert result.status is Status.FAILED and "token dimension" in result.hint, result.message


def test_repeat_kv_stub_and_broken_candidates():
    assert check_repeat_kv(stub).status is Status.NOT_ATTEMPTED
    assert check_repeat_kv(lambda x, r: x).status is Status.FAILED
    assert check_repeat_kv(repeat_kv_with_expand).passed
