"""Checks for notebook 04's exercises: `softmax`, `scaled_dot_product_attention`, `causal_mask`.

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
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from helpers.attention import causal_mask, scaled_dot_product_attention, softmax
from helpers.checks.core import CheckResult, Failure, Probe, describe_difference, run_check

Mistakes = Sequence[tuple[str, Callable[[], object]]]

_GENERIC_NAN = "NaN or inf usually comes from"


def _expect(probe: Probe, actual: object, expected: Tensor, case: str, mistakes: Mistakes,
            fallback: str = "", what: str = "the output", rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """`probe.expect_close`, with `fallback` as the hint when no named mistake matched."""
    try:
        probe.expect_close(actual, expected, case, mistakes, rtol=rtol, atol=atol, what=what)
    except Failure as failure:
        if fallback and (not failure.hint or failure.hint.startswith(_GENERIC_NAN)):
            raise Failure(failure.summary, fallback) from None
        raise


# ---------------------------------------------------------------------------------------------
# softmax(x, dim=-1)
# ---------------------------------------------------------------------------------------------

_SOFTMAX_IN_PLACE = (
    "softmax must not change its input: `x -= x.amax(...)`, `x.sub_(...)` or `x.exp_()` overwrite "
    "the caller's tensor (the attention scores, later). Build new tensors: "
    "`shifted = x - x.amax(dim=dim, keepdim=True)`, then `torch.exp(shifted)`."
)
_SOFTMAX_KEEPDIM = (
    "the row maximum or the row sum lost its dimension and no longer lines up with x: reduce with "
    "keepdim=True (`x.amax(dim=dim, keepdim=True)`, `.sum(dim=dim, keepdim=True)`) so it broadcasts back."
)
_SOFTMAX_MAX_TUPLE = (
    "`x.max(dim=...)` returns a pair (values, indices). Use `x.amax(dim=dim, keepdim=True)`, "
    "or `x.max(dim=dim, keepdim=True).values`."
)
_SOFTMAX_UNSTABLE = (
    "your softmax overflows at magnitude 1e4: exp(1e4) is inf (in float32 and float64 alike) and "
    "inf / inf = NaN, while exp(-1e4) is 0 and 0 / 0 = NaN. Subtract each row's maximum first, "
    "`x - x.amax(dim=dim, keepdim=True)`: it changes nothing mathematically (the factor e^(-max) "
    "cancels between numerator and denominator) and makes the largest exponent exp(0) = 1."
)


def _naive_softmax(x: Tensor, dim: int) -> Tensor:
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def _global_max_softmax(x: Tensor, dim: int) -> Tensor:
    e = torch.exp(x - x.max())
    return e / e.sum(dim=dim, keepdim=True)


def _softmax_mistakes(x: Tensor, dim: int) -> list[tuple[str, Callable[[], object]]]:
    other = 0 if dim % x.ndim != 0 else x.ndim - 1  # a dimension that is not `dim`
    return [
        (_SOFTMAX_UNSTABLE, lambda: _naive_softmax(x, dim)),
        ("you subtracted the maximum of the whole tensor, not of each row. That is correct on paper, "
         "but a row that sits ~1e4 below the global maximum underflows to exp(-1e4) = 0 everywhere and "
         "becomes 0 / 0 = NaN. Subtract each row's own maximum: `x.amax(dim=dim, keepdim=True)`.",
         lambda: _global_max_softmax(x, dim)),
        ("you exponentiated but did not normalise: divide by the sum along dim "
         "(`.sum(dim=dim, keepdim=True)`) so that each row sums to 1.", lambda: torch.exp(x)),
        ("you exponentiated (after subtracting the maximum) but did not normalise: divide by the sum "
         "along dim so that each row sums to 1.", lambda: torch.exp(x - x.amax(dim=dim, keepdim=True))),
        ("you divided by the sum of the whole tensor: normalise along `dim` only "
         "(`.sum(dim=dim, keepdim=True)`), so that each row sums to 1.",
         lambda: torch.exp(x) / torch.exp(x).sum()),
        ("you took the softmax along the first dimension (dim=0): use the `dim` argument "
         "(the default -1 is the last dimension, one row per query).", lambda: torch.softmax(x, dim=0)),
        ("you ignored the `dim` argument and always used the last dimension: pass `dim` to every "
         "reduction (`amax`, `sum`).", lambda: torch.softmax(x, dim=-1)),
        ("you took the softmax along the wrong dimension: use the `dim` argument for the max and the sum.",
         lambda: torch.softmax(x, dim=-2)),
        ("you subtracted the maximum along another dimension than the one you summed over: a shift "
         "cancels only if it is constant along `dim`, so take the max along `dim` too.",
         lambda: _naive_softmax(x - x.amax(dim=other, keepdim=True), dim)),
    ]


def _softmax_inputs(seed: int) -> list[tuple[str, Tensor, int | None, str]]:
    """(case, x, dim, fallback hint); dim None = call with the default."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    with_inf = randn(3, 6) * 2
    with_inf[0, 4:] = float("-inf")
    with_inf[2, :5] = float("-inf")
    levels = torch.tensor([1e4, 0.0, -1e4]).reshape(1, 3, 1)
    return [
        ("a (2, 3, 5) batch, dim=-1", randn(2, 3, 5) * 2, -1, ""),
        ("a (2, 4, 3) batch, dim=1", randn(2, 4, 3) * 2, 1, ""),
        ("a (4, 6) matrix, dim=0 (softmax down each column)", randn(4, 6) * 2, 0, ""),
        ("a (3, 7) matrix in float64, default dim", randn(3, 7, dtype=torch.float64) * 3, None, ""),
        ("a single vector of length 5, default dim", randn(5), None, ""),
        ("scores with some -inf entries (masked keys), dim=-1", with_inf, -1, ""),
        ("inputs of magnitude 1e4 (every entry near +1e4), dim=-1", 1e4 + randn(2, 3, 6) * 3, -1,
         _SOFTMAX_UNSTABLE),
        ("inputs of magnitude 1e4 (every entry near -1e4), dim=-1", -1e4 + randn(3, 6) * 3, -1,
         _SOFTMAX_UNSTABLE),
        ("a batch whose rows sit near +1e4, 0 and -1e4, dim=-1", levels + randn(2, 3, 6) * 3, -1,
         _SOFTMAX_UNSTABLE),
    ]


