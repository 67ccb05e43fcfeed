"""Scaled dot-product attention, piece by piece (notebooks 01-04), and multi-head attention (05).

    Q = X W_Q,  K = X W_K,  V = X W_V                  (01)
    scores = Q Kᵀ                                      (02)
    scaled = Q Kᵀ / √d_k                               (03)
    attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V        (04)

Shapes are batch-first with any number of leading dimensions `...` (batch, heads).
Masks are boolean with **True = may attend**, as in torch's
`scaled_dot_product_attention`. (`nn.MultiheadAttention` and the `nn.Transformer*` modules
read a boolean mask the other way round: True = blocked.)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from helpers.tensors import (
    format_shape,
    require_activations,
    require_broadcastable,
    require_int,
    require_ndim,
    require_same_size,
    require_tensor,
)


def project_qkv(X: Tensor, W_q: Tensor, W_k: Tensor, W_v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Queries, keys and values from the same input through three learned matrices.

    Args:
        X: `(..., n, d_model)`, one row per token.
        W_q, W_k: `(d_model, d_k)`.  W_v: `(d_model, d_v)`.

    Returns:
        `Q (..., n, d_k)`, `K (..., n, d_k)`, `V (..., n, d_v)`.
    """
    for name, x in (("X", X), ("W_q", W_q), ("W_k", W_k), ("W_v", W_v)):
        require_tensor(name, x)
    require_ndim("X", X, 2, "(..., n, d_model)")
    for name, W in (("W_q", W_q), ("W_k", W_k), ("W_v", W_v)):
        if W.ndim != 2:
            raise ValueError(f"{name}: expected shape (d_model, d), got {format_shape(W.shape)}")
        require_same_size("X", X, -1, name, W, 0, "d_model (X's last dimension, the weight's first)")
    require_same_size("W_q", W_q, 1, "W_k", W_k, 1, "d_k (queries and keys must have the same width)")
    return X @ W_q, X @ W_k, X @ W_v


def _require_qk(q: Tensor, k: Tensor) -> None:
    """Queries `(..., n_q, d_k)` and keys `(..., n_k, d_k)` of one width, batch dimensions that broadcast."""
    require_tensor("q", q)
    require_tensor("k", k)
    require_ndim("q", q, 2, "(..., n_q, d_k)")
    require_ndim("k", k, 2, "(..., n_k, d_k)")
    require_same_size("q", q, -1, "k", k, -1, "d_k (their last dimension)")
    require_broadcastable("q", q.shape[:-2], "k", k.shape[:-2])


def require_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    """Raise a clear error unless `q (..., n_q, d_k)`, `k (..., n_k, d_k)`, `v (..., n_k, d_v)` fit together."""
    _require_qk(q, k)
    require_tensor("v", v)
    require_ndim("v", v, 2, "(..., n_k, d_v)")
    require_same_size("k", k, -2, "v", v, -2, "n_k (one value per key)")
    require_broadcastable("k", k.shape[:-2], "v", v.shape[:-2])


def attention_scores(q: Tensor, k: Tensor) -> Tensor:
    """The relation matrix `Q Kᵀ`: `(..., n_q, d_k), (..., n_k, d_k) -> (..., n_q, n_k)`.

    Entry `[i, j]` is the dot product of query i with key j. `transpose(-2, -1)` swaps the
    last two dimensions only, so leading batch and head dimensions are left alone.
    """
    _require_qk(q, k)
    return q @ k.transpose(-2, -1)


