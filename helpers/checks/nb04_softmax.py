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
- **attention, dtype.** Inputs are float32 or float64 and the answer is computed in their dtype:
  the float64 case is compared to 1e-9, so computing it in float32 fails there.
- **masks, convention.** True = may attend, as in `torch.nn.functional.scaled_dot_product_attention`;
  `nn.MultiheadAttention` and the `nn.Transformer*` modules read a boolean mask the other way
  (True = blocked), so the inverted-mask hints name both.

Each check carries its contract (`core.Term`s): what the exercise's statement allows, the
generated cases that cover each entry, and an implementation wrong only there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from helpers.attention import causal_mask, padding_mask, scaled_dot_product_attention, softmax
from helpers.checks.core import Case, Clue, Kind, Mistake, Term, check, generator, randn

NEG_INF = float("-inf")

#: Telling pieces of each exercise's solution: Hint 1, Hint 2 and every ❌ hint must contain none of them.
SOLUTION_FRAGMENTS: dict[str, list[str]] = {
    "softmax": ["x - x.amax(", "amax(dim=dim, keepdim=True)", "torch.exp(shifted)", "exps / exps.sum(",
                "sum(dim=dim, keepdim=True)"],
    "padding_mask": ["tokens != pad_id", "tokens.ne(pad_id)", ".unsqueeze(-2)", ".unsqueeze(1)", "[:, None, :]"],
    "causal_mask": ["torch.ones(n, n, dtype=torch.bool)", ".tril()", "torch.tril(", ".triu(diagonal=1)",
                    ".triu(1)"],
    "scaled_dot_product_attention": ["q @ k.transpose(-2, -1)", "k.transpose(-2, -1)", "/ math.sqrt(q.shape[-1])",
                                     "masked_fill(~mask", 'float("-inf")', "float('-inf')",
                                     "mask.any(dim=-1, keepdim=True)", "torch.softmax(scores, dim=-1)",
                                     "weights @ v"],
}

# ---- softmax(x, dim=-1) ---------------------------------------------------------------------------

UNSTABLE = (
    "your softmax overflows: in float32 exp(s) is inf once a score s passes about 88.7 (in float64 about 709.8), "
    "and inf / inf = NaN; a row far below zero underflows to 0 / 0 = NaN the same way. Subtract each row's "
    "maximum (along dim) before exponentiating: it changes nothing mathematically (the factor e^(-max) cancels "
    "between numerator and denominator) and makes the largest exponent exp(0) = 1."
)
FLOAT64 = ("float64 inputs: compute in the input's dtype. Converting to float32 loses the small differences "
           "between large scores that float64 keeps.")


def _naive_softmax(x: Tensor, dim: int = -1) -> Tensor:
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def _other_dim(x: Tensor, dim: int) -> int:
    return 0 if dim % x.ndim != 0 else x.ndim - 1


def _reference_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return softmax(x.to(torch.float64), dim=dim).to(x.dtype)


