"""Check of notebook 02's exercise: the attention scores `Q Kᵀ` for any leading batch dims."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from helpers.attention import attention_scores
from helpers.checks.core import Case, Clue, Mistake, check, generator, leading, randn

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
    Mistake("you computed the dot products of matching rows only (query i with key i, like the warm-up "
            "batched_dot): one number per row. Scores pair EVERY query with EVERY key: an n_q × n_k matrix, "
            "Q Kᵀ.", lambda Q, K: (Q * K).sum(dim=-1)),
    Mistake(ELEMENTWISE, lambda Q, K: Q * K),
    Mistake(ELEMENTWISE, lambda Q, K: Q * K.mT),
    Mistake("you summed each query's scores over the keys, which leaves one number per query: keep the "
            "whole n_q × n_k matrix Q Kᵀ.", lambda Q, K: (Q @ K.mT).sum(dim=-1)),
    Mistake("you multiplied Q by K without transposing K: the dot product of query i and key j needs K's "
            "rows turned into columns (only its last two dimensions swap).", lambda Q, K: Q @ K),
    Mistake("you transposed Q instead of K (Qᵀ K is d_k × d_k, a feature-by-feature matrix): "
            "the scores Q Kᵀ are n_q × n_k.", lambda Q, K: Q.mT @ K),
    # On a 2-D matrix these are the right answer, so they can only match batched inputs.
    Mistake("you used `.T` (or `.permute` reversing every dimension): on a batched tensor `.T` reverses ALL "
            "dimensions, so K of shape (B, n_k, d_k) becomes (d_k, n_k, B). It is only right for a 2-D matrix. "
            "Swap just the last two dimensions: K.transpose(-2, -1) or K.mT.", lambda Q, K: Q @ _reverse_all(K)),
    Mistake("you transposed the wrong dimensions: K.transpose(0, 1) swaps the batch with the tokens "
            "when K is (B, n_k, d_k). It is only right for a 2-D matrix. Count the dimensions "
            "from the end.", lambda Q, K: Q @ K.transpose(0, 1)),
    Mistake("you transposed the wrong dimensions: K.transpose(1, 2) is right for (B, n_k, d_k) but, for a "
            "(B, h, n_k, d_k) batch with heads, it swaps heads and tokens. Count the dimensions "
            "from the end.", lambda Q, K: Q @ K.transpose(1, 2)),
]


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
                "from the end so that any leading batch (and head) dimensions pass through. Swap only the last "
                "two dimensions of K with K.transpose(-2, -1) or K.mT (not .T, .t(), transpose(0, 1) or "
                "permute(0, 2, 1), which assume a fixed number of dimensions); use @ or torch.matmul "
                "(torch.bmm is 3-D only), or einsum with '...' standing for the leading dimensions.")
    return (f"your function handles {right}-D batches but not {ndim}-D input: @ or torch.matmul, and "
            "K.transpose(-2, -1), accept any number of leading dimensions, including none "
            "(torch.bmm needs exactly 3-D); so does einsum with '...' standing for them.")


@check(reference=attention_scores, mistakes=MISTAKES, diagnostic=_cube, clues=[Clue(_dims_hint, _other_dims)],
       passed="{cases} cases: 2-D, batched (B, n, d_k) and with heads (B, h, n, d_k), n_q ≠ n_k, float64.")
def check_attention_scores() -> Iterator[Case]:
    """Check `attention_scores(Q, K)`: `(..., n_q, d_k), (..., n_k, d_k) -> (..., n_q, n_k)`, i.e. `Q Kᵀ`."""
    # Batches first, and n_q != n_k != d_k: then the typical mistakes change shapes or values.
    for seed, (name, q_shape, k_shape, dtype) in enumerate([
        ("a batch of 2 sentences, 5 queries, 7 keys, d_k = 4 (Q (2, 5, 4), K (2, 7, 4))",
         (2, 5, 4), (2, 7, 4), torch.float32),
        ("a batch with heads, Q (2, 3, 5, 4) and K (2, 3, 6, 4) (B, h, n, d_k)", (2, 3, 5, 4), (2, 3, 6, 4),
         torch.float32),
        ("a float64 batch, Q (3, 6, 5), K (3, 2, 5)", (3, 6, 5), (3, 2, 5), torch.float64),
        ("one sentence without a batch, Q (5, 4), K (7, 4)", (5, 4), (7, 4), torch.float32),
        ("self-attention, Q and K both (2, 6, 3)", (2, 6, 3), (2, 6, 3), torch.float32),
        ("a single query, Q (2, 1, 8), K (2, 9, 8)", (2, 1, 8), (2, 9, 8), torch.float32),
    ]):
        g = generator(seed)
        yield Case(name, (randn(g, *q_shape, dtype=dtype), randn(g, *k_shape, dtype=dtype)))