def scaled_scores(q: Tensor, k: Tensor) -> Tensor:
    """`Q Kᵀ / √d_k`: scores whose variance stays near 1 whatever d_k (notebook 03)."""
    return attention_scores(q, k) / math.sqrt(q.shape[-1])


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Numerically stable softmax along `dim`.

    Subtracting the maximum leaves the result unchanged (it cancels between numerator and
    denominator) but keeps `exp` from overflowing, which the naive formula does in float32 once a
    score passes about 88.7: inputs of magnitude 1e4 are fine. Like
    `torch.softmax`, a slice that is entirely `-inf` gives NaN; attention handles that case.
    """
    require_tensor("x", x)
    if not -x.ndim <= dim < max(x.ndim, 1):
        raise ValueError(f"dim={dim} is out of range for a tensor of shape {format_shape(x.shape)}")
    # The shift cancels in the result, so it carries no gradient: detaching it saves autograd
    # the backward pass of amax without changing any derivative.
    shifted = x - x.amax(dim=dim, keepdim=True).detach()
    exp = torch.exp(shifted)
    return exp / exp.sum(dim=dim, keepdim=True)


def causal_mask(n: int, device: torch.device | str | None = None) -> Tensor:
    """`(n, n)` boolean mask, True on and below the diagonal: token i may attend to tokens 0..i."""
    require_int("n", n)
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def padding_mask(tokens: Tensor, pad_id: int) -> Tensor:
    """`(B, n)` token ids -> `(B, 1, n)` boolean mask, False at padding keys.

    `pad_id` is any id; padding may sit at the end of a row or at its start (left padding).

    It broadcasts against scores `(B, n_q, n)`; for per-head scores `(B, h, n_q, n)` add a
    head dimension with `.unsqueeze(1)`.
    """
    require_tensor("tokens", tokens)
    if tokens.ndim != 2 or tokens.is_floating_point():
        raise ValueError(f"tokens: expected integer token ids of shape (B, n), got {format_shape(tokens.shape)} "
                         f"of dtype {tokens.dtype}")
    return (tokens != pad_id).unsqueeze(-2)


def require_mask(mask: Tensor, scores_shape: torch.Size) -> None:
    """Raise a clear error unless `mask` is boolean and broadcasts to the scores' shape `(..., n_q, n_k)`."""
    require_tensor("mask", mask)
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be boolean (True = may attend), got dtype {mask.dtype}")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores_shape:
        raise ValueError(
            f"mask of shape {format_shape(mask.shape)} does not broadcast to the scores' shape "
            f"{format_shape(scores_shape)} (..., n_q, n_k)"
        )


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """`softmax(Q Kᵀ / √d_k) V`, returning the output and the attention weights.

    Args:
        q: `(..., n_q, d_k)`.  k: `(..., n_k, d_k)`.  v: `(..., n_k, d_v)`.
        mask: boolean, broadcastable to `(..., n_q, n_k)`; True = may attend.

    Returns:
        `output (..., n_q, d_v)` and `weights (..., n_q, n_k)`; each row of weights sums to 1.

    Masked positions get `-inf` *before* the softmax, so they receive weight exactly 0 and
    the other weights still sum to 1. A query whose keys are all masked has nothing to
    attend to: its weights and its output are all zeros (as in torch's
    `scaled_dot_product_attention`), never NaN.
    """
    require_qkv(q, k, v)
    weights = attention_weights(q, k, mask)
    return weights @ v, weights


