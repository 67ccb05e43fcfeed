"""Checks of notebook 10: correct variants pass, stubs are ⏳, each typical mistake gets its own hint,
broken candidates fail cleanly."""

from __future__ import annotations

import math

import pytest
import torch

from helpers.checks import Status, check_cached_attention_step, check_chunked_attention, check_online_softmax_update
from helpers.checks.nb10_efficient import (
    CACHED_MISTAKES,
    CHUNKED_MISTAKES,
    ONLINE_MISTAKES,
    _cached_variant,
    _chunked_variant,
    _online_variant,
    _reference_chunked,
    _state,
)
from helpers.efficient import cached_attention_step, online_softmax_update


def stub(*args, **kwargs):
    # YOUR CODE HERE
    raise NotImplementedError()


# ---- cached_attention_step -------------------------------------------------------------------------------

def cached_with_softmax(q, k_new, v_new, k_cache, v_cache):
    k_cache = torch.cat([k_cache, k_new], dim=-2)
    v_cache = torch.cat([v_cache, v_new], dim=-2)
    weights = torch.softmax(q @ k_cache.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v_cache, k_cache, v_cache


def cached_with_torch_sdpa(q, k_new, v_new, k_cache, v_cache):
    k_all, v_all = torch.cat((k_cache, k_new), -2), torch.cat((v_cache, v_new), -2)
    return torch.nn.functional.scaled_dot_product_attention(q, k_all, v_all), k_all, v_all


def cached_with_einsum_in_float64(q, k_new, v_new, k_cache, v_cache):
    k_all, v_all = torch.cat([k_cache, k_new], dim=-2), torch.cat([v_cache, v_new], dim=-2)
    scores = torch.einsum("...qd,...kd->...qk", q.double(), k_all.double()) / q.shape[-1] ** 0.5
    scores = scores - scores.amax(dim=-1, keepdim=True)
    weights = scores.exp() / scores.exp().sum(dim=-1, keepdim=True)
    return torch.einsum("...qk,...kd->...qd", weights, v_all.double()), k_all, v_all


def cached_returning_a_list(q, k_new, v_new, k_cache, v_cache):
    return list(cached_attention_step(q, k_new, v_new, k_cache, v_cache))


@pytest.mark.parametrize("candidate", [cached_attention_step, cached_with_softmax, cached_with_torch_sdpa,
                                       cached_with_einsum_in_float64, cached_returning_a_list])
def test_cached_step_correct_variants_pass(candidate):
    result = check_cached_attention_step(candidate)
    assert result.passed, result.message


def test_cached_step_stub_is_not_attempted():
    assert check_cached_attention_step(stub).status is Status.NOT_ATTEMPTED


@pytest.mark.parametrize(("hint", "switches"), CACHED_MISTAKES, ids=[str(s) for _, s in CACHED_MISTAKES])
def test_cached_step_mistakes_get_their_own_hint(hint, switches):
    result = check_cached_attention_step(lambda *args: _cached_variant(*args, **switches))
    assert result.status is Status.FAILED
    assert result.hint == hint, result.message


@pytest.mark.parametrize(
    ("mistake", "words"),
    [
        (lambda q, k, v, kc, vc: _cached_variant(q, k, v, kc, vc, append=False), "lack the new token"),
        (lambda q, k, v, kc, vc: _cached_variant(q, k, v, kc, vc, include_new=False), "attend to itself"),
        (lambda q, k, v, kc, vc: _cached_variant(q, k, v, kc, vc, only_new=True), "only to the newest token"),
        (lambda q, k, v, kc, vc: _cached_variant(q, k, v, kc, vc, scale="none"), "not scaled"),
        (lambda q, k, v, kc, vc: _cached_variant(q, k, v, kc, vc, scale="dk"), "not by d_k"),
    ],
)
def test_cached_step_hints_name_the_mistake(mistake, words):
    result = check_cached_attention_step(mistake)
    assert result.status is Status.FAILED and words in result.hint, result.message


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        (lambda q, k, v, kc, vc: (_ for _ in ()).throw(ValueError("boom")), "raised ValueError: boom"),
        (lambda q, k, v, kc, vc: cached_attention_step(q, k, v, kc, vc)[0], "returned one tensor"),
        (lambda q, k, v, kc, vc: cached_attention_step(q, k, v, kc, vc)[:2], "tuple of length 2"),
        (lambda q, k, v, kc, vc: None, "returned a NoneType"),
        (lambda *args: tuple(torch.full_like(x, float("nan")) for x in cached_attention_step(*args)), "contains NaN"),
        (lambda q, k, v, kc, vc: cached_attention_step(q, k, v, kc.mul_(2), vc), "changed its argument #4 in place"),
    ],
)
def test_cached_step_broken_candidates_fail_cleanly(candidate, words):
    result = check_cached_attention_step(candidate)
    assert result.status is Status.FAILED
    assert words in result.message, result.message