def _call_softmax(probe: Probe, x: Tensor, dim: int | None) -> object:
    try:
        return probe.call(x) if dim is None else probe.call(x, dim)
    except Failure as failure:
        text = failure.summary
        if "in place" in text:
            raise Failure(text, _SOFTMAX_IN_PLACE) from None
        if "return_types.max" in text:
            raise Failure(text, _SOFTMAX_MAX_TUPLE) from None
        if "must match the size of tensor" in text:
            raise Failure(text, _SOFTMAX_KEEPDIM) from None
        raise


def check_softmax(candidate: object) -> CheckResult:
    """Check `softmax(x, dim=-1)`: numerically stable, along `dim`, leaves `x` alone."""

    def body(probe: Probe) -> str:
        for case, x, dim, fallback in _softmax_inputs(seed=4):
            actual = _call_softmax(probe, x, dim)
            along = -1 if dim is None else dim
            expected = softmax(x.to(torch.float64), dim=along).to(x.dtype)
            # Near 1e4 a float32 input has a resolution of ~1e-3, so implementations that are equally
            # stable (max subtraction, logsumexp) differ by up to ~1e-3 relative: a looser tolerance.
            large = bool(x[torch.isfinite(x)].abs().max() > 1e3)
            _expect(probe, actual, expected, case, _softmax_mistakes(x, along), fallback,
                    rtol=2e-3 if large else 1e-4, atol=1e-4 if large else 1e-5)
        return (f"{probe.cases} cases: batches along any dim, float32 and float64, -inf entries, "
                "and inputs of magnitude 1e4 without overflow.")

    return run_check("softmax", candidate, body)


# ---------------------------------------------------------------------------------------------
# scaled_dot_product_attention(q, k, v, mask=None) -> (output, weights)
# ---------------------------------------------------------------------------------------------

_FULLY_MASKED_NAN = (
    "a query whose keys are all masked has nothing to attend to: softmax of a row of -inf is 0 / 0 = NaN. "
    "Give such rows zero weights (and so a zero output), as torch does, e.g. "
    "`weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)` or `torch.nan_to_num(weights)`."
)
_FULLY_MASKED_UNIFORM = (
    "you filled masked scores with a large finite number instead of -inf. That is fine for ordinary rows, "
    "but a query whose keys are all masked then gets uniform weights 1/n_k over keys it must not see. "
    "Give such rows zero weights (and a zero output), e.g. "
    "`weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)`."
)
_BATCH_HINT = (
    "your function works on a single sequence (2-D) but not on a batch. `.T` and `.t()` reverse or reject "
    "every dimension of a 3-D or 4-D tensor; swap only the last two: `k.transpose(-2, -1)` (or `k.mT`), "
    "and count every other dimension from the end (dim=-1)."
)
_BOOL_INDEX_HINT = (
    "`scores[~mask] = ...` needs a mask of exactly the scores' shape (and writes in place). Masks here "
    "broadcast, e.g. (B, 1, 1, n_k) against (B, h, n_q, n_k): use "
    "`scores.masked_fill(~mask, float('-inf'))` or `torch.where(mask, scores, float('-inf'))`."
)