SOFTMAX_MISTAKES = [
    Mistake(UNSTABLE, _naive_softmax),
    Mistake("you subtracted the maximum of the whole tensor, not of each row. That is correct on paper, "
            "but a row that sits ~1e4 below the global maximum underflows to exp(-1e4) = 0 everywhere and "
            "becomes 0 / 0 = NaN. Subtract each row's own maximum, taken along dim.",
            lambda x, dim=-1: _naive_softmax(x - x.max(), dim)),
    Mistake("you subtracted each row's mean, not its maximum: a masked score (-inf) makes the mean -inf, and "
            "-inf - (-inf) is NaN. The maximum of a row with a finite entry is finite, and exp(-inf - max) = 0.",
            lambda x, dim=-1: _naive_softmax(x - x.mean(dim=dim, keepdim=True), dim)),
    Mistake("you exponentiated but did not normalise: divide by the sum along dim so that each row sums to 1.",
            lambda x, dim=-1: torch.exp(x)),
    Mistake("you exponentiated (after subtracting the maximum) but did not normalise: divide by the sum "
            "along dim so that each row sums to 1.", lambda x, dim=-1: torch.exp(x - x.amax(dim=dim, keepdim=True))),
    Mistake("you divided by the sum of the whole tensor: normalise by the sum along `dim` only, so that "
            "each row sums to 1.",
            lambda x, dim=-1: torch.exp(x) / torch.exp(x).sum()),
    Mistake("your default for `dim` is not -1: called without `dim`, softmax works along the last dimension "
            "(one row per query).", lambda x, dim=0: torch.softmax(x, dim=dim)),
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


def _softmax_needs_rows(x: Tensor, dim: int = -1) -> Tensor:
    x.shape[-2]  # a batch of rows assumed: a vector has no dimension -2
    return _reference_softmax(x, dim)


def _softmax_in_place(x: Tensor, dim: int = -1) -> Tensor:
    x -= x.amax(dim=dim, keepdim=True)
    return torch.exp(x) / torch.exp(x).sum(dim=dim, keepdim=True)


SOFTMAX_CONTRACT = [
    Term("a vector (1-D) as well as a matrix or a batch", "a single vector",
         _softmax_needs_rows, "a dimension (or an index) the input does not have"),
    Term("any dim, positive or negative, not only the last", "dim=1",
         lambda x, dim=-1: _reference_softmax(x, -1), "ignored the `dim` argument"),
    Term("dim left out: the default is -1", "default dim",
         lambda x, dim=0: _reference_softmax(x, dim), "default for `dim` is not -1"),
    Term("float64 as well as float32, computed in the input's dtype", "float64 scores near 1e4",
         lambda x, dim=-1: _reference_softmax(x.float(), dim).to(x.dtype), "float64"),
    Term("-inf entries (masked scores)", "-inf entries",
         lambda x, dim=-1: _naive_softmax(x - x.mean(dim=dim, keepdim=True), dim), "mean"),
    Term("scores past 88.7, where float32's exp overflows", "past 88.7",
         _naive_softmax, "overflows"),
    Term("scores of magnitude 1e4, beyond float64's exp too", "magnitude 1e4",
         lambda x, dim=-1: _naive_softmax(x.double(), dim), "overflows"),
    Term("rows at very different levels (each row its own maximum)", "rows sit near",
         lambda x, dim=-1: _naive_softmax(x - x.max(), dim), "maximum of the whole tensor"),
    Term("x is the caller's tensor: left unchanged", "a batch",
         _softmax_in_place, "must not change its input"),
]


@check(reference=_reference_softmax, mistakes=SOFTMAX_MISTAKES, contract=SOFTMAX_CONTRACT,
       hints={Kind.IN_PLACE: SOFTMAX_IN_PLACE},
       passed="{cases} cases: batches along any dim, float32 and float64, -inf entries, "
              "and scores past 88.7 and of magnitude 1e4 without overflow.")
def check_softmax() -> Iterator[Case]:
    """Check `softmax(x, dim=-1)`: numerically stable, along `dim`, leaves `x` alone.

    Shapes and values are drawn from a seeded local generator: a batch, a vector, a matrix down its
    columns, float64, -inf entries, scores past float32's overflow, magnitude 1e4, rows far apart.
    """
    g = generator(4)

    def size(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (), generator=g))

    rows, cols = size(3, 5), size(5, 8)
    with_inf = randn(g, rows, cols) * 2
    with_inf[0, size(1, cols - 1):] = NEG_INF  # a row partly masked
    with_inf[-1, :cols - 1] = NEG_INF  # a row with one key left
    # Near 1e4 a float32 input has a resolution of ~1e-3, so implementations that are equally
    # stable (max subtraction, logsumexp) differ by up to ~1e-3 relative: a looser tolerance.
    large = dict(hint=UNSTABLE, tolerance=(2e-3, 1e-4))
    b, n_q, n_k = size(2, 3), size(3, 4), size(5, 7)
    yield Case(f"a ({b}, {n_q}, {n_k}) batch, dim=-1", (randn(g, b, n_q, n_k) * 2, -1))
    yield Case(f"a ({b}, {n_k}, {n_q}) batch, dim=1", (randn(g, b, n_k, n_q) * 2, 1))
    yield Case(f"a ({n_q}, {n_k}) matrix, dim=0 (softmax down each column)", (randn(g, n_q, n_k) * 2, 0))
    yield Case(f"a ({n_q}, {n_k}) matrix in float64, default dim", (randn(g, n_q, n_k, dtype=torch.float64) * 3,))
    yield Case(f"a single vector of length {n_k}, default dim", (randn(g, n_k),))
    yield Case("scores with some -inf entries (masked keys), dim=-1", (with_inf, -1))
    yield Case("scores past 88.7 (between 89 and 100) in float32, dim=-1",
               (89 + 11 * torch.rand(b, n_q, n_k, generator=g), -1), hint=UNSTABLE)
    yield Case("inputs of magnitude 1e4 (every entry near +1e4), dim=-1",
               (1e4 + randn(g, b, n_q, n_k) * 3, -1), **large)
    yield Case("inputs of magnitude 1e4 (every entry near -1e4), dim=-1", (-1e4 + randn(g, n_q, n_k) * 3, -1), **large)
    levels = torch.tensor([1e4, 0.0, -1e4]).reshape(1, 3, 1)
    yield Case("a batch whose rows sit near +1e4, 0 and -1e4, dim=-1", (levels + randn(g, b, 3, n_k) * 3, -1), **large)
    # Differences of ~1e-3 between scores near 1e4: float64 resolves them, float32 (resolution ~1e-3) does not.
    yield Case("float64 scores near 1e4 that differ by ~1e-3, dim=-1",
               (1e4 + 1e-3 * randn(g, n_q, n_k, dtype=torch.float64), -1), hint=FLOAT64, tolerance=(1e-9, 1e-12))


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


