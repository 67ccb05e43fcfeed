"""Check of notebook 03's exercise: scaled attention scores `Q Kᵀ / √d_k`."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from helpers.attention import scaled_scores
from helpers.checks.core import Case, Clue, Mistake, check, generator, leading, randn


def _raw(Q: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    return Q @ K.transpose(-2, -1)


MISTAKES = [
    Mistake("you returned Q Kᵀ without scaling: divide by √d_k, the square root of the last dimension of "
            "Q.", _raw),
    Mistake("you divided by d_k instead of √d_k (or scaled both Q and K by √d_k). The standard deviation of q·k "
            "grows as √d_k, so dividing by d_k over-shrinks the scores (variance 1/d_k): divide by its square root.",
            lambda Q, K: _raw(Q, K) / Q.shape[-1]),
    Mistake("you multiplied by √d_k: the scores must be divided by √d_k to bring their variance back to 1.",
            lambda Q, K: _raw(Q, K) * math.sqrt(Q.shape[-1])),
    Mistake("you wrote d_k ** 1/2, which Python reads as (d_k ** 1) / 2: the exponent needs parentheses (or "
            "take the root with a function).",
            lambda Q, K: _raw(Q, K) / Q.shape[-1] ** 1 / 2),
    Mistake("you divided by a square root rounded down to an integer (int(...) or math.isqrt): "
            "keep the square root a float.", lambda Q, K: _raw(Q, K) / math.isqrt(Q.shape[-1])),
    Mistake("you divided by √n_k, the number of keys (K.shape[-2]); d_k is the LAST dimension of Q.",
            lambda Q, K: _raw(Q, K) / math.sqrt(K.shape[-2])),
    Mistake("you divided by √n_q, the number of queries (Q.shape[-2]); d_k is the LAST dimension of Q.",
            lambda Q, K: _raw(Q, K) / math.sqrt(Q.shape[-2])),
    Mistake("you divided by the square root of Q's first dimension (len(Q) or Q.shape[0]), which is the batch "
            "size; d_k is the LAST dimension of Q.", lambda Q, K: _raw(Q, K) / math.sqrt(Q.shape[0])),
    Mistake("you divided by the square root of Q.shape[1], the number of heads here; "
            "d_k is the LAST dimension of Q.", lambda Q, K: _raw(Q, K) / math.sqrt(Q.shape[1])),
    Mistake("you computed K Qᵀ (shape (..., n_k, n_q)) instead of Q Kᵀ (shape (..., n_q, n_k)): "
            "row i must hold query i's scores against every key.", lambda Q, K: _raw(K, Q) / math.sqrt(Q.shape[-1])),
    Mistake("you computed Q Qᵀ: the scores compare each query with the KEYS, Q Kᵀ.",
            lambda Q, K: _raw(Q, Q) / math.sqrt(Q.shape[-1])),
    Mistake("you applied the softmax already: this function returns the scaled SCORES; "
            "the softmax comes in notebook 04.", lambda Q, K: torch.softmax(scaled_scores(Q, K), dim=-1)),
    Mistake("you applied a softmax (over the queries, dim=-2) already: this function returns the scaled SCORES.",
            lambda Q, K: torch.softmax(scaled_scores(Q, K), dim=-2)),
    Mistake("you applied the softmax to unscaled scores: return the scaled scores Q Kᵀ / √d_k themselves.",
            lambda Q, K: torch.softmax(_raw(Q, K), dim=-1)),
]


def _fewer_dims(case: Case, got: object) -> Iterator[Case]:
    Q, K = case.args
    for count in range(1, Q.ndim - 1):
        yield Case("fewer dimensions", (leading(Q, count), leading(K, count)))


FIXED_DIMS = Clue(lambda case, fewer: (
    f"your function is right for {fewer.args[0].ndim}-D inputs but fails for {case.args[0].ndim}-D ones: it counts "
    "dimensions from the front. `K.T` reverses ALL dimensions and `transpose(0, 1)` / `transpose(1, 2)` pick fixed "
    "ones; `K.transpose(-2, -1)` (or `K.mT`) swaps the last two, whatever the batch and head dimensions."),
    _fewer_dims)


@check(reference=scaled_scores, mistakes=MISTAKES, clues=[FIXED_DIMS],
       passed="{cases} cases: 2-D, batched and batched with heads, float32 and float64.")
def check_scaled_scores() -> Iterator[Case]:
    """Check `scaled_scores(Q, K)`: `(..., n_q, d_k), (..., n_k, d_k) -> (..., n_q, n_k)`, `Q Kᵀ / √d_k`."""
    # Batched cases first: `.T`, a wrong divisor and K Qᵀ all show up there; a 2-D case hides some. Every size
    # differs from every other (B, h, n_q, n_k, d_k), so each wrong divisor gives a different answer.
    for seed, (name, q_shape, k_shape, dtype) in enumerate([
        ("a batch: Q (2, 3, 8), K (2, 5, 8)", (2, 3, 8), (2, 5, 8), torch.float32),
        ("batch and heads: Q (2, 3, 4, 6), K (2, 3, 5, 6)", (2, 3, 4, 6), (2, 3, 5, 6), torch.float32),
        ("a batch in float64: Q (2, 3, 8), K (2, 5, 8)", (2, 3, 8), (2, 5, 8), torch.float64),
        ("one sequence: Q (3, 7), K (5, 7)", (3, 7), (5, 7), torch.float32),
    ]):
        g = generator(seed)
        yield Case(name, (randn(g, *q_shape, dtype=dtype), randn(g, *k_shape, dtype=dtype)))