def _scaled(q: Tensor, k: Tensor, factor: float | None = None) -> Tensor:
    scale = 1 / math.sqrt(q.shape[-1]) if factor is None else factor
    return q @ k.transpose(-2, -1) * scale


def _fill(scores: Tensor, keep: Tensor, value: float) -> Tensor:
    return scores.masked_fill(~keep, value)


def _weight_mistakes(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> list[tuple[str, Callable[[], object]]]:
    d_k, d_v = q.shape[-1], v.shape[-1]
    s = _scaled(q, k)
    mistakes: list[tuple[str, Callable[[], object]]] = [
        ("you did not scale the scores: divide Q Kᵀ by √d_k before the softmax (notebook 03).",
         lambda: torch.softmax(_scaled(q, k, 1.0), dim=-1)),
        ("you divided the scores by d_k; divide by its square root, √d_k (math.sqrt(q.shape[-1])).",
         lambda: torch.softmax(_scaled(q, k, 1 / d_k), dim=-1)),
        ("you divided by √d_v (the values' width); the scale is √d_k, the width of queries and keys: "
         "q.shape[-1], not v.shape[-1].", lambda: torch.softmax(_scaled(q, k, 1 / math.sqrt(d_v)), dim=-1)),
        ("you multiplied the scores by √d_k; divide by it.",
         lambda: torch.softmax(_scaled(q, k, math.sqrt(d_k)), dim=-1)),
        ("you forgot the softmax: the weights are softmax(Q Kᵀ / √d_k), so that each row sums to 1.",
         lambda: s),
        ("you computed K Qᵀ: the scores are Q Kᵀ, one row per query, one column per key.",
         lambda: torch.softmax(_scaled(k, q, 1 / math.sqrt(d_k)), dim=-1)),
    ]
    for dim in range(q.ndim - 1):
        axis = "-2 (over the queries)" if dim == q.ndim - 2 else f"{dim} (a batch dimension)"
        mistakes.append(
            (f"you took the softmax over the wrong axis, dim={axis}: each query's weights over the keys "
             "must sum to 1, so use dim=-1.", lambda dim=dim: torch.softmax(s, dim=dim)))
    if mask is not None:
        mistakes += [
            ("you applied the mask after the softmax by zeroing weights: the rows no longer sum to 1, and "
             "the masked keys still counted in the normalisation. Put -inf in the masked scores *before* "
             "the softmax (`scores.masked_fill(~mask, float('-inf'))`).",
             lambda: torch.softmax(s, dim=-1) * mask),
            ("you ignored the mask: set the scores where mask is False to -inf before the softmax.",
             lambda: torch.softmax(s, dim=-1)),
            ("your mask is inverted: True = may attend (as in torch), so hide the positions where the mask "
             "is False: `scores.masked_fill(~mask, float('-inf'))`.",
             lambda: scaled_dot_product_attention(q, k, v, ~mask)[1]),
            ("your mask is inverted: True = may attend (as in torch), so hide the positions where the mask "
             "is False: `scores.masked_fill(~mask, float('-inf'))`.",
             lambda: torch.softmax(_fill(s, ~mask, float("-inf")), dim=-1)),
            ("you set the masked scores to 0, but exp(0) = 1 still gives them weight: set them to -inf "
             "(`float('-inf')`), whose exp is exactly 0.", lambda: torch.softmax(_fill(s, mask, 0.0), dim=-1)),
            (_FULLY_MASKED_NAN, lambda: torch.softmax(_fill(s, mask, float("-inf")), dim=-1)),
            (_FULLY_MASKED_UNIFORM, lambda: torch.softmax(_fill(s, mask, -1e9), dim=-1)),
        ]
    return mistakes


def _output_mistakes(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> list[tuple[str, Callable[[], object]]]:
    weights = scaled_dot_product_attention(q, k, v, mask)[1]
    mistakes: list[tuple[str, Callable[[], object]]] = [
        ("you multiplied the weights by K; the output is a weighted average of the *value* rows: weights @ v.",
         lambda: weights @ k),
    ]
    for hint, wrong_weights in _weight_mistakes(q, k, v, mask):
        mistakes.append((hint, lambda w=wrong_weights: w() @ v))
    return mistakes


def _attention_cases(seed: int) -> list[tuple[str, tuple[Tensor, ...], bool]]:
    """(case, (q, k, v[, mask]), pass mask=None explicitly)."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    padding = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool).reshape(2, 1, 1, 5)
    random_mask = torch.rand(2, 4, 5, generator=g) > 0.5
    random_mask[..., 0] |= ~random_mask.any(dim=-1)  # every query keeps at least one key
    empty_rows = torch.rand(2, 3, 4, generator=g) > 0.3
    empty_rows[..., 1] = True
    empty_rows[0, 1] = False  # query 1 of sequence 0 may attend to nothing
    empty_rows[1] = False  # sequence 1 is all padding
    return [
        ("a batch of 2 × 3 heads, n_q=4 queries, n_k=5 keys, d_k=6, d_v=7, no mask",
         (randn(2, 3, 4, 6), randn(2, 3, 5, 6), randn(2, 3, 5, 7)), False),
        ("the same shapes with a padding mask of shape (2, 1, 1, 5)",
         (randn(2, 3, 4, 6), randn(2, 3, 5, 6), randn(2, 3, 5, 7), padding), False),
        ("self-attention on a (2, 5, 6) batch, d_v=7, with a (5, 5) causal mask",
         (randn(2, 5, 6), randn(2, 5, 6), randn(2, 5, 7), causal_mask(5)), False),
        ("one sequence (2-D): n_q=3, n_k=4, d_k=6, d_v=7, mask=None",
         (randn(3, 6), randn(4, 6), randn(4, 7)), True),
        ("a float64 batch (2, 4, 6) with a random (2, 4, 5) mask, d_v=3",
         (randn(2, 4, 6, dtype=torch.float64), randn(2, 5, 6, dtype=torch.float64),
          randn(2, 5, 3, dtype=torch.float64), random_mask), False),
        ("queries whose keys are all masked (mask (2, 3, 4) with empty rows)",
         (randn(2, 3, 6), randn(2, 4, 6), randn(2, 4, 7), empty_rows), False),
    ]


def _unpack(result: object, output: Tensor, weights: Tensor, case: str) -> tuple[object, object]:
    """The candidate's (output, weights), or a Failure that says what it returned instead."""
    if isinstance(result, Tensor):
        if describe_difference(result, output) is None:
            hint = "you returned only the output; return both: `return output, weights`."
        elif describe_difference(result, weights) is None:
            hint = "you returned only the weights; return both: `return output, weights`."
        else:
            hint = "return a pair: `return output, weights`."
        raise Failure(f"On {case}: your function returned one tensor of shape {tuple(result.shape)}, "
                      "expected a tuple (output, weights).", hint)
    if not isinstance(result, (tuple, list)):
        raise Failure(f"On {case}: your function returned {type(result).__name__}, expected a tuple "
                      "(output, weights).", "return a pair: `return output, weights`.")
    if len(result) != 2:
        raise Failure(f"On {case}: your function returned {len(result)} values, expected 2 (output, weights).",
                      "return exactly two tensors: `return output, weights`.")
    first, second = result
    if describe_difference(first, weights) is None and describe_difference(second, output) is None:
        raise Failure(f"On {case}: the first tensor holds the weights and the second the output.",
                      "you swapped them: return `(output, weights)`, output first.")
    return first, second


def _attention_case(probe: Probe, case: str, args: tuple[Tensor, ...], explicit_none: bool) -> None:
    q, k, v = args[:3]
    mask = args[3] if len(args) > 3 else None
    output, weights = scaled_dot_product_attention(q, k, v, mask)
    try:
        call_args = (*args, None) if explicit_none else args
        result = probe.call(*call_args)
    except Failure as failure:
        if "shape of the mask" in failure.summary:
            raise Failure(failure.summary, _BOOL_INDEX_HINT) from None
        raise
    actual_output, actual_weights = _unpack(result, output, weights, case)
    _expect(probe, actual_weights, weights, case, _weight_mistakes(q, k, v, mask), what="the weights tensor")
    _expect(probe, actual_output, output, case, _output_mistakes(q, k, v, mask), what="the output")


def _works_on_one_sequence(probe: Probe, args: tuple[Tensor, ...]) -> bool:
    """Does the candidate get the first sequence of a batched case right on its own (2-D)?"""
    q, k, v = (t.reshape(-1, *t.shape[-2:])[0] for t in args[:3])
    try:
        result = probe.call(q, k, v)
        output, weights = scaled_dot_product_attention(q, k, v)
        actual_output, actual_weights = _unpack(result, output, weights, "one sequence")
    except Failure:
        return False
    return describe_difference(actual_output, output) is None and describe_difference(actual_weights, weights) is None


def check_scaled_dot_product_attention(candidate: object) -> CheckResult:
    """Check `scaled_dot_product_attention(q, k, v, mask=None) -> (output, weights)`.

    Batched first (batch and head dimensions, n_q != n_k, d_k != d_v), then masks (padding,
    causal, random, float64), then queries with nothing to attend to (zero weights, zero output).
    """

    def body(probe: Probe) -> str:
        for case, args, explicit_none in _attention_cases(seed=4):
            try:
                _attention_case(probe, case, args, explicit_none)
            except Failure as failure:
                generic = not failure.hint or failure.hint.startswith(("two tensors' shapes", "read the error",
                                                                       "you used a dimension", _GENERIC_NAN))
                if generic and args[0].ndim > 2 and _works_on_one_sequence(probe, args):
                    raise Failure(failure.summary, _BATCH_HINT) from None
                raise
        return (f"{probe.cases} comparisons: batch and head dimensions, n_q ≠ n_k, d_k ≠ d_v, padding, causal "
                "and random masks, float64, and fully masked queries (zero weights, zero output).")

    return run_check("scaled_dot_product_attention", candidate, body)


# ---------------------------------------------------------------------------------------------
# causal_mask(n)
# ---------------------------------------------------------------------------------------------

_CAUSAL_MISTAKES: list[tuple[str, Callable[[int], Tensor]]] = [
    ("your mask is inverted: it is True above the diagonal, marking the positions to *hide* (the convention "
     "of some older code). In this course, as in torch, True = may attend: True on and below the diagonal "
     "(`torch.tril`).", lambda n: torch.ones(n, n, dtype=torch.bool).triu(1)),
    ("you kept the upper triangle: token i may attend to tokens 0..i, which lie on and below the diagonal "
     "(`torch.tril`, not `torch.triu`).", lambda n: torch.ones(n, n, dtype=torch.bool).triu()),
    ("you left out the diagonal: a token may attend to itself. Keep the diagonal (`torch.tril(...)` with "
     "its default diagonal=0).", lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1)),
    ("your mask lets every token attend to every position, future included: keep only the lower triangle "
     "(`torch.tril`).", lambda n: torch.ones(n, n, dtype=torch.bool)),
    ("your mask hides everything: True = may attend, on and below the diagonal (`torch.tril`).",
     lambda n: torch.zeros(n, n, dtype=torch.bool)),
]


def check_causal_mask(candidate: object) -> CheckResult:
    """Check `causal_mask(n)`: a boolean `(n, n)` tensor, True on and below the diagonal."""

    def body(probe: Probe) -> str:
        for n in (5, 3, 8, 1):
            case = f"n={n}"
            actual = probe.call(n)
            expected = causal_mask(n)
            if isinstance(actual, Tensor) and actual.dtype != torch.bool and tuple(actual.shape) == (n, n):
                right_pattern = bool(torch.equal(actual.detach().cpu() != 0, expected))
                raise Failure(
                    f"On {case}: the mask has dtype {actual.dtype}, expected torch.bool.",
                    ("the pattern is right, but masks are boolean: return dtype torch.bool "
                     "(`torch.ones(n, n, dtype=torch.bool).tril()`, or `.bool()`); masked_fill and torch's "
                     "attention treat a float mask as numbers to add, not as True/False.")
                    if right_pattern else
                    "masks are boolean, True = may attend: return dtype torch.bool, True on and below the diagonal.",
                )
            mistakes = [(hint, lambda wrong=wrong, n=n: wrong(n)) for hint, wrong in _CAUSAL_MISTAKES]
            probe.expect_close(actual, expected, case, mistakes, what="the mask")
        return f"{probe.cases} sizes (n = 5, 3, 8, 1): boolean, True on and below the diagonal."

    return run_check("causal_mask", candidate, body)
