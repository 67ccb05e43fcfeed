"""Checks of notebook 05: splitting and merging heads, and the multi-head forward pass."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from helpers.attention import attention_weights, causal_mask, merge_heads, padding_mask, softmax, split_heads
from helpers.checks.core import EXACT, Case, Mistake, check, generator, randn

VIEW_WITHOUT_TRANSPOSE = (
    "you reshaped straight to (B, h, n, d_k): each 'head' then holds slices of different tokens. "
    "View as (B, n, h, d_k) first, then transpose(1, 2)."
)

SPLIT_MISTAKES = [
    Mistake(VIEW_WITHOUT_TRANSPOSE, lambda x, h: x.reshape(x.shape[0], h, x.shape[1], -1)),
    Mistake("the head dimension must come before the tokens: add .transpose(1, 2) after the view.",
            lambda x, h: x.reshape(x.shape[0], x.shape[1], h, -1)),
    Mistake("you split d_model as (d_k, h), so head j gets every h-th column; head j owns the contiguous "
            "block of columns j·d_k ... (j+1)·d_k - 1: view as (B, n, h, d_k).",
            lambda x, h: x.reshape(x.shape[0], x.shape[1], -1, h).permute(0, 3, 1, 2)),
    Mistake("you split into h heads of size h; each head has size d_k = d_model / h.",
            lambda x, h: x.reshape(x.shape[0], x.shape[1], -1, h).transpose(1, 2)),
]


@check(reference=split_heads, mistakes=SPLIT_MISTAKES,
       passed="{cases} cases: shapes (B, n, d_model) -> (B, h, n, d_k), values in the right heads.")
def check_split_heads() -> Iterator[Case]:
    """Check `split_heads(x, num_heads)`: `(B, n, d_model) -> (B, h, n, d_k)`."""
    # d_k, h and n all differ so that mixed-up dimensions change the shape or the values.
    for seed, (shape, heads, dtype) in enumerate(
            [((2, 5, 12), 3, torch.float32), ((3, 7, 8), 2, torch.float64), ((1, 4, 6), 6, torch.float32)]):
        yield Case(f"x of shape {shape} with num_heads={heads}", (randn(generator(seed), *shape, dtype=dtype), heads),
                   tolerance=EXACT)


MERGE_MISTAKES = [
    Mistake("you reshaped without moving the heads back behind the tokens: transpose(1, 2) first, "
            "then reshape to (B, n, h·d_k).", lambda x: x.reshape(x.shape[0], x.shape[2], -1)),
    Mistake("you flattened (d_k, h) instead of (h, d_k): the heads' outputs must sit side by side, "
            "head 0's d_k columns first.", lambda x: x.permute(0, 2, 3, 1).reshape(x.shape[0], x.shape[2], -1)),
    Mistake("you moved the heads behind the tokens but did not flatten them: reshape to (B, n, h·d_k).",
            lambda x: x.transpose(1, 2)),
    Mistake("after transpose the tensor is not contiguous in memory: call .contiguous() before .view, "
            "or use .reshape.", lambda x: x.transpose(1, 2).view(x.shape[0], x.shape[2], -1), crashes=True),
]


@check(reference=merge_heads, mistakes=MERGE_MISTAKES,
       passed="{cases} cases, including merge_heads(split_heads(x)) == x.")
def check_merge_heads() -> Iterator[Case]:
    """Check `merge_heads(x)`: `(B, h, n, d_k) -> (B, n, h·d_k)`, the inverse of `split_heads`."""
    for seed, (shape, dtype) in enumerate(
            [((2, 3, 5, 4), torch.float32), ((3, 2, 7, 4), torch.float64), ((1, 6, 4, 1), torch.float32)]):
        yield Case(f"x of shape {shape}", (randn(generator(10 + seed), *shape, dtype=dtype),), tolerance=EXACT)
    x = randn(generator(20), 2, 12, 5).reshape(2, 5, 12)
    yield Case("merge_heads(split_heads(x, 3))", (split_heads(x, 3),), tolerance=EXACT)


def _mha(query: Tensor, key: Tensor, value: Tensor, W_q: Tensor, W_k: Tensor, W_v: Tensor, W_o: Tensor, heads: int,
         mask: Tensor | None = None, *, by_d_model: bool = False, wo: bool = True, transpose_split: bool = True,
         transpose_merge: bool = True, mask_mode: str = "right", softmax_dim: int = -1) -> tuple[Tensor, Tensor]:
    """Multi-head attention with switches that reproduce the typical mistakes."""
    def split(x: Tensor) -> Tensor:
        return split_heads(x, heads) if transpose_split else x.reshape(x.shape[0], heads, x.shape[1], -1)

    q, k, v = split(query @ W_q), split(key @ W_k), split(value @ W_v)
    m = mask.unsqueeze(1) if mask is not None and mask.ndim == 3 else mask
    if not by_d_model and softmax_dim == -1:
        chosen = {"right": m, "inverted": None if m is None else ~m, "ignored": None}[mask_mode]
        weights = attention_weights(q, k, chosen)
    else:
        scores = q @ k.transpose(-2, -1) / math.sqrt(query.shape[-1] if by_d_model else q.shape[-1])
        if m is not None:
            scores = scores.masked_fill(~m, float("-inf"))
        weights = softmax(scores, dim=softmax_dim)
    out = weights @ v
    merged = merge_heads(out) if transpose_merge else out.reshape(query.shape[0], query.shape[1], -1)
    return (merged @ W_o if wo else merged), weights


def _mha_mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, lambda *args: _mha(*args, **switches))  # type: ignore[arg-type]


MHA_MISTAKES = [
    _mha_mistake("you left out the output projection W_O: multiply the merged heads by W_o.", wo=False),
    _mha_mistake(VIEW_WITHOUT_TRANSPOSE, transpose_split=False),
    _mha_mistake("when merging, transpose the heads back behind the tokens before reshaping.", transpose_merge=False),
    _mha_mistake("you scaled by √d_model; each head's scores are scaled by √d_k = √(d_model / h).", by_d_model=True),
    _mha_mistake("softmax must run over the keys (dim=-1): each query's weights sum to 1.", softmax_dim=-2),
    _mha_mistake("the mask was ignored: set the scores where mask is False to -inf before the softmax.",
                 mask_mode="ignored"),
    _mha_mistake("the mask is inverted: True means 'may attend', so fill where the mask is False (~mask).",
                 mask_mode="inverted"),
    Mistake("return the weights of every head, shape (B, h, n_q, n_k), not their average.",
            lambda *args: (_mha(*args)[0], _mha(*args)[1].mean(dim=1))),
]


@check(reference=_mha, mistakes=MHA_MISTAKES, returns=("output", "weights"),
       shown={"output": "the output", "weights": "the weights tensor"}, compare_first=("weights",),
       passed="{cases} cases: cross- and self-attention, causal and padding masks, float32 and float64.")
def check_multi_head_attention() -> Iterator[Case]:
    """Check `multi_head_attention(query, key, value, W_q, W_k, W_v, W_o, num_heads, mask=None)`.

    query `(B, n_q, d_model)`, key and value `(B, n_k, d_model)`, each W `(d_model, d_model)`;
    returns `output (B, n_q, d_model)` and per-head `weights (B, h, n_q, n_k)`.
    """
    d_model, heads = 12, 3
    padding = padding_mask(torch.tensor([[1, 2, 3, 4, 0, 0], [1, 2, 3, 4, 5, 6]]), pad_id=0)
    for seed, (name, n_q, n_k, mask, dtype) in enumerate([
        ("cross-attention: 5 queries, 7 keys", 5, 7, None, torch.float32),
        ("self-attention with a causal mask", 6, 6, causal_mask(6), torch.float32),
        ("cross-attention with a padding mask (B, 1, n_k)", 4, 6, padding, torch.float64),
    ]):
        g = generator(30 + seed)
        inputs = [randn(g, 2, n, d_model, dtype=dtype) for n in (n_q, n_k, n_k)]
        weights = [randn(g, d_model, d_model, dtype=dtype) / math.sqrt(d_model) for _ in range(4)]
        yield Case(name, (*inputs, *weights, heads, mask))