INVERTED = ("your mask is inverted: True = may attend (as in torch.nn.functional.scaled_dot_product_attention), "
            "so the scores to hide are those where the mask is False. (nn.MultiheadAttention and the "
            "nn.Transformer* modules read a boolean mask the other way: True = blocked.)")
AXIS = ("you took the softmax over the wrong axis, dim={}: each query's weights over the keys must sum to 1, "
        "so use dim=-1.")
COUNTED = ("you rebuilt the mask from its count of True entries, keeping the first keys, as if padding always "
           "came last. Padding may sit at the start of a row too (left padding): apply the mask entry by entry, "
           "wherever its False entries are.")


def _from_count(mask: Tensor) -> Tensor:
    """A key-padding mask `(..., 1, n_k)` rebuilt from its number of True entries (assumes right padding)."""
    count = mask.sum(dim=-1, keepdim=True)
    return torch.arange(mask.shape[-1]) < count


def _counting_padding(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    if mask is not None and mask.shape[-2] == 1:
        mask = _from_count(mask)
    return scaled_dot_product_attention(q, k, v, mask)


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
    Mistake("you set the masked scores to 0, but exp(0) = 1 still gives them weight: set them to -inf, "
            "whose exp is exactly 0.", _masking(lambda s, mask: torch.softmax(s.masked_fill(~mask, 0.0), dim=-1))),
    Mistake("a query whose keys are all masked has nothing to attend to: softmax of a row of -inf is 0 / 0 = NaN. "
            "Give such rows zero weights (and so a zero output), as torch does: find the rows whose mask has no "
            "True at all, or replace the NaN.",
            _masking(lambda s, mask: torch.softmax(s.masked_fill(~mask, NEG_INF), dim=-1))),
    Mistake("you filled masked scores with a large finite number instead of -inf. That is fine for ordinary rows, "
            "but a query whose keys are all masked then gets uniform weights 1/n_k over keys it must not see. "
            "Give such rows (their mask has no True at all) zero weights, and so a zero output.",
            _masking(lambda s, mask: torch.softmax(s.masked_fill(~mask, -1e9), dim=-1))),
    Mistake(COUNTED, _counting_padding),
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


def _full_mask(case: Case) -> Tensor | None:
    """The case's mask broadcast to the scores' shape, or None."""
    q, k = case.args[:2]
    mask = case.args[3] if len(case.args) > 3 else None
    if mask is None:
        return None
    return mask.broadcast_to(*torch.broadcast_shapes(mask.shape, q.shape[:-1] + k.shape[-2:-1]))


def _one_sequence(case: Case, got: object) -> Iterator[Case]:
    q, k, v = case.args[:3]
    if q.ndim > 2:
        first = tuple(t.reshape(-1, *t.shape[-2:])[0] for t in (q, k, v))
        mask = _full_mask(case)
        mask = None if mask is None else mask.reshape(-1, *mask.shape[-2:])[0]
        yield Case("one sequence", (*first, mask), tolerance=case.tolerance)


ON_ONE_SEQUENCE = Clue(
    "your function works on a single sequence (2-D) but not on a batch. `.T` and `.t()` reverse or reject "
    "every dimension of a 3-D or 4-D tensor; swap only the last two, and count every other dimension "
    "from the end (dim=-1).", _one_sequence)


def _with_all_true_mask(case: Case, got: object) -> Iterator[Case]:
    q, k, v = case.args[:3]
    if len(case.args) < 4 or case.args[3] is None:
        everything = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool)
        yield Case("the same with a mask that hides nothing", (q, k, v, everything), tolerance=case.tolerance)


