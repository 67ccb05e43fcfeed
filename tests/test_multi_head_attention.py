"""helpers.attention.MultiHeadAttention against torch.nn.MultiheadAttention with copied weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers.attention import (
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
)

# float64 throughout: anything that passes through float32 on the way shows up at these tolerances.
TIGHT = dict(rtol=1e-10, atol=1e-10)
D_MODEL, NUM_HEADS = 16, 4


def pair(bias: bool = True, dtype: torch.dtype = torch.float64) -> tuple[nn.MultiheadAttention, MultiHeadAttention]:
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(D_MODEL, NUM_HEADS, bias=bias, batch_first=True, dtype=dtype).eval()
    if bias:  # torch initialises biases to zero: make them count
        with torch.no_grad():
            reference.in_proj_bias.normal_()
            reference.out_proj.bias.normal_()
    return reference, MultiHeadAttention.from_torch(reference).eval()


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("n_q", "n_k"), [(5, 5), (3, 7)])
def test_outputs_and_per_head_weights_equal_torch(bias, n_q, n_k):
    reference, ours = pair(bias)
    query = torch.randn(2, n_q, D_MODEL, dtype=torch.float64)
    memory = torch.randn(2, n_k, D_MODEL, dtype=torch.float64)
    expected, expected_weights = reference(query, memory, memory, average_attn_weights=False)
    out, weights = ours(query, memory, memory)
    assert weights.shape == (2, NUM_HEADS, n_q, n_k)
    torch.testing.assert_close(out, expected, **TIGHT)
    torch.testing.assert_close(weights, expected_weights, **TIGHT)


def test_causal_and_padding_masks_equal_torch():
    reference, ours = pair()
    x = torch.randn(2, 6, D_MODEL, dtype=torch.float64)
    causal = causal_mask(6)
    expected, _ = reference(x, x, x, attn_mask=~causal)  # torch's boolean attn_mask: True = blocked
    torch.testing.assert_close(ours(x, x, x, mask=causal)[0], expected, **TIGHT)

    tokens = torch.tensor([[3, 4, 5, 0, 0, 0], [3, 4, 5, 6, 7, 0]])
    keep = padding_mask(tokens, pad_id=0)  # (B, 1, n)
    expected, expected_weights = reference(x, x, x, key_padding_mask=tokens == 0, average_attn_weights=False)
    out, weights = ours(x, x, x, mask=keep)
    torch.testing.assert_close(out, expected, **TIGHT)
    torch.testing.assert_close(weights, expected_weights, **TIGHT)
    assert (weights[0, :, :, 3:] == 0).all()


def test_gradients_equal_torch():
    reference, ours = pair()
    x = torch.randn(2, 5, D_MODEL, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    reference(x, x, x)[0].square().sum().backward()
    ours(x2, x2, x2)[0].square().sum().backward()
    torch.testing.assert_close(x2.grad, x.grad, **TIGHT)
    fused = torch.cat([ours.W_q.weight.grad, ours.W_k.weight.grad, ours.W_v.weight.grad])
    torch.testing.assert_close(fused, reference.in_proj_weight.grad, **TIGHT)
    torch.testing.assert_close(ours.W_o.weight.grad, reference.out_proj.weight.grad, **TIGHT)


@pytest.mark.parametrize("bias", [True, False])
def test_parameter_count_equals_torch(bias):
    reference, ours = pair(bias)
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in reference.parameters())
    assert count == 4 * D_MODEL**2 + (4 * D_MODEL if bias else 0)


def test_fused_projection_equals_heads_side_by_side():
    torch.manual_seed(1)
    x = torch.randn(2, 5, D_MODEL)
    W_q = torch.randn(D_MODEL, D_MODEL)
    fused = split_heads(x @ W_q, NUM_HEADS)  # (B, h, n, d_k)
    d_k = D_MODEL // NUM_HEADS
    for head in range(NUM_HEADS):
        torch.testing.assert_close(fused[:, head], x @ W_q[:, head * d_k : (head + 1) * d_k])


def test_split_and_merge_are_inverses_and_heads_attend_separately():
    torch.manual_seed(0)
    x = torch.randn(2, 5, D_MODEL)
    heads = split_heads(x, NUM_HEADS)
    assert heads.shape == (2, NUM_HEADS, 5, D_MODEL // NUM_HEADS)
    assert torch.equal(merge_heads(heads), x)
    out, _ = scaled_dot_product_attention(heads, heads, heads)
    for head in range(NUM_HEADS):
        torch.testing.assert_close(out[:, head], scaled_dot_product_attention(*[heads[:, head]] * 3)[0])


def test_from_torch_keeps_train_or_eval_mode():
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(D_MODEL, NUM_HEADS, batch_first=True)
    assert MultiHeadAttention.from_torch(reference.eval()).training is False
    assert MultiHeadAttention.from_torch(reference.train()).training is True


def test_bad_sizes_are_clear_errors():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="d_model = 10 must be a positive multiple of num_heads = 4"):
        MultiHeadAttention(10, 4)
    mha = MultiHeadAttention(D_MODEL, NUM_HEADS)
    with pytest.raises(ValueError, match=r"query: expected shape \(B, n, d_model=16\), got \(5, 16\)"):
        mha(torch.randn(5, D_MODEL), torch.randn(5, D_MODEL), torch.randn(5, D_MODEL))
    with pytest.raises(ValueError, match="not divisible by num_heads = 3"):
        split_heads(torch.randn(1, 2, D_MODEL), 3)
    with pytest.raises(ValueError, match=r"expected shape \(B, h, n, d_k\), got \(2, 3\)"):
        merge_heads(torch.randn(2, 3))
    with pytest.raises(ValueError, match="batch_first=True"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(D_MODEL, NUM_HEADS))
    with pytest.raises(TypeError, match="expected torch.nn.MultiheadAttention"):
        MultiHeadAttention.from_torch(nn.Linear(2, 2))
