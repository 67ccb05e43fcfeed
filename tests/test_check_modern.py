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


def rms_norm_with_numpy(x, weight, eps=1e-6):
    a = x.numpy().astype(np.float64)
    return torch.from_numpy(a / np.sqrt((a**2).mean(axis=-1, keepdims=True) + eps) * weight.numpy())


def rms_norm_with_rsqrt_and_norm(x, weight, eps=1e-6):
    rms = x.norm(dim=-1, keepdim=True) / math.sqrt(x.shape[-1])
    return x * torch.rsqrt(rms**2 + eps) * weight


def rms_norm_with_torch(x, weight, eps=1e-6):
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
    result = check_rms_norm(lambda x, w, eps=1e-6: _rms_variant(x, w, eps, **switches).float())
    assert result.status is Status.FAILED and words in result.hint, result.message


def test_layer_norm_is_not_rms_norm():
    result = check_rms_norm(lambda x, w, eps=1e-6: torch.nn.functional.layer_norm(x, (x.shape[-1],), w, None, eps))
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


# --- the contracts: generated cases, the course's own references, one-place mistakes named -----------------


def test_the_course_references_pass():
    from helpers import modern

    assert check_apply_rope(modern.apply_rope).passed  # float32 angles, as Hugging Face
    assert check_rms_norm(modern.rms_norm).passed  # float32 statistics
    assert check_repeat_kv(modern.repeat_kv).passed


def test_cases_are_generated_and_cover_the_contracts():
    names = " | ".join(case.name for check in (check_apply_rope, check_rms_norm, check_repeat_kv)
                       for case in check.spec.cases())
    for phrase in ["no batch dimension", "batch and heads", "positions with gaps", "a single vector",
                   "default eps", "h_kv=1", "n_rep=1", "non-contiguous"]:
        assert phrase in names, phrase
    assert [c.name for c in check_apply_rope.spec.cases()] == [c.name for c in check_apply_rope.spec.cases()]


def rope_with_einsum_on_pairs(x, positions):
    d = x.shape[-1]
    theta = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angle = positions.double()[:, None] * theta
    rotation = torch.stack([torch.stack([angle.cos(), -angle.sin()], -1),
                            torch.stack([angle.sin(), angle.cos()], -1)], -2)  # (n, d/2, 2, 2)
    pairs = torch.stack([x[..., : d // 2], x[..., d // 2:]], -1).double()  # (..., n, d/2, 2)
    turned = torch.einsum("tpij,...tpj->...tpi", rotation, pairs)
    return torch.cat([turned[..., 0], turned[..., 1]], -1)


def test_rope_with_einsum_passes_and_positions_are_any_integers():
    assert check_apply_rope(rope_with_einsum_on_pairs).passed
    result = check_apply_rope(lambda x, p: _rope(x, p[0] + torch.arange(len(p))))
    assert result.status is Status.FAILED and "consecutive" in result.hint and "gaps" in result.summary


def test_rope_layout_mistakes_are_named():
    meta_layout = check_apply_rope(lambda x, p: _rope(x.transpose(-3, -2), p).transpose(-3, -2) if x.ndim == 4
                                   else _rope(x, p))
    assert meta_layout.status is Status.FAILED and "second-to-last dimension" in meta_layout.hint, meta_layout.message
    batch_axis = check_apply_rope(lambda x, p: _rope(x, p) if x.ndim > 2 else _rope(x, p)[None])
    assert batch_axis.status is Status.FAILED and "any number of leading dimensions" in batch_axis.hint


def test_rms_norm_eps_mistakes_are_named():
    ignored = check_rms_norm(lambda x, w, eps=1e-6: _rms_variant(x, w, 1e-6))
    assert ignored.status is Status.FAILED and "the `eps` argument" in ignored.hint, ignored.message
    for wrong in (lambda x, w, eps=1e-5: _rms_variant(x, w, eps), lambda x, w, eps: _rms_variant(x, w, eps)):
        result = check_rms_norm(wrong)
        assert result.status is Status.FAILED and "the default is eps = 1e-6" in result.hint, result.message


def test_rms_norm_for_rows_only_is_named():
    result = check_rms_norm(lambda x, w, eps=1e-6: x / x.pow(2).mean(dim=1, keepdim=True).add(eps).sqrt() * w)
    assert result.status is Status.FAILED and "any number of leading dimensions" in result.hint, result.message


def test_rms_norm_in_float64_and_with_a_loop_pass():
    def with_a_loop(x, weight, eps=1e-6):
        rows = x.double().reshape(-1, x.shape[-1])
        out = torch.stack([r / torch.sqrt((r * r).sum() / len(r) + eps) for r in rows])
        return (out * weight.double()).reshape(x.shape)

    assert check_rms_norm(with_a_loop).passed


def test_repeat_kv_contract_mistakes_are_named():
    def with_view(x, n_rep):
        b, h, n, d = x.shape
        return x.view(b * h, n, d).repeat_interleave(n_rep, dim=0).view(b, h * n_rep, n, d)

    def missing_branch(x, n_rep):
        if n_rep > 1:
            return torch.repeat_interleave(x, n_rep, dim=1)

    for wrong, words in [(with_view, "non-contiguous"), (missing_branch, "n_rep = 1"),
                         (lambda x, r: x.squeeze().repeat_interleave(r, dim=-3), "even one of size 1")]:
        result = check_repeat_kv(wrong)
        assert result.status is Status.FAILED and words in result.hint, result.message


def test_repeat_kv_with_einsum_free_indexing_passes():
    def by_index(x, n_rep):
        return x[:, torch.arange(x.shape[1]).repeat_interleave(n_rep)]

    assert check_repeat_kv(by_index).passed