# ---- online_softmax_update -------------------------------------------------------------------------------

def online_with_where(m, z, acc, scores, v):
    m_new = torch.maximum(m, scores.max(dim=-1, keepdim=True).values)
    safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
    p = torch.exp(scores - safe)
    alpha = torch.exp(m - safe)
    return m_new, alpha * z + p.sum(-1, keepdim=True), alpha * acc + p @ v


def online_in_float64_with_einsum(m, z, acc, scores, v):
    m64, z64, acc64, s64, v64 = (t.double() for t in (m, z, acc, scores, v))
    m_new = torch.max(m64, s64.amax(-1, keepdim=True))
    finite = torch.isfinite(m_new)
    p = torch.where(finite, torch.exp(s64 - torch.where(finite, m_new, 0.0)), 0.0)
    alpha = torch.where(finite, torch.exp(m64 - torch.where(finite, m_new, 0.0)), 0.0)
    return m_new, z64 * alpha + p.sum(-1, keepdim=True), acc64 * alpha + torch.einsum("...qk,...kd->...qd", p, v64)


def online_with_nan_to_num(m, z, acc, scores, v):
    m_new = torch.maximum(m, scores.amax(-1, keepdim=True))
    p = torch.nan_to_num(torch.exp(scores - m_new), nan=0.0)
    alpha = torch.nan_to_num(torch.exp(m - m_new), nan=0.0)
    return m_new, z * alpha + p.sum(-1, keepdim=True), acc * alpha + p @ v


@pytest.mark.parametrize("candidate", [online_softmax_update, online_with_where, online_in_float64_with_einsum,
                                       online_with_nan_to_num])
def test_online_update_correct_variants_pass(candidate):
    result = check_online_softmax_update(candidate)
    assert result.passed, result.message


def test_online_update_stub_is_not_attempted():
    assert check_online_softmax_update(stub).status is Status.NOT_ATTEMPTED


@pytest.mark.parametrize(("hint", "switches"), ONLINE_MISTAKES, ids=[str(s) for _, s in ONLINE_MISTAKES])
def test_online_update_mistakes_get_their_own_hint(hint, switches):
    result = check_online_softmax_update(lambda *args: _online_variant(*args, **switches))
    assert result.status is Status.FAILED
    assert result.hint == hint, result.message


@pytest.mark.parametrize(
    ("switches", "words"),
    [
        (dict(rescale_z=False, rescale_acc=False), "did not rescale the old state"),
        (dict(block_max=True), "block's maximum instead of the running maximum"),
        (dict(normalise=True), "divide acc / z once"),
        (dict(flip=True), "upside down"),
        (dict(guard=False), "exp(-inf - (-inf)) is NaN"),
    ],
)
def test_online_update_hints_name_the_mistake(switches, words):
    result = check_online_softmax_update(lambda *args: _online_variant(*args, **switches))
    assert result.status is Status.FAILED and words in result.hint, result.message


def test_online_update_overflow_without_the_maximum_is_named():
    def exp_without_max(m, z, acc, scores, v):  # rescales, but forgets to subtract before exp
        m_new = torch.maximum(m, scores.amax(-1, keepdim=True))
        p = torch.exp(scores)
        return m_new, z + p.sum(-1, keepdim=True), acc + p @ v

    result = check_online_softmax_update(exp_without_max)
    assert result.status is Status.FAILED and "subtract" in result.hint, result.message


