"""Checks of notebook 04's exercises: `softmax`, `padding_mask`, `causal_mask`, `scaled_dot_product_attention`.

Decisions a student may run into (each is also written in the hint the check gives):

- **softmax, global maximum.** Subtracting the maximum of the *whole tensor* instead of each
  row's maximum is mathematically correct (any constant cancels), so it passes wherever it
  gives the right numbers, including inputs of magnitude 1e4 whose rows sit at similar levels.
  It fails only on the case whose rows sit ~1e4 apart: there a whole row underflows to
  `exp(-1e4) = 0` and the row becomes 0/0 = NaN; the hint says why.
- **attention, large finite negative fill.** Filling masked scores with a large finite number
  (-1e9, `torch.finfo(dtype).min`) instead of `-inf` passes: `exp` of it is 0 to the last bit.
  The one place it differs is a query whose keys are *all* masked: a constant row gets
  uniform weights, where the course (like torch) gives zero weights and a zero output.
- **attention, fully masked rows.** The last case has queries with nothing to attend to; the
  exercise asks for zero weights and zero output there (`helpers.attention`'s documented
  choice, the same as `torch.nn.functional.scaled_dot_product_attention`), never NaN.
- **attention, renormalising.** Zeroing masked weights after the softmax *and dividing by the
  new row sum* is correct and passes; zeroing without renormalising is the classic bug.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from helpers.attention import causal_mask, padding_mask, scaled_dot_product_attention, softmax
from helpers.checks.core import Case, Clue, Kind, Mistake, check, generator, randn

NEG_INF = float("-inf")

# ---- softmax(x, dim=-1) ---------------------------------------------------------------------------

UNSTABLE = (
    "your softmax overflows at magnitude 1e4: exp(1e4) is inf (in float32 and float64 alike) and "
    "inf / inf = NaN, while exp(-1e4) is 0 and 0 / 0 = NaN. Subtract each row's maximum (along dim) "
    "before exponentiating: it changes nothing mathematically (the factor e^(-max) cancels between "
    "numerator and denominator) and makes the largest exponent exp(0) = 1."
)


def _naive_softmax(x: Tensor, dim: int) -> Tensor:
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def _other_dim(x: Tensor, dim: int) -> int:
    return 0 if dim % x.ndim != 0 else x.ndim - 1


SOFTMAX_MISTAKES = [
    Mistake(UNSTABLE, _naive_softmax),
    Mistake("you subtracted the maximum of the whole tensor, not of each row. That is correct on paper, "
            "but a row that sits ~1e4 below the global maximum underflows to exp(-1e4) = 0 everywhere and "
            "becomes 0 / 0 = NaN. Subtract each row's own maximum, taken along dim.",
            lambda x, dim=-1: _naive_softmax(x - x.max(), dim)),
    Mistake("you exponentiated but did not normalise: divide by the sum along dim so that each row sums to 1.",
            lambda x, dim=-1: torch.exp(x)),
    Mistake("you exponentiated (after subtracting the maximum) but did not normalise: divide by the sum "
            "along dim so that each row sums to 1.", lambda x, dim=-1: torch.exp(x - x.amax(dim=dim, keepdim=True))),
    Mistake("you divided by the sum of the whole tensor: normalise by the sum along `dim` only, so that "
            "each row sums to 1.",
            lambda x, dim=-1: torch.exp(x) / torch.exp(x).sum()),
    Mistake("you took the softmax along the first dimension (dim=0): use the `dim` argument "
            "(the default -1 is the last dimension, one row per query).", lambda x, dim=-1: torch.softmax(x, dim=0)),
    Mistake("you ignored the `dim` argument and always used the last dimension: every reduction (the "
            "maximum, the sum) runs along `dim`.", lambda x, dim=-1: torch.softmax(x, dim=-1)),
    Mistake("you took the softmax along the wrong dimension: use the `dim` argument for the max and the sum.",
            lambda x, dim=-1: torch.softmax(x, dim=-2)),
    Mistake("you subtracted the maximum along another dimension than the one you summed over: a shift "
            "cancels only if it is constant along `dim`, so take the max along `dim` too.",
            lambda x, dim=-1: _naive_softmax(x - x.amax(dim=_other_dim(x, dim), keepdim=True), dim)),
    Mistake("`x.max(dim=...)` returns a pair (values, indices), not a tensor: take its values, or use "
            "`amax`, which returns only the maxima.",
            lambda x, dim=-1: torch.exp(x - x.max(dim=dim, keepdim=True)), crashes=True),
    Mistake("the row maximum or the row sum lost its dimension and no longer lines up with x: reduce with "
            "keepdim=True, which keeps it as a dimension of size 1 that broadcasts back.",
            lambda x, dim=-1: x - x.amax(dim=dim), crashes=True),
]

SOFTMAX_IN_PLACE = (
    "softmax must not change its input: `x -= x.amax(...)`, `x.sub_(...)` or `x.exp_()` overwrite "
    "the caller's tensor (the attention scores, later). Compute new tensors instead: "
    "`shifted = x - ...` leaves `x` alone."
)


@check(reference=lambda x, dim=-1: softmax(x.to(torch.float64), dim=dim).to(x.dtype), mistakes=SOFTMAX_MISTAKES,
       hints={Kind.IN_PLACE: SOFTMAX_IN_PLACE},
       passed="{cases} cases: batches along any dim, float32 and float64, -inf entries, "
              "and inputs of magnitude 1e4 without overflow.")
def check_softmax() -> Iterator[Case]:
    """Check `softmax(x, dim=-1)`: numerically stable, along `dim`, leaves `x` alone."""
    g = generator(4)
    with_inf = randn(g, 3, 6) * 2
    with_inf[0, 4:] = NEG_INF
    with_inf[2, :5] = NEG_INF
    # Near 1e4 a float32 input has a resolution of ~1e-3, so implementations that are equally
    # stable (max subtraction, logsumexp) differ by up to ~1e-3 relative: a looser tolerance.
    large = dict(hint=UNSTABLE, tolerance=(2e-3, 1e-4))
    yield Case("a (2, 3, 5) batch, dim=-1", (randn(g, 2, 3, 5) * 2, -1))
    yield Case("a (2, 4, 3) batch, dim=1", (randn(g, 2, 4, 3) * 2, 1))
    yield Case("a (4, 6) matrix, dim=0 (softmax down each column)", (randn(g, 4, 6) * 2, 0))
    yield Case("a (3, 7) matrix in float64, default dim", (randn(g, 3, 7, dtype=torch.float64) * 3,))
    yield Case("a single vector of length 5, default dim", (randn(g, 5),))
    yield Case("scores with some -inf entries (masked keys), dim=-1", (with_inf, -1))
    yield Case("inputs of magnitude 1e4 (every entry near +1e4), dim=-1", (1e4 + randn(g, 2, 3, 6) * 3, -1), **large)
    yield Case("inputs of magnitude 1e4 (every entry near -1e4), dim=-1", (-1e4 + randn(g, 3, 6) * 3, -1), **large)
    levels = torch.tensor([1e4, 0.0, -1e4]).reshape(1, 3, 1)
    yield Case("a batch whose rows sit near +1e4, 0 and -1e4, dim=-1", (levels + randn(g, 2, 3, 6) * 3, -1), **large)


# ---- scaled_dot_product_attention(q, k, v, mask=None) -> (output, weights) --------------------------

def _scores(q: Tensor, k: Tensor, factor: float | None = None) -> Tensor:
    return q @ k.transpose(-2, -1) * (1 / math.sqrt(q.shape[-1]) if factor is None else factor)


def _attending(weights: Callable[[Tensor, Tensor, Tensor], Tensor]) -> Callable[..., tuple[Tensor, Tensor]]:
    """A wrong attention from wrong weights `weights(q, k, v)` (the mask unused)."""
    def wrong(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        w = weights(q, k, v)
        return w @ v, w
    return wrong


def _masking(weights: Callable[[Tensor, Tensor], Tensor]) -> Callable[..., tuple[Tensor, Tensor]]:
    """A wrong attention from masked weights `weights(scores, mask)`; right where there is no mask."""
    def wrong(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if mask is None:
            return scaled_dot_product_attention(q, k, v)
        w = weights(_scores(q, k), mask)
        return w @ v, w
    return wrong


def _boolean_index(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    if mask is None:
        return scaled_dot_product_attention(q, k, v)
    scores = _scores(q, k)
    scores[~mask] = NEG_INF  # raises for a mask that broadcasts, as the learner's would
    return scaled_dot_product_attention(q, k, v, mask)


def _softmax_over(dim: int) -> Callable[..., tuple[Tensor, Tensor]]:
    return _attending(lambda q, k, v: torch.softmax(_scores(q, k), dim=dim))


INVERTED = ("your mask is inverted: True = may attend (as in torch), so the scores to hide are those where "
            "the mask is False.")
AXIS = ("you took the softmax over the wrong axis, dim={}: each query's weights over the keys must sum to 1, "
        "so use dim=-1.")

ATTENTION_MISTAKES = [
    Mistake("you did not scale the scores: divide Q Kᵀ by √d_k before the softmax (notebook 03).",
            _attending(lambda q, k, v: torch.softmax(_scores(q, k, 1.0), dim=-1))),
    Mistake("you divided the scores by d_k; divide by its square root, √d_k.",
            _attending(lambda q, k, v: torch.softmax(_scores(q, k, 1 / q.shape[-1]), dim=-1))),
    Mistake("you divided by √d_v (the values' width); the scale is √d_k, the width of queries and keys: "
            "the last dimension of q, not of v.",
            _attending(lambda q, k, v: torch.softmax(_scores(q, k, 1 / math.sqrt(v.shape[-1])), dim=-1))),
    Mistake("you multiplied the scores by √d_k; divide by it.",
            _attending(lambda q, k, v: torch.softmax(_scores(q, k, math.sqrt(q.shape[-1])), dim=-1))),
    Mistake("you forgot the softmax: the weights are softmax(Q Kᵀ / √d_k), so that each row sums to 1.",
            _attending(lambda q, k, v: _scores(q, k))),
    Mistake("you computed K Qᵀ: the scores are Q Kᵀ, one row per query, one column per key.",
            _attending(lambda q, k, v: torch.softmax(_scores(k, q, 1 / math.sqrt(q.shape[-1])), dim=-1))),
    Mistake(AXIS.format("-2 (over the queries)"), _softmax_over(-2)),
    Mistake(AXIS.format("0 (a batch dimension)"), _softmax_over(0)),
    Mistake(AXIS.format("1 (a batch dimension)"), _softmax_over(1)),
    Mistake("you applied the mask after the softmax by zeroing weights: the rows no longer sum to 1, and "
            "the masked keys still counted in the normalisation. Put -inf in the masked scores *before* "
            "the softmax (masked_fill does that on a copy).",
            _masking(lambda s, mask: torch.softmax(s, dim=-1) * mask)),
    Mistake("you ignored the mask: set the scores where mask is False to -inf before the softmax.",
            _masking(lambda s, mask: torch.softmax(s, dim=-1))),
    Mistake(INVERTED, lambda q, k, v, mask=None: scaled_dot_product_attention(q, k, v,
                                                                              None if mask is None else ~mask)),
    Mistake(INVERTED, _masking(lambda s, mask: torch.softmax(s.masked_fill(mask, NEG_INF), dim=-1))),
    Mistake("you set the masked scores to 0, but exp(0) = 1 still gives them weight: set them to -inf "
            "(`float('-inf')`), whose exp is exactly 0.", _masking(lambda s, mask: torch.softmax(
                s.masked_fill(~mask, 0.0), dim=-1))),
    Mistake("a query whose keys are all masked has nothing to attend to: softmax of a row of -inf is 0 / 0 = NaN. "
            "Give such rows zero weights (and so a zero output), as torch does: find the rows whose mask has no "
            "True at all, or replace the NaN.",
            _masking(lambda s, mask: torch.softmax(s.masked_fill(~mask, NEG_INF), dim=-1))),
    Mistake("you filled masked scores with a large finite number instead of -inf. That is fine for ordinary rows, "
            "but a query whose keys are all masked then gets uniform weights 1/n_k over keys it must not see. "
            "Give such rows (their mask has no True at all) zero weights, and so a zero output.",
            _masking(lambda s, mask: torch.softmax(s.masked_fill(~mask, -1e9), dim=-1))),
    Mistake("you multiplied the weights by K; the output is a weighted average of the *value* rows.",
            lambda q, k, v, mask=None: (scaled_dot_product_attention(q, k, v, mask)[1] @ k,
                                        scaled_dot_product_attention(q, k, v, mask)[1])),
    Mistake("you swapped them: return `(output, weights)`, output first.",
            lambda q, k, v, mask=None: scaled_dot_product_attention(q, k, v, mask)[::-1]),
    Mistake("`scores[~mask] = ...` needs a mask of exactly the scores' shape (and writes in place). Masks here "
            "broadcast, e.g. (B, 1, 1, n_k) against (B, h, n_q, n_k): use an operation that broadcasts the mask "
            "and returns a new tensor, masked_fill or torch.where.",
            _boolean_index, crashes=True),
]


def _one_sequence(case: Case, got: object) -> Iterator[Case]:
    q, k, v = case.args[:3]
    if q.ndim > 2:
        yield Case("one sequence", tuple(t.reshape(-1, *t.shape[-2:])[0] for t in (q, k, v)))


ON_ONE_SEQUENCE = Clue(
    "your function works on a single sequence (2-D) but not on a batch. `.T` and `.t()` reverse or reject "
    "every dimension of a 3-D or 4-D tensor; swap only the last two, and count every other dimension "
    "from the end (dim=-1).", _one_sequence)


@check(reference=scaled_dot_product_attention, mistakes=ATTENTION_MISTAKES, clues=[ON_ONE_SEQUENCE],
       returns=("output", "weights"), shown={"output": "the output", "weights": "the weights tensor"},
       compare_first=("weights",),
       passed="{comparisons} comparisons: batch and head dimensions, n_q ≠ n_k, d_k ≠ d_v, padding, causal "
              "and random masks, float64, and fully masked queries (zero weights, zero output).")
def check_scaled_dot_product_attention() -> Iterator[Case]:
    """Check `scaled_dot_product_attention(q, k, v, mask=None) -> (output, weights)`.

    Batched first (batch and head dimensions, n_q != n_k, d_k != d_v), then masks (padding,
    causal, random, float64), then queries with nothing to attend to (zero weights, zero output).
    """
    g = generator(4)
    padding = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool).reshape(2, 1, 1, 5)
    random_mask = torch.rand(2, 4, 5, generator=g) > 0.5
    random_mask[..., 0] |= ~random_mask.any(dim=-1)  # every query keeps at least one key
    empty_rows = torch.rand(2, 3, 4, generator=g) > 0.3
    empty_rows[..., 1] = True
    empty_rows[0, 1] = False  # query 1 of sequence 0 may attend to nothing
    empty_rows[1] = False  # sequence 1 is all padding
    f64 = torch.float64
    yield Case("a batch of 2 × 3 heads, n_q=4 queries, n_k=5 keys, d_k=6, d_v=7, no mask",
               (randn(g, 2, 3, 4, 6), randn(g, 2, 3, 5, 6), randn(g, 2, 3, 5, 7)))
    yield Case("the same shapes with a padding mask of shape (2, 1, 1, 5)",
               (randn(g, 2, 3, 4, 6), randn(g, 2, 3, 5, 6), randn(g, 2, 3, 5, 7), padding))
    yield Case("self-attention on a (2, 5, 6) batch, d_v=7, with a (5, 5) causal mask",
               (randn(g, 2, 5, 6), randn(g, 2, 5, 6), randn(g, 2, 5, 7), causal_mask(5)))
    yield Case("one sequence (2-D): n_q=3, n_k=4, d_k=6, d_v=7, mask=None",
               (randn(g, 3, 6), randn(g, 4, 6), randn(g, 4, 7), None))
    yield Case("a float64 batch (2, 4, 6) with a random (2, 4, 5) mask, d_v=3",
               (randn(g, 2, 4, 6, dtype=f64), randn(g, 2, 5, 6, dtype=f64), randn(g, 2, 5, 3, dtype=f64), random_mask))
    yield Case("queries whose keys are all masked (mask (2, 3, 4) with empty rows)",
               (randn(g, 2, 3, 6), randn(g, 2, 4, 6), randn(g, 2, 4, 7), empty_rows))


# ---- causal_mask(n) -------------------------------------------------------------------------------

def _ones(n: int) -> Tensor:
    return torch.ones(n, n, dtype=torch.bool)


CAUSAL_MISTAKES = [
    Mistake("your mask is inverted: it is True above the diagonal, marking the positions to *hide* (the convention "
            "of some older code). In this course, as in torch, True = may attend: True on and below the "
            "diagonal.", lambda n: _ones(n).triu(1)),
    Mistake("you kept the upper triangle: token i may attend to tokens 0..i, which lie on and below the "
            "diagonal (the lower triangle).", lambda n: _ones(n).triu()),
    Mistake("you left out the diagonal: a token may attend to itself, so the diagonal is True too.",
            lambda n: _ones(n).tril(-1)),
    Mistake("your mask lets every token attend to every position, future included: keep only the lower "
            "triangle.", _ones),
    Mistake("your mask hides everything: True = may attend, on and below the diagonal.",
            lambda n: torch.zeros(n, n, dtype=torch.bool)),
    *(Mistake("the pattern is right, but masks are boolean: return dtype torch.bool; masked_fill and "
              "torch's attention treat a float mask as numbers to add, not as True/False.",
              lambda n, dtype=dtype: causal_mask(n).to(dtype))
      for dtype in (torch.float32, torch.float64, torch.int64, torch.int32, torch.uint8)),
]


@check(reference=causal_mask, mistakes=CAUSAL_MISTAKES, what="the mask",
       hints={Kind.WRONG_DTYPE: "masks are boolean, True = may attend: return dtype torch.bool, True on and below "
                                "the diagonal."},
       passed="{cases} sizes (n = 5, 3, 8, 1): boolean, True on and below the diagonal.")
def check_causal_mask() -> Iterator[Case]:
    """Check `causal_mask(n)`: a boolean `(n, n)` tensor, True on and below the diagonal."""
    for n in (5, 3, 8, 1):
        yield Case(f"n={n}", (n,))


# ---- padding_mask(tokens, pad_id) -------------------------------------------------------------------

PADDING_MISTAKES = [
    Mistake("your mask is inverted: it is True at the padding. True = may attend, so it is True at the real tokens "
            "and False at the padding keys.", lambda tokens, pad_id: (tokens == pad_id).unsqueeze(-2)),
    Mistake("you compared the tokens with 0: the padding id is the argument pad_id, which need not be 0.",
            lambda tokens, pad_id: (tokens != 0).unsqueeze(-2)),
    Mistake("the pattern is right, but the mask has shape (B, n): it must be (B, 1, n), with a query dimension "
            "of size 1 between the batch and the keys, so it broadcasts against scores (B, n_q, n_k).",
            lambda tokens, pad_id: tokens != pad_id),
    Mistake("your mask has shape (B, n, 1), which masks queries (rows), not keys: the size-1 dimension goes "
            "before the keys, (B, 1, n).", lambda tokens, pad_id: (tokens != pad_id).unsqueeze(-1)),
    Mistake("your mask has shape (1, B, n): the size-1 query dimension goes after the batch, (B, 1, n).",
            lambda tokens, pad_id: (tokens != pad_id).unsqueeze(0)),
    Mistake("you repeated the mask for every query, (B, n, n): keep the query dimension of size 1, (B, 1, n), "
            "and let broadcasting repeat it.",
            lambda tokens, pad_id: (tokens != pad_id).unsqueeze(-2).expand(-1, tokens.shape[-1], -1)),
    *(Mistake("the pattern is right, but masks are boolean: return dtype torch.bool. masked_fill and torch's "
              "attention treat a number mask as values to add, not as True/False.",
              lambda tokens, pad_id, dtype=dtype: padding_mask(tokens, pad_id).to(dtype))
      for dtype in (torch.float32, torch.int64, torch.uint8)),
]


@check(reference=padding_mask, mistakes=PADDING_MISTAKES, what="the mask",
       hints={Kind.WRONG_DTYPE: "masks are boolean, True = may attend: return dtype torch.bool."},
       passed="{cases} cases: shape (B, 1, n), False at every padding key, any pad_id.")
def check_padding_mask() -> Iterator[Case]:
    """Check `padding_mask(tokens (B, n), pad_id) -> (B, 1, n)`: boolean, False at the padding keys."""
    yield Case("two sentences of 6 and 3 tokens, pad_id=0", (torch.tensor([[5, 3, 8, 2, 9, 4], [7, 1, 6, 0, 0, 0]]), 0))
    # pad_id 2, and a real token with id 0: comparing with 0 instead of pad_id shows here.
    yield Case("three sentences, pad_id=2, token id 0 is a real word",
               (torch.tensor([[0, 4, 3, 2, 2], [5, 0, 1, 6, 2], [1, 2, 2, 2, 2]]), 2))
    yield Case("no padding at all (one sentence of 4 tokens), pad_id=0", (torch.tensor([[1, 2, 3, 4]]), 0))
    yield Case("a sentence that is all padding, int32 ids, pad_id=9",
               (torch.tensor([[9, 9, 9], [4, 9, 9]], dtype=torch.int32), 9))