MASK_OPTIONAL = Clue(
    "your function works with a mask but not without one: the mask is optional. Called with three arguments, "
    "or with mask=None, there is nothing to hide: skip the masking step.", _with_all_true_mask)


def _needs_a_mask(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    return scaled_dot_product_attention(q, k, v, mask)


_EVERYTHING = object()


def _rejects_none(q: Tensor, k: Tensor, v: Tensor, mask: object = _EVERYTHING) -> tuple[Tensor, Tensor]:
    if mask is _EVERYTHING:
        return scaled_dot_product_attention(q, k, v)
    return scaled_dot_product_attention(q, k, v, mask.bool())  # type: ignore[attr-defined]  # None has no .bool


def _transposing(which: int) -> Callable[..., tuple[Tensor, Tensor]]:
    """Swaps dimensions 1 and 2 of k (right for 3-D only) when k has `which` dimensions."""
    def wrong(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if k.ndim != which:
            return scaled_dot_product_attention(q, k, v, mask)
        scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
        weights = torch.softmax(scores if mask is None else scores.masked_fill(~mask, NEG_INF), dim=-1)
        return weights @ v, weights
    return wrong


def _indexing_when(layout: Callable[[Tensor, Tensor], bool]) -> Callable[..., tuple[Tensor, Tensor]]:
    """Boolean indexing (exact shape only) where the mask has `layout(mask, q)`; right elsewhere."""
    def wrong(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if mask is not None and layout(mask, q):
            return _boolean_index(q, k, v, mask)
        return scaled_dot_product_attention(q, k, v, mask)
    return wrong


def _zeroing_when_full(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    if mask is not None and mask.ndim == q.ndim and mask.shape[-2] == q.shape[-2] > 1:
        w = torch.softmax(_scores(q, k), dim=-1) * mask
        return w @ v, w
    return scaled_dot_product_attention(q, k, v, mask)


def _in_float32(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    output, weights = scaled_dot_product_attention(q.float(), k.float(), v.float(), mask)
    return output.to(q.dtype), weights.to(q.dtype)


ATTENTION_CONTRACT = [
    Term("q, k, v of one sequence (2-D)", "one sequence (2-D)", _transposing(2), "count dimensions from the end"),
    Term("batch and head dimensions (4-D)", "heads (4-D)", _transposing(4), "not on a batch"),
    Term("d_v ≠ d_k", "d_v ≠ d_k",
         _attending(lambda q, k, v: torch.softmax(_scores(q, k, 1 / math.sqrt(v.shape[-1])), dim=-1)), "√d_v"),
    Term("mask left out (the default, None)", "no mask", _needs_a_mask, "the mask is optional"),
    Term("mask=None passed explicitly", "mask=None", _rejects_none, "the mask is optional"),
    Term("a mask of shape (n_q, n_k), shared by the batch (causal)", "mask of shape (n_q, n_k)",
         _indexing_when(lambda mask, q: mask.ndim == 2 < q.ndim), "exactly the scores' shape"),
    Term("a padding mask of shape (B, 1, n_k)", "mask of shape (B, 1, n_k)",
         _indexing_when(lambda mask, q: mask.ndim == 3 and mask.shape[-2] == 1 < q.shape[-2]),
         "exactly the scores' shape"),
    Term("a padding mask of shape (B, 1, 1, n_k), broadcast over heads", "mask of shape (B, 1, 1, n_k)",
         _indexing_when(lambda mask, q: mask.ndim == 4 and mask.shape[-2] == 1), "exactly the scores' shape"),
    Term("a mask of shape (B, n_q, n_k), one row per query", "mask of shape (B, n_q, n_k)",
         _zeroing_when_full, "after the softmax"),
    Term("padding at the start of a row as well as at the end", "padding at the start",
         _counting_padding, "count of True entries"),
    Term("queries whose keys are all masked (a sequence of padding only)", "all masked",
         _masking(lambda s, mask: torch.softmax(s.masked_fill(~mask, NEG_INF), dim=-1)), "nothing to attend to"),
    Term("float64 inputs, computed in float64", "float64", _in_float32, "float64"),
]


def _padding(g: torch.Generator, batch: int, n: int, at_start: bool) -> Tensor:
    """A `(batch, 1, n)` key-padding mask: each row keeps 1..n-1 real keys, padding at its end or start."""
    lengths = torch.randint(1, n, (batch, 1, 1), generator=g)
    position = torch.arange(n)
    return position >= n - lengths if at_start else position < lengths


@check(reference=scaled_dot_product_attention, mistakes=ATTENTION_MISTAKES, clues=[MASK_OPTIONAL, ON_ONE_SEQUENCE],
       contract=ATTENTION_CONTRACT, returns=("output", "weights"),
       shown={"output": "the output", "weights": "the weights tensor"}, compare_first=("weights",),
       passed="{comparisons} comparisons: batch and head dimensions, n_q ≠ n_k, d_k ≠ d_v, mask left out or "
              "None, masks of shape (n_q, n_k), (B, 1, n_k), (B, 1, 1, n_k) and (B, n_q, n_k), padding at either "
              "end, float64, and fully masked queries (zero weights, zero output).")
def check_scaled_dot_product_attention() -> Iterator[Case]:
    """Check `scaled_dot_product_attention(q, k, v, mask=None) -> (output, weights)`.

    Shapes and masks are drawn from a seeded local generator. Batched first (batch and head
    dimensions, n_q != n_k, d_k != d_v), then every mask layout the statement allows, padding at
    the end and at the start of a row, float64, then queries with nothing to attend to.
    """
    g = generator(4)

    def size(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (), generator=g))

    b, h, n_q, n_k = size(2, 3), 3, size(3, 4), size(5, 6)
    d_k, d_v = size(5, 6), 7  # h, d_k and d_v all differ
    f64 = torch.float64

    def qkv(*batch: int, n_q: int = n_q, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor, Tensor]:
        return (randn(g, *batch, n_q, d_k, dtype=dtype), randn(g, *batch, n_k, d_k, dtype=dtype),
                randn(g, *batch, n_k, d_v, dtype=dtype))

    random_mask = torch.rand(b, n_q, n_k, generator=g) > 0.5
    random_mask[..., 0] |= ~random_mask.any(dim=-1)  # every query keeps at least one key
    empty_rows = torch.rand(b, n_q, n_k, generator=g) > 0.3
    empty_rows[..., 1] = True
    empty_rows[0, 1] = False  # one query of sequence 0 may attend to nothing
    empty_rows[1] = False  # sequence 1 is all padding
    all_padding = _padding(g, b, n_k, at_start=False)
    all_padding[-1] = False
    yield Case(f"a batch of {b} × {h} heads (4-D), n_q ≠ n_k ({n_q}, {n_k}), d_v ≠ d_k ({d_v}, {d_k}), no mask",
               qkv(b, h))
    yield Case(f"a batch of {b} × {h} heads (4-D) with a padding mask of shape (B, 1, 1, n_k) = ({b}, 1, 1, {n_k})",
               (*qkv(b, h), _padding(g, b, n_k, at_start=False).unsqueeze(1)))
    yield Case(f"a ({b}, {n_q}, {d_k}) batch with a padding mask of shape (B, 1, n_k), padding at the end",
               (*qkv(b), _padding(g, b, n_k, at_start=False)))
    yield Case(f"a ({b}, {n_q}, {d_k}) batch with a padding mask of shape (B, 1, n_k), padding at the start",
               (*qkv(b), _padding(g, b, n_k, at_start=True)))
    yield Case(f"self-attention on a ({b}, {n_k}, {d_k}) batch with a causal mask of shape (n_q, n_k) = "
               f"({n_k}, {n_k})", (*qkv(b, n_q=n_k), causal_mask(n_k)))
    yield Case(f"one sequence (2-D): n_q={n_q}, n_k={n_k}, mask=None", (*qkv(), None))
    yield Case(f"a float64 batch with a random mask of shape (B, n_q, n_k) = ({b}, {n_q}, {n_k})",
               (*qkv(b, dtype=f64), random_mask), tolerance=(1e-9, 1e-12),
               hint="float64 inputs: compute in float64, the inputs' dtype (float32 loses precision the check sees).")
    yield Case(f"queries whose keys are all masked, mask of shape (B, n_q, n_k) = ({b}, {n_q}, {n_k})",
               (*qkv(b), empty_rows))
    yield Case(f"a sequence of padding only (all masked), mask of shape (B, 1, n_k) = ({b}, 1, {n_k})",
               (*qkv(b), all_padding))


# ---- causal_mask(n) -------------------------------------------------------------------------------

def _ones(n: int) -> Tensor:
    return torch.ones(n, n, dtype=torch.bool)


CAUSAL_MISTAKES = [
    Mistake("your mask is inverted: it is True above the diagonal, marking the positions to *hide*, the way "
            "nn.MultiheadAttention and the nn.Transformer* modules read a boolean mask. In this course, as in "
            "torch.nn.functional.scaled_dot_product_attention, True = may attend: True on and below the "
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

CAUSAL_SHAPE = ("the mask is (n, n) for every n, n = 1 included: one row per query, one column per key. "
                "(squeeze drops every dimension of size 1.)")

CAUSAL_CONTRACT = [
    Term("n = 1, a single token", "n=1", lambda n: causal_mask(n).squeeze(), "n = 1 included"),
    Term("any n ≥ 2, odd and even, drawn from a seed", "(even)", _ones, "every position"),
    Term("the diagonal: a token attends to itself", "n=", lambda n: _ones(n).tril(-1), "left out the diagonal"),
    Term("True = may attend (not True = blocked)", "n=", lambda n: _ones(n).triu(1), "inverted"),
    Term("a boolean mask", "n=", lambda n: causal_mask(n).float(), "boolean"),
]


@check(reference=causal_mask, mistakes=CAUSAL_MISTAKES, contract=CAUSAL_CONTRACT, what="the mask",
       hints={Kind.WRONG_DTYPE: "masks are boolean, True = may attend: return dtype torch.bool, True on and below "
                                "the diagonal.",
              Kind.WRONG_SHAPE: CAUSAL_SHAPE},
       passed="{cases} sizes (odd, even, n = 1): boolean, True on and below the diagonal.")
def check_causal_mask() -> Iterator[Case]:
    """Check `causal_mask(n)`: a boolean `(n, n)` tensor, True on and below the diagonal, for sizes from a seed."""
    g = generator(4)
    odd = 2 * int(torch.randint(1, 4, (), generator=g)) + 1
    even = 2 * int(torch.randint(1, 4, (), generator=g))
    larger = int(torch.randint(9, 17, (), generator=g))
    yield Case(f"n={odd} (odd)", (odd,))
    yield Case(f"n={even} (even)", (even,))
    yield Case(f"n={larger}", (larger,))
    yield Case("n=1 (a single token)", (1,))


# ---- padding_mask(tokens, pad_id) -------------------------------------------------------------------

def _from_lengths(tokens: Tensor, pad_id: int, at_start: bool) -> Tensor:
    """A padding mask from each row's number of real tokens, as if all padding sat at one end."""
    real = (tokens != pad_id).sum(dim=-1, keepdim=True)
    position = torch.arange(tokens.shape[-1])
    mask = position >= tokens.shape[-1] - real if at_start else position < real
    return mask.unsqueeze(-2)


PADDING_MISTAKES = [
    Mistake("your mask is inverted: it is True at the padding. True = may attend, so it is True at the real tokens "
            "and False at the padding keys.", lambda tokens, pad_id: (tokens == pad_id).unsqueeze(-2)),
    Mistake("you compared the tokens with 0: the padding id is the argument pad_id, which need not be 0.",
            lambda tokens, pad_id: (tokens != 0).unsqueeze(-2)),
    Mistake("you built the mask from each row's number of real tokens, as if the padding always came last. "
            "Padding may also come first (left padding): compare every id with pad_id, wherever it sits.",
            lambda tokens, pad_id: _from_lengths(tokens, pad_id, at_start=False)),
    Mistake("you built the mask from each row's number of real tokens, as if the padding always came first. "
            "Padding may also come last: compare every id with pad_id, wherever it sits.",
            lambda tokens, pad_id: _from_lengths(tokens, pad_id, at_start=True)),
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

NO_PADDING = "a row without padding has only real keys: its mask is all True."
ONLY_PADDING = "a row of padding only has no real key: its mask is all False (attention then gives it zero weights)."


def _full_rows_hidden(tokens: Tensor, pad_id: int) -> Tensor:
    mask = padding_mask(tokens, pad_id)
    return mask & ~mask.all(dim=-1, keepdim=True)


def _empty_rows_shown(tokens: Tensor, pad_id: int) -> Tensor:
    mask = padding_mask(tokens, pad_id)
    return mask | ~mask.any(dim=-1, keepdim=True)


PADDING_CONTRACT = [
    Term("padding at the end of a row", "padding at the end",
         lambda tokens, pad_id: _from_lengths(tokens, pad_id, at_start=True), "always came first"),
    Term("padding at the start of a row (left padding)", "padding at the start",
         lambda tokens, pad_id: _from_lengths(tokens, pad_id, at_start=False), "always came last"),
    Term("any pad_id, not only 0 (and id 0 may be a real token)", "token id 0 is a real word",
         lambda tokens, pad_id: (tokens != 0).unsqueeze(-2), "compared the tokens with 0"),
    Term("rows without padding", "no padding", _full_rows_hidden, "all True"),
    Term("a row of padding only", "padding only", _empty_rows_shown, "all False"),
]


def _sentences(g: torch.Generator, batch: int, n: int, pad_id: int, at_start: bool | None,
               lengths: Tensor | None = None, dtype: torch.dtype = torch.int64) -> Tensor:
    """`(batch, n)` ids in 0..11 except pad_id, each row padded with pad_id at its end or start (None: either)."""
    ids = torch.randint(0, 11, (batch, n), generator=g)
    ids = torch.where(ids >= pad_id, ids + 1, ids) if 0 <= pad_id <= 11 else ids  # real ids never equal pad_id
    if lengths is None:
        lengths = torch.randint(1, n, (batch,), generator=g)
    starts = torch.rand(batch, generator=g) < 0.5 if at_start is None else torch.full((batch,), at_start)
    position = torch.arange(n)
    real = torch.where(starts[:, None], position >= n - lengths[:, None], position < lengths[:, None])
    return torch.where(real, ids, torch.tensor(pad_id)).to(dtype)


@check(reference=padding_mask, mistakes=PADDING_MISTAKES, contract=PADDING_CONTRACT, what="the mask",
       hints={Kind.WRONG_DTYPE: "masks are boolean, True = may attend: return dtype torch.bool."},
       passed="{cases} cases: shape (B, 1, n), False at every padding key, padding at the end or the start, "
              "any pad_id.")
def check_padding_mask() -> Iterator[Case]:
    """Check `padding_mask(tokens (B, n), pad_id) -> (B, 1, n)`: boolean, False at the padding keys.

    Token ids, lengths, pad ids and the side the padding sits on are drawn from a seeded generator.
    """
    g = generator(4)

    def size(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (), generator=g))

    b, n = size(2, 4), size(5, 8)
    pad_id = size(1, 9)
    yield Case(f"a batch of {b} rows of {n} ids, padding at the end, pad_id=0", (_sentences(g, b, n, 0, False), 0))
    left = _sentences(g, b, n, pad_id, True)
    left[0, -1] = 0  # the last id of a left-padded row is real
    yield Case(f"a batch of {b} rows, padding at the start (left padding), pad_id={pad_id}, token id 0 is a real "
               "word", (left, pad_id))
    yield Case(f"rows padded at either end, pad_id={pad_id + 2}",
               (_sentences(g, b + 1, n, pad_id + 2, None), pad_id + 2))
    full = torch.tensor([n] + [size(1, n - 1) for _ in range(b - 1)])
    yield Case(f"a first row with no padding beside padded rows, pad_id={pad_id}",
               (_sentences(g, b, n, pad_id, False, full), pad_id), hint=NO_PADDING)
    empty = torch.tensor([size(1, n - 1), 0])
    yield Case(f"a row of padding only, int32 ids, pad_id={pad_id + 1}",
               (_sentences(g, 2, n, pad_id + 1, None, empty, torch.int32), pad_id + 1), hint=ONLY_PADDING)