def test_online_update_without_keepdim_is_named():
    def no_keepdim(m, z, acc, scores, v):
        m_new, z_new, acc_new = online_softmax_update(m, z, acc, scores, v)
        return m_new.squeeze(-1), z_new, acc_new

    result = check_online_softmax_update(no_keepdim)
    assert result.status is Status.FAILED and "keepdim=True" in result.hint, result.message


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        (lambda m, z, acc, s, v: (_ for _ in ()).throw(RuntimeError("boom")), "raised RuntimeError: boom"),
        (lambda m, z, acc, s, v: online_softmax_update(m, z, acc, s, v)[2], "returned one tensor"),
        (lambda m, z, acc, s, v: "three tensors", "returned a str"),
        (lambda m, z, acc, s, v: tuple(torch.full_like(x, float("nan")) for x in (m, z, acc)), "contains NaN"),
        (lambda m, z, acc, s, v: online_softmax_update(m, z.add_(1), acc, s, v), "changed its argument #2 in place"),
    ],
)
def test_online_update_broken_candidates_fail_cleanly(candidate, words):
    result = check_online_softmax_update(candidate)
    assert result.status is Status.FAILED
    assert words in result.message, result.message


def test_checks_leave_the_global_random_stream_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check_online_softmax_update(online_softmax_update)
    check_cached_attention_step(cached_attention_step)
    assert torch.equal(torch.rand(3), expected)


# ---- chunked_attention -----------------------------------------------------------------------------------

def chunked_on_the_reference_update(q, k, v, block_size, mask=None):
    q = q / math.sqrt(q.shape[-1])
    m = torch.full((*q.shape[:-1], 1), float("-inf"), dtype=q.dtype)
    z, acc = torch.zeros_like(m), torch.zeros((*q.shape[:-1], v.shape[-1]), dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        scores = q @ k[..., start : start + block_size, :].mT
        if mask is not None:
            scores = scores.masked_fill(~mask[..., start : start + block_size], float("-inf"))
        m, z, acc = online_softmax_update(m, z, acc, scores, v[..., start : start + block_size, :])
    return acc / z


def chunked_with_a_while_loop_in_float64(q, k, v, block_size, mask=None):
    q64, k64, v64 = q.double(), k.double(), v.double()
    m = z = acc = None
    start = 0
    while start < k.shape[-2]:
        s = torch.einsum("...qd,...kd->...qk", q64, k64[..., start : start + block_size, :]) / q.shape[-1] ** 0.5
        if mask is not None:
            s = torch.where(mask[..., start : start + block_size], s, float("-inf"))
        if m is None:
            m, z, acc = _state(q.shape[:-2], q.shape[-2], v.shape[-1], torch.float64)
        m, z, acc = online_softmax_update(m, z, acc, s, v64[..., start : start + block_size, :])
        start += block_size
    return (acc / z).to(q.dtype)


def chunked_by_torch_split(q, k, v, block_size, mask=None):
    q = q * q.shape[-1] ** -0.5
    m, z, acc = _state(q.shape[:-2], q.shape[-2], v.shape[-1], q.dtype)
    masks = mask.split(block_size, dim=-1) if mask is not None else [None] * math.ceil(k.shape[-2] / block_size)
    for kb, vb, mb in zip(k.split(block_size, dim=-2), v.split(block_size, dim=-2), masks):
        s = q @ kb.transpose(-2, -1)
        m, z, acc = online_softmax_update(m, z, acc, s if mb is None else s.masked_fill(~mb, float("-inf")), vb)
    return acc / z


@pytest.mark.parametrize("candidate", [_reference_chunked, chunked_on_the_reference_update,
                                       chunked_with_a_while_loop_in_float64, chunked_by_torch_split])
def test_chunked_correct_variants_pass(candidate):
    result = check_chunked_attention(candidate)
    assert result.passed, result.message


def test_chunked_reference_equals_torch_on_every_case():
    # The cases' answers come from torch; the course's own chunked attention must agree on each.
    for case in check_chunked_attention.spec.cases():
        torch.testing.assert_close(_reference_chunked(*case.args, **case.kwargs), case.expected)


def test_chunked_stub_is_not_attempted():
    assert check_chunked_attention(stub).status is Status.NOT_ATTEMPTED


def test_chunked_a_learner_whose_update_is_still_the_stub_is_told_which_exercise_to_finish():
    def online_softmax_update(m, z, acc, scores, v):  # the learner's update, still nbgrader's stub
        # YOUR CODE HERE
        raise NotImplementedError()

    def chunked_attention(q, k, v, block_size, mask=None):  # built on it, as the exercise asks
        q = q / math.sqrt(q.shape[-1])
        m, z, acc = _state(q.shape[:-2], q.shape[-2], v.shape[-1], q.dtype)
        for start in range(0, k.shape[-2], block_size):
            scores = q @ k[..., start : start + block_size, :].mT
            m, z, acc = online_softmax_update(m, z, acc, scores, v[..., start : start + block_size, :])
        return acc / z

    result = check_chunked_attention(chunked_attention)
    assert result.status is Status.FAILED, result.message
    assert "calls your `online_softmax_update`, which is still the stub" in result.summary, result.message
    assert "finish the `online_softmax_update` exercise" in result.hint, result.message


def test_chunked_its_own_stub_is_not_attempted_even_beside_a_finished_update():
    def chunked_attention(q, k, v, block_size, mask=None):
        # YOUR CODE HERE
        raise NotImplementedError()

    assert check_chunked_attention(chunked_attention).status is Status.NOT_ATTEMPTED


@pytest.mark.parametrize(("hint", "switches"), CHUNKED_MISTAKES, ids=[str(s) for _, s in CHUNKED_MISTAKES])
def test_chunked_mistakes_get_their_own_hint(hint, switches):
    result = check_chunked_attention(lambda *args, **kwargs: _chunked_variant(*args, **kwargs, **switches))
    assert result.status is Status.FAILED
    assert result.hint == hint, result.message


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        (lambda q, k, v, b, mask=None: (_ for _ in ()).throw(ValueError("boom")), "raised ValueError: boom"),
        (lambda q, k, v, b, mask=None: _reference_chunked(q, k, v, b, mask).mT, "shape"),
        (lambda q, k, v, b, mask=None: None, "of type NoneType"),
        (lambda q, k, v, b, mask=None: _reference_chunked(q, k.mul_(2), v, b, mask),
         "changed its argument #2 in place"),
        (lambda q, k, v, b: _reference_chunked(q, k, v, b), "mask"),  # no mask argument: the causal case raises
    ],
)
def test_chunked_broken_candidates_fail_cleanly(candidate, words):
    result = check_chunked_attention(candidate)
    assert result.status is Status.FAILED
    assert words in result.message, result.message