def attention_weights(q: Tensor, k: Tensor, mask: Tensor | None = None) -> Tensor:
    """`softmax(Q Kᵀ / √d_k)` with masked scores set to `-inf` first: `(..., n_q, n_k)`.

    A query with no key left to attend to gets all-zero weights instead of the NaN that
    softmax gives for a row of `-inf`.
    """
    scores = scaled_scores(q, k)
    if mask is None:
        return softmax(scores, dim=-1)
    require_mask(mask, scores.shape)
    weights = softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """`(B, n, d_model) -> (B, h, n, d_k)` with `d_k = d_model / h`.

    `view` cuts each token's row into h pieces of d_k; `transpose(1, 2)` then brings the
    head dimension in front of the tokens, so each head is a separate `(n, d_k)` matrix.
    """
    require_tensor("x", x)
    if x.ndim != 3:
        raise ValueError(f"x: expected shape (B, n, d_model), got {format_shape(x.shape)}")
    require_int("num_heads", num_heads)
    batch, n, d_model = x.shape
    if d_model % num_heads:
        raise ValueError(f"d_model = {d_model} is not divisible by num_heads = {num_heads}")
    return x.view(batch, n, num_heads, d_model // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """`(B, h, n, d_k) -> (B, n, h·d_k)`: the inverse of `split_heads`.

    `transpose` makes the tensor non-contiguous in memory, so `reshape` (which copies when
    it must) is used rather than `view`.
    """
    require_tensor("x", x)
    if x.ndim != 4:
        raise ValueError(f"x: expected shape (B, h, n, d_k), got {format_shape(x.shape)}")
    batch, num_heads, n, d_k = x.shape
    return x.transpose(1, 2).reshape(batch, n, num_heads * d_k)


class MultiHeadAttention(nn.Module):
    """Multi-head attention, batch-first (notebook 05).

    Each of the h heads attends in its own d_k = d_model / h dimensional subspace; the
    heads' outputs are concatenated and mixed by W_O. The four projections are
    `nn.Linear(d_model, d_model)`: one fused W_Q equals h per-head W_Q's side by side.

    `forward(query (B, n_q, d_model), key (B, n_k, d_model), value (B, n_k, d_model),
    mask=None) -> (output (B, n_q, d_model), weights (B, h, n_q, n_k))`. The boolean mask
    (True = may attend) may be `(n_q, n_k)`, `(B, 1 or n_q, n_k)` or `(B, 1 or h, 1 or n_q, n_k)`.

    In train(), dropout drops the copy of the weights that multiplies V; the weights returned are
    the softmax's, before dropout (torch's nn.MultiheadAttention returns them after dropout).
    """

    def __init__(self, d_model: int, num_heads: int, bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        require_int("num_heads", num_heads)
        if d_model < 1 or d_model % num_heads:
            raise ValueError(f"d_model = {d_model} must be a positive multiple of num_heads = {num_heads}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.W_q = nn.Linear(d_model, d_model, bias=bias)
        self.W_k = nn.Linear(d_model, d_model, bias=bias)
        self.W_v = nn.Linear(d_model, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        for name, x in (("query", query), ("key", key), ("value", value)):
            require_activations(name, x, self.d_model)
        require_same_size("key", key, 1, "value", value, 1, "n_k (one value per key)")
        q = split_heads(self.W_q(query), self.num_heads)  # (B, h, n_q, d_k)
        k = split_heads(self.W_k(key), self.num_heads)  # (B, h, n_k, d_k)
        v = split_heads(self.W_v(value), self.num_heads)  # (B, h, n_k, d_k)
        return self.attend(q, k, v, mask)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The heads' attention, merged and mixed by W_O: what `forward` does after the projections.

        `q (B, h, n_q, d_k)`, `k` and `v (B, h, n_k, d_k)` -> `(output (B, n_q, d_model), weights
        (B, h, n_q, n_k))`. The KV-cache decoder calls it with keys and values computed earlier.
        """
        if mask is not None and mask.ndim == 3:
            mask = mask.unsqueeze(1)  # (B, n_q, n_k) -> (B, 1, n_q, n_k): the same for every head
        weights = attention_weights(q, k, mask)  # (B, h, n_q, n_k)
        heads = self.dropout(weights) @ v  # (B, h, n_q, d_k)
        return self.W_o(merge_heads(heads)), weights

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> MultiHeadAttention:
        """A copy of a `torch.nn.MultiheadAttention(batch_first=True)` with the same weights."""
        if not isinstance(module, nn.MultiheadAttention):
            raise TypeError(f"expected torch.nn.MultiheadAttention, got {type(module).__name__}")
        if not module.batch_first or not module._qkv_same_embed_dim or module.bias_k is not None:
            raise ValueError(
                "from_torch copies nn.MultiheadAttention(d_model, num_heads, batch_first=True) with "
                "kdim = vdim = d_model and add_bias_kv=False"
            )
        bias = module.in_proj_bias is not None
        copy = cls(module.embed_dim, module.num_heads, bias=bias, dropout=module.dropout)
        copy = copy.to(device=module.in_proj_weight.device, dtype=module.in_proj_weight.dtype)
        w_q, w_k, w_v = module.in_proj_weight.detach().chunk(3)
        with torch.no_grad():
            for linear, weight in ((copy.W_q, w_q), (copy.W_k, w_k), (copy.W_v, w_v)):
                linear.weight.copy_(weight)
            copy.W_o.weight.copy_(module.out_proj.weight)
            if bias:
                b_q, b_k, b_v = module.in_proj_bias.detach().chunk(3)
                for linear, b in ((copy.W_q, b_q), (copy.W_k, b_k), (copy.W_v, b_v)):
                    linear.bias.copy_(b)
                copy.W_o.bias.copy_(module.out_proj.bias)
        return copy.train(module.training)
