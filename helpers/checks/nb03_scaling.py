"""Check of notebook 03's exercise: scaled attention scores `Q Kᵀ / √d_k`."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from helpers.attention import scaled_scores
from helpers.checks.core import Case, Clue, Mistake, Term, check, distinct_sizes, generator, leading, randn
from helpers.checks.nb02_scores import FLOAT64  # the same clue: 03's exercise is 02's, scaled

#: The telling pieces of the solution's code: no Hint 1 or 2 and no ❌ hint may contain one.
SOLUTION_FRAGMENTS: dict[str, list[str]] = {
    "scaled_scores": ["math.sqrt(d_k)", "math.sqrt(Q.shape[-1])", "Q.shape[-1]", "** 0.5", "**0.5",
                      "transpose(-2, -1)", ".mT", "Q @ K"],
}


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
    Mistake("you looped over the keys with the number of queries (Q.shape[-2]): n_q and n_k may differ, and the "
            "output has one column per KEY.", lambda Q, K: _keys_as_queries(Q, K), crashes=True),
    Mistake("you squeezed away a dimension of size 1: with a single query (n_q = 1) the output still has its "
            "n_q dimension, (..., 1, n_k). Do not call .squeeze().", lambda Q, K: scaled_scores(Q, K).squeeze()),
    Mistake("you applied the softmax to unscaled scores: return the scaled scores Q Kᵀ / √d_k themselves.",
            lambda Q, K: torch.softmax(_raw(Q, K), dim=-1)),
]


def _keys_as_queries(Q: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """A loop over the keys that counts them with Q's length: right only when n_q = n_k."""
    columns = [(Q * K[..., j : j + 1, :]).sum(dim=-1) for j in range(Q.shape[-2])]
    return torch.stack(columns, dim=-1) / math.sqrt(K.shape[-1])


def _fewer_dims(case: Case, got: object) -> Iterator[Case]:
    Q, K = case.args
    for count in range(1, Q.ndim - 1):
        yield Case("fewer dimensions", (leading(Q, count), leading(K, count)))


FIXED_DIMS = Clue(lambda case, fewer: (
    f"your function is right for {fewer.args[0].ndim}-D inputs but fails for {case.args[0].ndim}-D ones: it counts "
    "dimensions from the front. `K.T` reverses ALL dimensions and `transpose(0, 1)` / `transpose(1, 2)` pick fixed "
    "ones; swap the last two dimensions of K, counted from the end, whatever the batch and head dimensions."),
    _fewer_dims)


def _more_dims(case: Case, got: object) -> Iterator[Case]:
    Q, K = case.args
    if Q.ndim == 2:
        yield Case("more dimensions", (Q[None], K[None]))


NO_BATCH = Clue(lambda case, more: (
    "your function handles batched inputs but not 2-D input (no batch dimension): the matrix product @ and a "
    "transpose counted from the end work with any number of leading dimensions, including none (torch.bmm "
    "needs exactly 3-D)."), _more_dims)


def _sizes(g: torch.Generator, count: int, low: int = 2, high: int = 10) -> list[int]:
    """`count` different sizes from low to high - 1 drawn from `g`, d_k (the last) such that every wrong divisor
    (√ of another size, d_k, d_k / 2, a rounded-down root, a product instead of a quotient) gives another answer."""
    while True:
        sizes = distinct_sizes(g, count, low, high)
        d_k = sizes[-1]
        factors = [1 / math.sqrt(d_k), 1.0, 1 / d_k, 2 / d_k, 1 / math.isqrt(d_k), math.sqrt(d_k),
                   *(1 / math.sqrt(n) for n in sizes[:-1])]
        if all(abs(a - b) > 1e-3 for i, a in enumerate(factors) for b in factors[i + 1:]):
            return sizes


def _only(where: object, wrong: object) -> object:
    """An implementation right everywhere except where `where(Q, K)` holds, where it is `wrong` (contract tests)."""
    return lambda Q, K: wrong(Q, K) if where(Q, K) else scaled_scores(Q, K)  # type: ignore[operator]


