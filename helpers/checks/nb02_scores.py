"""Check of notebook 02's exercise: the attention scores `Q Kᵀ` for any leading batch dims."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from helpers.attention import attention_scores
from helpers.checks.core import Case, Clue, Mistake, Term, check, distinct_sizes, generator, leading, randn

#: The telling pieces of the solution's code: no Hint 1 or 2 and no ❌ hint may contain one.
SOLUTION_FRAGMENTS: dict[str, list[str]] = {
    "attention_scores": ["transpose(-2, -1)", ".mT", "Q @ K", "torch.matmul(Q, K", "qd,...kd->"],
}

SOFTMAX = ("you applied a softmax: that turns scores into attention weights, which is notebook 04. "
           "Here return the raw scores Q Kᵀ.")
ELEMENTWISE = ("you multiplied element by element (*): scores need the matrix product (@ or torch.matmul), so "
               "that every query meets every key.")


def _reverse_all(x: Tensor) -> Tensor:
    """What `x.T` does (without torch's deprecation warning for more than 2 dims)."""
    return x.permute(*reversed(range(x.ndim)))


MISTAKES = [
    Mistake("you computed K Qᵀ, the transpose of the answer (shape (..., n_k, n_q)): rows must be queries and "
            "columns keys: Q Kᵀ, with Q on the left.", lambda Q, K: K @ Q.mT),
    Mistake("you divided by √d_k: that scaling is the next step (notebook 03). Here return the raw "
            "scores Q Kᵀ.", lambda Q, K: Q @ K.mT / math.sqrt(Q.shape[-1])),
    Mistake("you divided by d_k: return the raw scores Q Kᵀ (the scaling, by √d_k, is "
            "notebook 03).", lambda Q, K: Q @ K.mT / Q.shape[-1]),
    Mistake(SOFTMAX, lambda Q, K: torch.softmax(Q @ K.mT, dim=-1)),
    Mistake(SOFTMAX, lambda Q, K: torch.softmax(Q @ K.mT / math.sqrt(Q.shape[-1]), dim=-1)),
    Mistake(SOFTMAX, lambda Q, K: torch.softmax(Q @ K.mT, dim=-2)),
    Mistake("you squeezed away a dimension of size 1: with a single query (n_q = 1) the output still has its "
            "n_q dimension, (..., 1, n_k). Do not call .squeeze() on the inputs or the result.",
            lambda Q, K: (Q @ K.mT).squeeze()),
    Mistake("you computed the dot products of matching rows only (query i with key i, like the warm-up "
            "batched_dot): one number per row. Scores pair EVERY query with EVERY key: an n_q × n_k matrix, "
            "Q Kᵀ.", lambda Q, K: (Q * K).sum(dim=-1)),
    Mistake(ELEMENTWISE, lambda Q, K: Q * K),
    Mistake(ELEMENTWISE, lambda Q, K: Q * K.mT),
    Mistake("you looped over the keys with the number of queries (Q.shape[-2]): n_q and n_k may differ "
            "(cross-attention), and the output has one column per KEY, n_k of them.",
            lambda Q, K: _keys_as_queries(Q, K), crashes=True),
    Mistake("you summed each query's scores over the keys, which leaves one number per query: keep the "
            "whole n_q × n_k matrix Q Kᵀ.", lambda Q, K: (Q @ K.mT).sum(dim=-1)),
    Mistake("you multiplied Q by K without transposing K: the dot product of query i and key j needs K's "
            "rows turned into columns (only its last two dimensions swap).", lambda Q, K: Q @ K),
    Mistake("you transposed Q instead of K (Qᵀ K is d_k × d_k, a feature-by-feature matrix): "
            "the scores Q Kᵀ are n_q × n_k.", lambda Q, K: Q.mT @ K),
    # On a 2-D matrix these are the right answer, so they can only match batched inputs.
    Mistake("you used `.T` (or `.permute` reversing every dimension): on a batched tensor `.T` reverses ALL "
            "dimensions, so K of shape (B, n_k, d_k) becomes (d_k, n_k, B). It is only right for a 2-D matrix. "
            "Swap just the last two dimensions of K, counting them from the end.", lambda Q, K: Q @ _reverse_all(K)),
    Mistake("you transposed the wrong dimensions: K.transpose(0, 1) swaps the batch with the tokens "
            "when K is (B, n_k, d_k). It is only right for a 2-D matrix. Count the dimensions "
            "from the end.", lambda Q, K: Q @ K.transpose(0, 1)),
    Mistake("you transposed the wrong dimensions: K.transpose(1, 2) is right for (B, n_k, d_k) but, for a "
            "(B, h, n_k, d_k) batch with heads, it swaps heads and tokens. Count the dimensions "
            "from the end.", lambda Q, K: Q @ K.transpose(1, 2)),
]


def _keys_as_queries(Q: Tensor, K: Tensor) -> Tensor:
    """A loop over the keys that counts them with Q's length: right only when n_q = n_k."""
    columns = [(Q * K[..., j : j + 1, :]).sum(dim=-1) for j in range(Q.shape[-2])]
    return torch.stack(columns, dim=-1)


def _cube(case: Case) -> Iterator[Case]:
    """Every size 3: on the checked (non-square) shapes `.T`, `transpose(0, 1)`, `Q * K` and the like crash;
    on a cube they run and give different values, so the candidate's output tells which mistake it is."""
    g = generator(99)
    ndim = case.args[0].ndim
    yield Case(f"a {ndim}-D cube", (randn(g, *(3,) * ndim, dtype=torch.float64),
                                     randn(g, *(3,) * ndim, dtype=torch.float64)))


def _other_dims(case: Case, got: object) -> Iterator[Case]:
    Q, K = case.args
    if Q.ndim > 2:
        yield Case("fewer dimensions", (leading(Q), leading(K)))
    yield Case("more dimensions", (Q[None], K[None]))


def _dims_hint(case: Case, other: Case) -> str:
    ndim, right = case.args[0].ndim, other.args[0].ndim
    if right < ndim:
        return (f"your function is right for {right}-D inputs but not for {ndim}-D ones: count dimensions "
                "from the end (negative dimensions) so that any leading batch (and head) dimensions pass through. "
                "Swap only the last two dimensions of K (not .T, .t(), transpose(0, 1) or permute(0, 2, 1), which "
                "assume a fixed number of dimensions); the matrix product @ broadcasts over leading dimensions "
                "(torch.bmm is 3-D only), and so does einsum with '...' standing for them.")
    return (f"your function handles {right}-D batches but not {ndim}-D input: the matrix product @ and a "
            "transpose counted from the end accept any number of leading dimensions, including none "
            "(torch.bmm needs exactly 3-D); so does einsum with '...' standing for them.")


def _in_float32(case: Case, got: object) -> Iterator[Case]:
    if any(isinstance(a, Tensor) and a.dtype == torch.float64 for a in case.args):
        yield Case("the same inputs in float32", tuple(a.float() for a in case.args))


FLOAT64 = Clue("your function is right in float32 but not on float64 inputs: compute in the inputs' dtype "
               "(no .float(), and no new tensor made without dtype=Q.dtype).", _in_float32)



def _only(where: object, wrong: object) -> object:
    """An implementation right everywhere except where `where(Q, K)` holds, where it is `wrong` (contract tests)."""
    return lambda Q, K: wrong(Q, K) if where(Q, K) else Q @ K.transpose(-2, -1)  # type: ignore[operator]


CONTRACT = [
    Term("no leading dimension: Q (n_q, d_k), K (n_k, d_k)", "without a batch",
         _only(lambda Q, K: Q.ndim == 2, lambda Q, K: torch.einsum("b...qd,b...kd->b...qk", Q, K)),
         "but not 2-D input"),
    Term("one leading batch dimension: (B, n, d_k)", "a batch (B, n, d_k)",
         _only(lambda Q, K: Q.ndim == 3, lambda Q, K: Q @ K.transpose(0, 1)), "transposed the wrong dimensions"),
    Term("batch and heads: (B, h, n, d_k)", "batch and heads (B, h, n, d_k)",
         _only(lambda Q, K: Q.ndim == 4, lambda Q, K: Q @ K.transpose(1, 2)), "swaps heads and tokens"),
    Term("n_q ≠ n_k (cross-attention)", "n_q ≠ n_k",
         _only(lambda Q, K: Q.shape[-2] != K.shape[-2], _keys_as_queries), "n_q and n_k may differ"),
    Term("a single query, n_q = 1", "a single query",
         _only(lambda Q, K: Q.shape[-2] == 1, lambda Q, K: (Q @ K.mT).squeeze()), "squeezed away"),
    Term("float64 inputs", "float64",
         _only(lambda Q, K: Q.dtype == torch.float64, lambda Q, K: Q @ K.float().mT),
         "not on float64"),
]


@check(reference=attention_scores, mistakes=MISTAKES, diagnostic=_cube, contract=CONTRACT,
       clues=[Clue(_dims_hint, _other_dims), FLOAT64],
       passed="{cases} generated cases: 2-D, batched (B, n, d_k) and with heads (B, h, n, d_k), n_q ≠ n_k, "
              "a single query, float64.")
def check_attention_scores() -> Iterator[Case]:
    """Check `attention_scores(Q, K)`: `(..., n_q, d_k), (..., n_k, d_k) -> (..., n_q, n_k)`, i.e. `Q Kᵀ`.

    Sizes and values come from a seeded generator; in the batched cases B, h, n_q, n_k and d_k all differ,
    so that the typical mistakes change a shape or a value.
    """
    g = generator(0)
    B, n_q, n_k, d_k = distinct_sizes(g, 4)
    yield Case(f"a batch (B, n, d_k), n_q ≠ n_k: Q ({B}, {n_q}, {d_k}), K ({B}, {n_k}, {d_k})",
               (randn(g, B, n_q, d_k), randn(g, B, n_k, d_k)))
    B, h, n_q, n_k, d_k = distinct_sizes(g, 5)
    yield Case(f"batch and heads (B, h, n, d_k), n_q ≠ n_k: Q ({B}, {h}, {n_q}, {d_k}), K ({B}, {h}, {n_k}, {d_k})",
               (randn(g, B, h, n_q, d_k), randn(g, B, h, n_k, d_k)))
    B, n_q, n_k, d_k = distinct_sizes(g, 4)
    yield Case(f"a float64 batch: Q ({B}, {n_q}, {d_k}), K ({B}, {n_k}, {d_k})",
               (randn(g, B, n_q, d_k, dtype=torch.float64), randn(g, B, n_k, d_k, dtype=torch.float64)))
    n_q, n_k, d_k = distinct_sizes(g, 3)
    yield Case(f"one sentence without a batch dimension: Q ({n_q}, {d_k}), K ({n_k}, {d_k})",
               (randn(g, n_q, d_k), randn(g, n_k, d_k)))
    B, n, d_k = distinct_sizes(g, 3)
    yield Case(f"self-attention, n_q = n_k: Q and K both ({B}, {n}, {d_k})",
               (randn(g, B, n, d_k), randn(g, B, n, d_k)))
    B, n_k, d_k = distinct_sizes(g, 3)
    yield Case(f"a single query: Q ({B}, 1, {d_k}), K ({B}, {n_k}, {d_k})",
               (randn(g, B, 1, d_k), randn(g, B, n_k, d_k)))
