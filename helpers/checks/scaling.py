"""Check for notebook 03's exercise: scaled attention scores `Q Kᵀ / √d_k`."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from helpers.attention import scaled_scores
from helpers.checks.core import CheckResult, Failure, NotAttempted, Probe, describe_difference, run_check

#: (description, shape of Q, shape of K, dtype). Every size differs from every other
#: (B, h, n_q, n_k, d_k), so each wrong divisor gives a different answer and the hint can name it.
_CASES: list[tuple[str, tuple[int, ...], tuple[int, ...], torch.dtype]] = [
    ("a batch: Q (2, 3, 8), K (2, 5, 8)", (2, 3, 8), (2, 5, 8), torch.float32),
    ("batch and heads: Q (2, 3, 4, 6), K (2, 3, 5, 6)", (2, 3, 4, 6), (2, 3, 5, 6), torch.float32),
    ("a batch in float64: Q (2, 3, 8), K (2, 5, 8)", (2, 3, 8), (2, 5, 8), torch.float64),
    ("one sequence: Q (3, 7), K (5, 7)", (3, 7), (5, 7), torch.float32),
]


def _inputs(q_shape: tuple[int, ...], k_shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    Q = torch.randn(q_shape, generator=generator, dtype=dtype)
    K = torch.randn(k_shape, generator=generator, dtype=dtype)
    return Q, K


def _mistakes(Q: Tensor, K: Tensor) -> list[tuple[str, Callable[[], object]]]:
    """What each typical mistake returns for this case, with the hint that names it."""
    d_k = Q.shape[-1]
    raw = Q @ K.transpose(-2, -1)
    return [
        ("you returned Q Kᵀ without scaling: divide by √d_k, the square root of the last dimension of Q "
         "(math.sqrt(Q.shape[-1])).", lambda: raw),
        ("you divided by d_k instead of √d_k (or scaled both Q and K by √d_k). The standard deviation of q·k "
         "grows as √d_k, so dividing by d_k over-shrinks the scores (variance 1/d_k): use math.sqrt(d_k).",
         lambda: raw / d_k),
        ("you multiplied by √d_k: the scores must be divided by √d_k to bring their variance back to 1.",
         lambda: raw * math.sqrt(d_k)),
        ("you wrote d_k ** 1/2, which Python reads as (d_k ** 1) / 2: write d_k ** 0.5 or math.sqrt(d_k).",
         lambda: raw / d_k**1 / 2),
        ("you divided by a square root rounded down to an integer (int(...) or math.isqrt): "
         "keep it a float, math.sqrt(d_k).", lambda: raw / math.isqrt(d_k)),
        ("you divided by √n_k, the number of keys (K.shape[-2]); d_k is the LAST dimension: Q.shape[-1].",
         lambda: raw / math.sqrt(K.shape[-2])),
        ("you divided by √n_q, the number of queries (Q.shape[-2]); d_k is the LAST dimension: Q.shape[-1].",
         lambda: raw / math.sqrt(Q.shape[-2])),
        ("you divided by the square root of Q's first dimension (len(Q) or Q.shape[0]), which is the batch size; "
         "d_k is the LAST dimension: Q.shape[-1].", lambda: raw / math.sqrt(Q.shape[0])),
        ("you divided by the square root of Q.shape[1], the number of heads here; "
         "d_k is the LAST dimension: Q.shape[-1].", lambda: raw / math.sqrt(Q.shape[1])),
        ("you computed K Qᵀ (shape (..., n_k, n_q)) instead of Q Kᵀ (shape (..., n_q, n_k)): "
         "row i must hold query i's scores against every key.",
         lambda: K @ Q.transpose(-2, -1) / math.sqrt(d_k)),
        ("you computed Q Qᵀ: the scores compare each query with the KEYS, Q Kᵀ.",
         lambda: Q @ Q.transpose(-2, -1) / math.sqrt(d_k)),
        ("you applied the softmax already: this function returns the scaled SCORES; "
         "the softmax comes in notebook 04.", lambda: torch.softmax(raw / math.sqrt(d_k), dim=-1)),
        ("you applied a softmax (over the queries, dim=-2) already: this function returns the scaled SCORES.",
         lambda: torch.softmax(raw / math.sqrt(d_k), dim=-2)),
        ("you applied the softmax to unscaled scores: return the scaled scores Q Kᵀ / √d_k themselves.",
         lambda: torch.softmax(raw, dim=-1)),
    ]


def _fixed_dims_hint(probe: Probe, failed_ndim: int) -> str | None:
    """If the candidate raised on `failed_ndim`-D inputs but is right on inputs with another number
    of dimensions, it counts dimensions from the front (`.T`, `transpose(0, 1)`): say so."""
    worked = set()
    for seed, (_, q_shape, k_shape, dtype) in enumerate(_CASES):
        if len(q_shape) == failed_ndim or len(q_shape) in worked:
            continue
        Q, K = _inputs(q_shape, k_shape, dtype, seed)
        try:
            actual = probe.call(Q, K)
        except (Failure, NotAttempted):
            continue
        if describe_difference(actual, scaled_scores(Q, K)) is None:
            worked.add(len(q_shape))
    if not worked:
        return None
    shapes = " and ".join(f"{n}-D" for n in sorted(worked))
    return (
        f"your function is right for {shapes} inputs but fails for {failed_ndim}-D ones: it counts dimensions "
        "from the front. `K.T` reverses ALL dimensions and `transpose(0, 1)` / `transpose(1, 2)` pick fixed ones; "
        "`K.transpose(-2, -1)` (or `K.mT`) swaps the last two, whatever the batch and head dimensions."
    )


def check_scaled_scores(candidate: object) -> CheckResult:
    """Check `scaled_scores(Q, K)`: `(..., n_q, d_k), (..., n_k, d_k) -> (..., n_q, n_k)`, `Q Kᵀ / √d_k`."""

    def body(probe: Probe) -> str:
        # Batched cases first: `.T`, a wrong divisor and K Qᵀ all show up there; a 2-D case hides some.
        for seed, (case, q_shape, k_shape, dtype) in enumerate(_CASES):
            Q, K = _inputs(q_shape, k_shape, dtype, seed)
            try:
                actual = probe.call(Q, K)
            except Failure as failure:
                hint = _fixed_dims_hint(probe, len(q_shape)) if failure.summary.startswith("Your function raised") \
                    else None
                if hint is None:
                    raise
                summary = failure.summary[0].lower() + failure.summary[1:]
                raise Failure(f"On {case}: {summary}", hint) from None
            probe.expect_close(actual, scaled_scores(Q, K), case, _mistakes(Q, K))
        return f"{probe.cases} cases: 2-D, batched and batched with heads, float32 and float64."

    return run_check("scaled_scores", candidate, body)