CONTRACT = [
    Term("no leading dimension: Q (n_q, d_k), K (n_k, d_k)", "one sequence",
         _only(lambda Q, K: Q.ndim == 2, lambda Q, K: torch.einsum("b...qd,b...kd->b...qk", Q, K) / 2),
         "but not 2-D input"),
    Term("one leading batch dimension: (B, n, d_k)", "a batch (B, n, d_k)",
         _only(lambda Q, K: Q.ndim == 3, lambda Q, K: Q @ K.transpose(0, 1) / math.sqrt(K.shape[-1])),
         "counts dimensions from the front"),
    Term("batch and heads: (B, h, n, d_k)", "batch and heads",
         _only(lambda Q, K: Q.ndim == 4, lambda Q, K: Q @ K.transpose(1, 2) / math.sqrt(K.shape[-1])),
         "counts dimensions from the front"),
    Term("n_q ≠ n_k (cross-attention)", "n_q ≠ n_k",
         _only(lambda Q, K: Q.shape[-2] != K.shape[-2], _keys_as_queries), "n_q and n_k may differ"),
    Term("d_k is the last dimension, different from every other size", "d_k =",
         _only(lambda Q, K: True, lambda Q, K: _raw(Q, K) / math.sqrt(K.shape[-2])), "√n_k"),
    Term("a single query, n_q = 1", "a single query",
         _only(lambda Q, K: Q.shape[-2] == 1, lambda Q, K: scaled_scores(Q, K).squeeze()), "squeezed away"),
    Term("float64 inputs", "float64",
         _only(lambda Q, K: Q.dtype == torch.float64, lambda Q, K: scaled_scores(Q, K.float())), "not on float64"),
]


@check(reference=scaled_scores, mistakes=MISTAKES, clues=[FIXED_DIMS, NO_BATCH, FLOAT64], contract=CONTRACT,
       passed="{cases} generated cases: 2-D, batched and batched with heads, n_q ≠ n_k, a single query, "
              "float32 and float64.")
def check_scaled_scores() -> Iterator[Case]:
    """Check `scaled_scores(Q, K)`: `(..., n_q, d_k), (..., n_k, d_k) -> (..., n_q, n_k)`, `Q Kᵀ / √d_k`.

    Sizes and values come from a seeded generator. Batched cases first: `.T`, a wrong divisor and K Qᵀ all
    show up there; a 2-D case hides some. Every size differs from every other (B, h, n_q, n_k, d_k), so each
    wrong divisor gives a different answer.
    """
    g = generator(0)
    B, n_q, n_k, d_k = _sizes(g, 4)
    yield Case(f"a batch (B, n, d_k), n_q ≠ n_k, d_k = {d_k}: Q ({B}, {n_q}, {d_k}), K ({B}, {n_k}, {d_k})",
               (randn(g, B, n_q, d_k), randn(g, B, n_k, d_k)))
    B, h, n_q, n_k, d_k = _sizes(g, 5)
    yield Case(f"batch and heads, d_k = {d_k}: Q ({B}, {h}, {n_q}, {d_k}), K ({B}, {h}, {n_k}, {d_k})",
               (randn(g, B, h, n_q, d_k), randn(g, B, h, n_k, d_k)))
    B, n_q, n_k, d_k = _sizes(g, 4)
    yield Case(f"a batch in float64, d_k = {d_k}: Q ({B}, {n_q}, {d_k}), K ({B}, {n_k}, {d_k})",
               (randn(g, B, n_q, d_k, dtype=torch.float64), randn(g, B, n_k, d_k, dtype=torch.float64)))
    n_q, n_k, d_k = _sizes(g, 3)
    yield Case(f"one sequence, d_k = {d_k}: Q ({n_q}, {d_k}), K ({n_k}, {d_k})",
               (randn(g, n_q, d_k), randn(g, n_k, d_k)))
    B, n_k, d_k = _sizes(g, 3)
    yield Case(f"a single query, d_k = {d_k}: Q ({B}, 1, {d_k}), K ({B}, {n_k}, {d_k})",
               (randn(g, B, 1, d_k), randn(g, B, n_k, d_k)))
