"""Check for notebook 02's exercise: the attention scores `Q Kᵀ` for any leading batch dims."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from helpers.attention import attention_scores
from helpers.checks.core import CheckResult, Failure, NotAttempted, Probe, describe_difference, run_check

Mistakes = list[tuple[str, Callable[[], object]]]

_ALL_DIMS_TRANSPOSED = (
    "you used `.T` (or `.permute` reversing every dimension): on a batched tensor `.T` reverses ALL "
    "dimensions, so K of shape (B, n_k, d_k) becomes (d_k, n_k, B). It is only right for a 2-D matrix. "
    "Swap just the last two dimensions: K.transpose(-2, -1) or K.mT."
)
_FIRST_DIMS_TRANSPOSED = (
    "you transposed the wrong dimensions: K.transpose(0, 1) swaps the batch with the tokens "
    "when K is (B, n_k, d_k). It is only right for a 2-D matrix. Count from the end: K.transpose(-2, -1) or K.mT."
)
_MIDDLE_DIMS_TRANSPOSED = (
    "you transposed the wrong dimensions: K.transpose(1, 2) is right for (B, n_k, d_k) but, for a "
    "(B, h, n_k, d_k) batch with heads, it swaps heads and tokens. Count from the end: "
    "K.transpose(-2, -1) or K.mT."
)
_K_Q_TRANSPOSED = (
    "you computed K Qᵀ, the transpose of the answer (shape (..., n_k, n_q)): rows must be queries and "
    "columns keys, so compute Q @ K.transpose(-2, -1)."
)
_ELEMENTWISE = (
    "you multiplied element by element (*): scores need the matrix product (@ or torch.matmul), so "
    "that every query meets every key: Q @ K.transpose(-2, -1)."
)
_MATCHING_ROWS = (
    "you computed the dot products of matching rows only (query i with key i, like the warm-up "
    "batched_dot): one number per row. Scores pair EVERY query with EVERY key: an n_q × n_k matrix, "
    "Q @ K.transpose(-2, -1)."
)
_ROW_SUMS = (
    "you summed each query's scores over the keys, which leaves one number per query: keep the "
    "whole n_q × n_k matrix Q @ K.transpose(-2, -1)."
)
_SCALED = (
    "you divided by √d_k: that scaling is the next step (notebook 03). Here return the raw scores "
    "Q @ K.transpose(-2, -1)."
)
_SCALED_BY_D = (
    "you divided by d_k: return the raw scores Q @ K.transpose(-2, -1) (the scaling, by √d_k, is notebook 03)."
)
_SOFTMAX = (
    "you applied a softmax: that turns scores into attention weights, which is notebook 04. "
    "Here return the raw scores Q @ K.transpose(-2, -1)."
)
_NO_TRANSPOSE = (
    "you multiplied Q by K without transposing K: the dot product of query i and key j needs K's "
    "rows turned into columns: Q @ K.transpose(-2, -1)."
)
_Q_TRANSPOSED = (
    "you transposed Q instead of K (Qᵀ K is d_k × d_k, a feature-by-feature matrix): "
    "compute Q @ K.transpose(-2, -1), which is n_q × n_k."
)

_NAMED_HINTS = {
    _ALL_DIMS_TRANSPOSED, _FIRST_DIMS_TRANSPOSED, _MIDDLE_DIMS_TRANSPOSED, _K_Q_TRANSPOSED, _ELEMENTWISE,
    _MATCHING_ROWS, _ROW_SUMS, _SCALED, _SCALED_BY_D, _SOFTMAX, _NO_TRANSPOSE, _Q_TRANSPOSED,
}


def _reverse_all(x: Tensor) -> Tensor:
    """What `x.T` does (without torch's deprecation warning for more than 2 dims)."""
    return x.permute(*reversed(range(x.ndim)))


def _mistakes(Q: Tensor, K: Tensor) -> Mistakes:
    """What each typical mistake returns for (Q, K); a mistake that crashes here is skipped."""
    d_k = Q.shape[-1]
    scores = Q @ K.transpose(-2, -1)
    mistakes: Mistakes = [
        (_K_Q_TRANSPOSED, lambda: K @ Q.transpose(-2, -1)),
        (_SCALED, lambda: scores / math.sqrt(d_k)),
        (_SCALED_BY_D, lambda: scores / d_k),
        (_SOFTMAX, lambda: torch.softmax(scores, dim=-1)),
        (_SOFTMAX, lambda: torch.softmax(scores / math.sqrt(d_k), dim=-1)),
        (_SOFTMAX, lambda: torch.softmax(scores, dim=-2)),
        (_MATCHING_ROWS, lambda: (Q * K).sum(dim=-1)),
        (_ELEMENTWISE, lambda: Q * K),
        (_ELEMENTWISE, lambda: Q * K.transpose(-2, -1)),
        (_ROW_SUMS, lambda: scores.sum(dim=-1)),
        (_NO_TRANSPOSE, lambda: Q @ K),
        (_Q_TRANSPOSED, lambda: Q.transpose(-2, -1) @ K),
    ]
    if K.ndim > 2:  # on a 2-D matrix these are the right answer, not a mistake
        mistakes += [
            (_ALL_DIMS_TRANSPOSED, lambda: Q @ _reverse_all(K)),
            (_FIRST_DIMS_TRANSPOSED, lambda: Q @ K.transpose(0, 1)),
        ]
    if K.ndim > 3:
        mistakes.append((_MIDDLE_DIMS_TRANSPOSED, lambda: Q @ K.transpose(1, 2)))
    return mistakes


def _inputs(q_shape: tuple[int, ...], k_shape: tuple[int, ...], dtype: torch.dtype,
            seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    Q = torch.randn(q_shape, generator=generator, dtype=dtype)
    K = torch.randn(k_shape, generator=generator, dtype=dtype)
    return Q, K


def _matches(actual: object, mistakes: Mistakes) -> str:
    for hint, wrong_answer in mistakes:
        try:
            wrong = wrong_answer()
        except Exception:  # that mistake cannot even run on this case: not this one
            continue
        if isinstance(wrong, Tensor) and describe_difference(actual, wrong) is None:
            return hint
    return ""


def _quietly(probe: Probe, Q: Tensor, K: Tensor) -> object:
    """The candidate's output for (Q, K), or None if it raised (while diagnosing, not checking)."""
    try:
        return probe.call(Q, K)
    except (Failure, NotAttempted):
        return None


def _diagnose_cube(probe: Probe, ndim: int) -> str:
    """Name the mistake from a case where every size is 3, so that every mistake runs without crashing.

    On the checked (non-square) shapes, `.T`, `transpose(0, 1)`, `Q * K` and the like crash; on
    a cube their outputs differ in value, so the candidate's output tells which mistake it is.
    """
    Q, K = _inputs((3,) * ndim, (3,) * ndim, torch.float64, seed=99)
    actual = _quietly(probe, Q, K)
    if actual is None:
        return ""
    return _matches(actual, _mistakes(Q, K))


def _diagnose_by_dims(probe: Probe, ndim: int) -> str:
    """A candidate that is right with another number of dimensions mishandles the batch dims."""
    shapes = {2: ((5, 4), (7, 4)), 3: ((2, 5, 4), (2, 7, 4)), 4: ((2, 3, 5, 4), (2, 3, 7, 4))}
    for other in (3, 2, 4):
        if other == ndim:
            continue
        Q, K = _inputs(*shapes[other], torch.float32, seed=50 + other)
        actual = _quietly(probe, Q, K)
        if actual is None or describe_difference(actual, attention_scores(Q, K)) is not None:
            continue
        if other < ndim:
            return (
                f"your function is right for {other}-D inputs but not for {ndim}-D ones: count dimensions "
                "from the end so that any leading batch (and head) dimensions pass through. Swap only the last "
                "two dimensions of K with K.transpose(-2, -1) or K.mT (not .T, .t(), transpose(0, 1) or "
                "permute(0, 2, 1), which assume a fixed number of dimensions); use @ or torch.matmul "
                "(torch.bmm is 3-D only), or einsum with '...qd,...kd->...qk'."
            )
        return (
            f"your function handles {other}-D batches but not {ndim}-D input: use @ or torch.matmul with "
            "K.transpose(-2, -1), which accept any number of leading dimensions, including none "
            "(torch.bmm needs exactly 3-D), or einsum with '...qd,...kd->...qk'."
        )
    return ""


def check_attention_scores(candidate: object) -> CheckResult:
    """Check `attention_scores(Q, K)`: `(..., n_q, d_k), (..., n_k, d_k) -> (..., n_q, n_k)`, i.e. `Q Kᵀ`."""

    def body(probe: Probe) -> str:
        cases = [
            # Batches first, and n_q != n_k != d_k: then the typical mistakes change shapes or values.
            ("a batch of 2 sentences, 5 queries, 7 keys, d_k = 4 (Q (2, 5, 4), K (2, 7, 4))",
             (2, 5, 4), (2, 7, 4), torch.float32),
            ("a batch with heads, Q (2, 3, 5, 4) and K (2, 3, 6, 4) (B, h, n, d_k)",
             (2, 3, 5, 4), (2, 3, 6, 4), torch.float32),
            ("a float64 batch, Q (3, 6, 5), K (3, 2, 5)", (3, 6, 5), (3, 2, 5), torch.float64),
            ("one sentence without a batch, Q (5, 4), K (7, 4)", (5, 4), (7, 4), torch.float32),
            ("self-attention, Q and K both (2, 6, 3)", (2, 6, 3), (2, 6, 3), torch.float32),
            ("a single query, Q (2, 1, 8), K (2, 9, 8)", (2, 1, 8), (2, 9, 8), torch.float32),
        ]
        passed_ndims: set[int] = set()
        for seed, (case, q_shape, k_shape, dtype) in enumerate(cases):
            Q, K = _inputs(q_shape, k_shape, dtype, seed)
            expected = attention_scores(Q, K)
            try:
                try:
                    actual = probe.call(Q, K)
                except Failure as crash:
                    raise Failure(f"On {case}: {crash.summary}.", crash.hint) from None
                probe.expect_close(actual, expected, case, _mistakes(Q, K))
            except Failure as failure:
                if failure.hint in _NAMED_HINTS:
                    raise
                # It crashed, or its output matches no mistake on these shapes: try other shapes.
                ndim = len(q_shape)
                hint = _diagnose_cube(probe, ndim)
                if not hint and ndim not in passed_ndims:
                    hint = _diagnose_by_dims(probe, ndim)
                if not hint:
                    raise
                raise Failure(failure.summary, hint) from None
            passed_ndims.add(len(q_shape))
        return f"{probe.cases} cases: 2-D, batched (B, n, d_k) and with heads (B, h, n, d_k), n_q ≠ n_k, float64."

    return run_check("attention_scores", candidate, body)
