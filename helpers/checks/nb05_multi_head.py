"""Checks for notebook 05: splitting and merging heads, and the multi-head forward pass."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor

from helpers.attention import attention_weights, causal_mask, merge_heads, padding_mask, softmax, split_heads
from helpers.checks.core import CheckResult, Failure, Probe, run_check

VIEW_WITHOUT_TRANSPOSE = (
    "you reshaped straight to (B, h, n, d_k): each 'head' then holds slices of different tokens. "
    "View as (B, n, h, d_k) first, then transpose(1, 2)."
)
FORGOT_TRANSPOSE = "the head dimension must come before the tokens: add .transpose(1, 2) after the view."
INTERLEAVED = (
    "you split d_model as (d_k, h), so head j gets every h-th column; head j owns the contiguous "
    "block of columns j·d_k ... (j+1)·d_k - 1: view as (B, n, h, d_k)."
)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def check_split_heads(candidate: object) -> CheckResult:
    """Check `split_heads(x, num_heads)`: `(B, n, d_model) -> (B, h, n, d_k)`."""

    def body(probe: Probe) -> str:
        # d_k, h and n all differ so that mixed-up dimensions change the shape or the values.
        for seed, (shape, heads, dtype) in enumerate(
            [((2, 5, 12), 3, torch.float32), ((3, 7, 8), 2, torch.float64), ((1, 4, 6), 6, torch.float32)]
        ):
            x = torch.randn(shape, generator=_generator(seed), dtype=dtype)
            batch, n, d_model = shape
            d_k = d_model // heads
            mistakes = [
                (VIEW_WITHOUT_TRANSPOSE, lambda x=x, b=batch, n=n, h=heads, d=d_k: x.reshape(b, h, n, d)),
                (FORGOT_TRANSPOSE, lambda x=x, b=batch, n=n, h=heads, d=d_k: x.reshape(b, n, h, d)),
                (INTERLEAVED, lambda x=x, b=batch, n=n, h=heads, d=d_k: x.reshape(b, n, d, h).permute(0, 3, 1, 2)),
                ("you split into h heads of size h; each head has size d_k = d_model / h.",
                 lambda x=x, b=batch, n=n, h=heads, d=d_k: x.reshape(b, n, d, h).transpose(1, 2)),
            ]
            case = f"x of shape {shape} with num_heads={heads}"
            probe.expect_close(probe.call(x, heads), split_heads(x, heads), case, mistakes, rtol=0, atol=0)
        return f"{probe.cases} cases: shapes (B, n, d_model) -> (B, h, n, d_k), values in the right heads."

    return run_check("split_heads", candidate, body)


def check_merge_heads(candidate: object) -> CheckResult:
    """Check `merge_heads(x)`: `(B, h, n, d_k) -> (B, n, h·d_k)`, the inverse of `split_heads`."""

    def body(probe: Probe) -> str:
        for seed, (shape, dtype) in enumerate(
            [((2, 3, 5, 4), torch.float32), ((3, 2, 7, 4), torch.float64), ((1, 6, 4, 1), torch.float32)]
        ):
            x = torch.randn(shape, generator=_generator(10 + seed), dtype=dtype)
            batch, heads, n, d_k = shape
            mistakes = [
                ("you reshaped without moving the heads back behind the tokens: transpose(1, 2) first, "
                 "then reshape to (B, n, h·d_k).", lambda x=x, b=batch, n=n: x.reshape(b, n, -1)),
                ("you flattened (d_k, h) instead of (h, d_k): the heads' outputs must sit side by side, "
                 "head 0's d_k columns first.", lambda x=x, b=batch, n=n: x.permute(0, 2, 3, 1).reshape(b, n, -1)),
                ("you moved the heads behind the tokens but did not flatten them: reshape to (B, n, h·d_k).",
                 lambda x=x: x.transpose(1, 2)),
            ]
            result = probe.call(x)
            probe.expect_close(result, merge_heads(x), f"x of shape {shape}", mistakes, rtol=0, atol=0)
        x = torch.randn(2, 12, 5, generator=_generator(20)).reshape(2, 5, 12)
        round_trip = probe.call(split_heads(x, 3))
        probe.expect_close(round_trip, x, "merge_heads(split_heads(x, 3))", rtol=0, atol=0)
        return f"{probe.cases} cases, including merge_heads(split_heads(x)) == x."

    def guarded(probe: Probe) -> str:
        try:
            return body(probe)
        except Failure as failure:
            if "view size is not compatible" in failure.summary:
                raise Failure(failure.summary, "after transpose the tensor is not contiguous in memory: "
                              "call .contiguous() before .view, or use .reshape.") from None
            raise

    return run_check("merge_heads", candidate, guarded)


def _reference_mha(query, key, value, W_q, W_k, W_v, W_o, heads, mask=None, *, scale=None, wo=True,
                   transpose_split=True, transpose_merge=True, mask_mode="right", softmax_dim=-1):
    """Multi-head attention with switches that reproduce the typical mistakes."""
    def split(x: Tensor) -> Tensor:
        b, n, d = x.shape
        if transpose_split:
            return split_heads(x, heads)
        return x.reshape(b, heads, n, d // heads)

    q, k, v = split(query @ W_q), split(key @ W_k), split(value @ W_v)
    m = mask.unsqueeze(1) if mask is not None and mask.ndim == 3 else mask
    d_k = q.shape[-1]
    if scale is None and softmax_dim == -1:
        chosen = {"right": m, "inverted": None if m is None else ~m, "ignored": None}[mask_mode]
        weights = attention_weights(q, k, chosen)
    else:
        scores = q @ k.transpose(-2, -1) / math.sqrt(scale or d_k)
        if m is not None:
            scores = scores.masked_fill(~m, float("-inf"))
        weights = softmax(scores, dim=softmax_dim)
    heads_out = weights @ v
    if transpose_merge:
        merged = merge_heads(heads_out)
    else:
        merged = heads_out.reshape(query.shape[0], query.shape[1], -1)
    return (merged @ W_o if wo else merged), weights


def check_multi_head_attention(candidate: object) -> CheckResult:
    """Check `multi_head_attention(query, key, value, W_q, W_k, W_v, W_o, num_heads, mask=None)`.

    query `(B, n_q, d_model)`, key and value `(B, n_k, d_model)`, each W `(d_model, d_model)`;
    returns `output (B, n_q, d_model)` and per-head `weights (B, h, n_q, n_k)`.
    """

    def body(probe: Probe) -> str:
        d_model, heads = 12, 3
        cases = [
            ("cross-attention: 5 queries, 7 keys", 5, 7, None, torch.float32),
            ("self-attention with a causal mask", 6, 6, "causal", torch.float32),
            ("cross-attention with a padding mask (B, 1, n_k)", 4, 6, "padding", torch.float64),
        ]
        for seed, (case, n_q, n_k, mask_kind, dtype) in enumerate(cases):
            g = _generator(30 + seed)
            query = torch.randn(2, n_q, d_model, generator=g, dtype=dtype)
            key = torch.randn(2, n_k, d_model, generator=g, dtype=dtype)
            value = torch.randn(2, n_k, d_model, generator=g, dtype=dtype)
            Ws = [torch.randn(d_model, d_model, generator=g, dtype=dtype) / math.sqrt(d_model) for _ in range(4)]
            mask = None
            if mask_kind == "causal":
                mask = causal_mask(n_q)
            elif mask_kind == "padding":
                mask = padding_mask(torch.tensor([[1, 2, 3, 4, 0, 0], [1, 2, 3, 4, 5, 6]]), pad_id=0)
            args = (query, key, value, *Ws, heads, mask)
            result = probe.call(*args)
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise Failure(f"On {case}: your function returned a {type(result).__name__}, "
                              "expected a tuple (output, weights).",
                              "return both the output and the per-head attention weights: `return out, weights`.")
            out, weights = result
            expected_out, expected_weights = _reference_mha(*args)

            def wrong(args: tuple = args, **switches: object) -> Callable[[], tuple[Tensor, Tensor]]:
                return partial(_reference_mha, *args, **switches)

            mistakes = [
                ("you left out the output projection W_O: multiply the merged heads by W_o.", wrong(wo=False)),
                (VIEW_WITHOUT_TRANSPOSE, wrong(transpose_split=False)),
                ("when merging, transpose the heads back behind the tokens before reshaping.",
                 wrong(transpose_merge=False)),
                ("you scaled by √d_model; each head's scores are scaled by √d_k = √(d_model / h).",
                 wrong(scale=d_model)),
                ("softmax must run over the keys (dim=-1): each query's weights sum to 1.", wrong(softmax_dim=-2)),
                ("the mask was ignored: set the scores where mask is False to -inf before the softmax.",
                 wrong(mask_mode="ignored")),
                ("the mask is inverted: True means 'may attend', so fill where the mask is False (~mask).",
                 wrong(mask_mode="inverted")),
            ]
            output_mistakes = [(hint, lambda f=f: f()[0]) for hint, f in mistakes]
            weight_mistakes = [(hint, lambda f=f: f()[1]) for hint, f in mistakes]
            weight_mistakes.append(("return the weights of every head, shape (B, h, n_q, n_k), not their average.",
                                    lambda w=expected_weights: w.mean(dim=1)))
            probe.expect_close(weights, expected_weights, case, weight_mistakes, what="the weights tensor")
            probe.expect_close(out, expected_out, case, output_mistakes, what="the output")
        return f"{probe.cases // 2} cases: cross- and self-attention, causal and padding masks, float32 and float64."

    return run_check("multi_head_attention", candidate, body)