def test_chunked_hints_never_print_the_answer():
    for hint, _ in CHUNKED_MISTAKES:
        # No call of the update with its arguments, no loop header: the hint names the mistake, not the code.
        assert "online_softmax_update(" not in hint and "range(" not in hint and "for start" not in hint, hint


@pytest.mark.parametrize("name", ["cached_attention_step", "online_softmax_update", "chunked_attention"])
def test_no_hint_of_a_contract_entry_prints_solution_code(name):
    from helpers.checks import nb10_efficient

    check = getattr(nb10_efficient, f"check_{name}")
    for term in check.spec.contract:
        hint = check(term.wrong).hint
        leaked = [p for p in nb10_efficient.SOLUTION_FRAGMENTS[name] if p in hint]
        assert not leaked, (term.allows, hint)


def test_chunked_cases_cover_padding_at_both_ends_and_a_fully_masked_first_block():
    cases = list(check_chunked_attention.spec.cases())
    start = next(c for c in cases if "padding at the start" in c.name)
    q, k, v, block = start.args
    mask = start.kwargs["mask"]
    assert (~mask[..., :block]).all(dim=-1).any(), "some sequence's first key block is fully masked"
    end = next(c for c in cases if "padding at the end" in c.name)
    assert not end.kwargs["mask"][..., -1].all(), "some sequence ends in padding"
    assert any("mask" not in c.kwargs for c in cases), "mask=None is checked"
    assert {c.kwargs["mask"].ndim for c in cases if "mask" in c.kwargs} == {2, 4}


def test_chunked_correct_variants_pass_on_padding_at_the_start():
    def chunked_with_where(q, k, v, block_size, mask=None):
        scale = q.shape[-1] ** -0.5
        m, z, acc = _state(torch.broadcast_shapes(q.shape[:-2], k.shape[:-2]), q.shape[-2], v.shape[-1], q.dtype)
        for start in range(0, k.shape[-2], block_size):
            s = (q @ k[..., start : start + block_size, :].mT) * scale
            if mask is not None:
                s = torch.where(mask[..., start : start + block_size], s, float("-inf"))
            m, z, acc = online_softmax_update(m, z, acc, s, v[..., start : start + block_size, :])
        return acc / z

    result = check_chunked_attention(chunked_with_where)
    assert result.passed, result.message
