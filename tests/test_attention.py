"""helpers.attention against torch's own implementations, and against the properties attention must have."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from helpers.attention import (
    attention_scores,
    causal_mask,
    padding_mask,
    project_qkv,
    scaled_dot_product_attention,
    scaled_scores,
    softmax,
)

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-12)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_softmax_equals_torch(dtype, dim):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, dtype=dtype)
    torch.testing.assert_close(softmax(x, dim=dim), torch.softmax(x, dim=dim), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_is_stable_at_magnitude_1e4(dtype):
    x = torch.tensor([[1e4, 1e4 - 1, -1e4], [-1e4, -1e4, -1e4 + 2]], dtype=dtype)
    out = softmax(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.softmax(x, dim=-1), **TOL[dtype])
    torch.testing.assert_close(out.sum(-1), torch.ones(2, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_gradient_equals_torch(dtype):
    torch.manual_seed(0)
    x = torch.randn(3, 5, dtype=dtype, requires_grad=True)
    upstream = torch.randn(3, 5, dtype=dtype)
    (grad_ours,) = torch.autograd.grad(softmax(x), x, upstream)
    (grad_torch,) = torch.autograd.grad(torch.softmax(x, dim=-1), x, upstream)
    torch.testing.assert_close(grad_ours, grad_torch, **TOL[dtype])


def test_softmax_leaves_its_input_alone_and_checks_dim():
    torch.manual_seed(0)
    x = torch.randn(2, 3)
    before = x.clone()
    softmax(x)
    assert torch.equal(x, before)
    with pytest.raises(ValueError, match=r"dim=2 is out of range for a tensor of shape \(2, 3\)"):
        softmax(x, dim=2)


def test_project_qkv_shapes_and_values():
    torch.manual_seed(0)
    X = torch.randn(2, 5, 8)
    W_q, W_k, W_v = torch.randn(8, 4), torch.randn(8, 4), torch.randn(8, 6)
    Q, K, V = project_qkv(X, W_q, W_k, W_v)
    assert Q.shape == (2, 5, 4) and K.shape == (2, 5, 4) and V.shape == (2, 5, 6)
    # Token by token, q_n = x_n W_Q.
    torch.testing.assert_close(Q[1, 3], X[1, 3] @ W_q)
    # nn.Linear stores Wᵀ: the same projection through a Linear layer with weight W_qᵀ.
    linear = torch.nn.Linear(8, 4, bias=False)
    with torch.no_grad():
        linear.weight.copy_(W_q.T)
    torch.testing.assert_close(linear(X), Q)


def test_project_qkv_wrong_shapes_name_both():
    torch.manual_seed(0)
    X = torch.randn(5, 8)
    with pytest.raises(ValueError, match=r"X has shape \(5, 8\), W_k has shape \(7, 4\)"):
        project_qkv(X, torch.randn(8, 4), torch.randn(7, 4), torch.randn(8, 4))
    with pytest.raises(ValueError, match=r"W_q has shape \(8, 4\), W_k has shape \(8, 3\)"):
        project_qkv(X, torch.randn(8, 4), torch.randn(8, 3), torch.randn(8, 4))
    with pytest.raises(ValueError, match=r"W_v: expected shape \(d_model, d\), got \(8,\)"):
        project_qkv(X, torch.randn(8, 4), torch.randn(8, 4), torch.randn(8))


def test_scores_are_batched_dot_products_and_not_symmetric():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 6, 8)
    scores = attention_scores(q, k)
    assert scores.shape == (2, 3, 4, 6)
    torch.testing.assert_close(scores[1, 2, 3, 5], q[1, 2, 3] @ k[1, 2, 5])
    torch.testing.assert_close(scaled_scores(q, k), scores / math.sqrt(8))
    x = torch.randn(5, 8)
    s = attention_scores(x @ torch.randn(8, 8), x @ torch.randn(8, 8))
    assert not torch.allclose(s, s.T)


def test_scores_wrong_shapes_name_both():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"q has shape \(4, 8\), k has shape \(6, 7\)"):
        attention_scores(torch.randn(4, 8), torch.randn(6, 7))
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\) cannot be broadcast"):
        attention_scores(torch.randn(2, 4, 8), torch.randn(3, 6, 8))


def make_qkv(shape_q, shape_k, d_v, dtype):
    q = torch.randn(*shape_q, dtype=dtype)
    k = torch.randn(*shape_k, dtype=dtype)
    v = torch.randn(*shape_k[:-1], d_v, dtype=dtype)
    return q, k, v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("shape_q", "shape_k", "d_v"),
    [((5, 8), (5, 8), 8), ((2, 4, 8), (2, 7, 8), 3), ((2, 3, 4, 16), (2, 3, 6, 16), 5)],
)
def test_attention_equals_torch_sdpa(dtype, shape_q, shape_k, d_v):
    torch.manual_seed(0)
    q, k, v = make_qkv(shape_q, shape_k, d_v, dtype)
    out, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), **TOL[dtype])
    assert weights.shape == (*shape_q[:-1], shape_k[-2])
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1], dtype=dtype), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_with_causal_and_padding_masks_equals_torch(dtype):
    torch.manual_seed(0)
    q, k, v = make_qkv((2, 3, 6, 8), (2, 3, 6, 8), 4, dtype)
    causal = causal_mask(6)
    out, weights = scaled_dot_product_attention(q, k, v, causal)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), **TOL[dtype])
    assert (weights[..., ~causal] == 0).all(), "masked positions get weight exactly 0"

    tokens = torch.tensor([[5, 6, 7, 0, 0, 0], [5, 6, 7, 8, 9, 0]])
    pad = padding_mask(tokens, pad_id=0).unsqueeze(1)  # (B, 1, 1, n_k) for the head dimension
    out, weights = scaled_dot_product_attention(q, k, v, pad)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=pad), **TOL[dtype])
    assert (weights[0, :, :, 3:] == 0).all() and (weights[1, :, :, 5] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 6, dtype=dtype), **TOL[dtype])


def test_attention_at_magnitude_1e4_equals_torch():
    torch.manual_seed(0)
    q, k, v = make_qkv((4, 8), (5, 8), 3, torch.float64)
    out, _ = scaled_dot_product_attention(q * 1e4, k, v)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q * 1e4, k, v))


def test_fully_masked_query_gets_zeros_like_torch():
    torch.manual_seed(0)
    q, k, v = make_qkv((3, 4), (3, 4), 2, torch.float32)
    mask = torch.tensor([[True, False, True], [False, False, False], [True, True, True]])
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert torch.equal(weights[1], torch.zeros(3)) and torch.equal(out[1], torch.zeros(2))
    assert not torch.isnan(out).any()
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_self_attention_is_permutation_equivariant():
    torch.manual_seed(0)
    x = torch.randn(6, 8, dtype=torch.float64)
    perm = torch.randperm(6)
    out, _ = scaled_dot_product_attention(x, x, x)
    out_perm, _ = scaled_dot_product_attention(x[perm], x[perm], x[perm])
    torch.testing.assert_close(out_perm, out[perm])


def test_causal_mask_values_and_validation():
    assert torch.equal(causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive int"):
            causal_mask(bad)


def test_attention_input_errors_are_clear():
    torch.manual_seed(0)
    q, k, v = make_qkv((4, 8), (5, 8), 3, torch.float32)
    with pytest.raises(ValueError, match=r"k has shape \(5, 8\), v has shape \(4, 3\)"):
        scaled_dot_product_attention(q, k, v[:4])
    with pytest.raises(ValueError, match="mask must be boolean"):
        scaled_dot_product_attention(q, k, v, torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"mask of shape \(5, 4\) does not broadcast to the scores' shape \(4, 5\)"):
        scaled_dot_product_attention(q, k, v, torch.ones(5, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"tokens: expected integer token ids of shape \(B, n\)"):
        padding_mask(torch.randn(2, 3), 0)
