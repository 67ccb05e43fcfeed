"""Check of notebook 01's exercise: queries, keys and values from the same input.

The statement: `X (..., n, d_model)` with any number of leading dimensions (none included: one
sentence `(n, d_model)`), `W_q`, `W_k (d_model, d_k)` and `W_v (d_model, d_v)`, where d_v may differ
from d_k and d_k from d_model; returns `(Q, K, V)` in that order, every leading dimension kept (size 1 too).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import permutations

import torch

from helpers.attention import project_qkv
from helpers.checks.core import Case, Clue, Mistake, Term, check, distinct_sizes, generator, leading, randn
from helpers.tensors import format_shape

NAMES = ("Q", "K", "V")


@dataclass(frozen=True)
class Shapes:
    description: str
    x_shape: tuple[int, ...]  # (..., n, d_model)
    d_k: int
    d_v: int
    dtype: torch.dtype = torch.float32


#: The telling pieces of the solution (tests/test_hint_tiers.py: no Hint 1, Hint 2 or ❌ hint contains one).
SOLUTION_FRAGMENTS: dict[str, list[str]] = {
    "project_qkv": ["X @ W_q", "X @ W_k", "X @ W_v", "matmul(X, W_", "X @ W for W in"],
}



def _square(seed: int) -> Shapes:
    B, d = distinct_sizes(generator(seed), 2, high=8)
    return Shapes(f"a batch of {B} sentences of {d} tokens, d_model = d_k = d_v = {d} (X of shape ({B}, {d}, {d}))",
                  (B, d, d), d, d)


def _batch(seed: int, lead: tuple[str, ...], what: str, dtype: torch.dtype = torch.float32) -> Shapes:
    g = generator(seed)
    *batch, n, d_model, d_k, d_v = distinct_sizes(g, len(lead) + 4, high=8)
    x_shape = (*batch, n, d_model)
    if lead == ("1",):  # a batch of one sentence: the size-1 dimension must stay
        x_shape = (1, n, d_model)
    name = f"{what}: X of shape {format_shape(x_shape)}, d_k = {d_k}, d_v = {d_v} (d_v ≠ d_k)"
    return Shapes(name, x_shape, d_k, d_v, dtype)


#: Batched cases first: they tell the mistakes apart. The first is square (n = d_model = d_k = d_v),
#: so that `X @ W.T` and `W @ X` run and give wrong values instead of crashing; the others are not,
#: so that any mix-up changes a shape. Sizes are drawn from a seeded generator, all different.
CASES = [
    _square(0),
    _batch(1, ("B",), "a batch of sentences"),
    _batch(2, ("B1", "B2"), "two batch dimensions"),
    _batch(3, ("B",), "a batch in float64", torch.float64),
    _batch(4, ("1",), "a batch of size 1"),
    _batch(5, (), "a single sentence"),
]


def _w(i: int) -> str:
    return f"W_{NAMES[i].lower()}"


def _order_hint(order: tuple[int, ...]) -> str:
    return (f"your function returns them in the order ({', '.join(NAMES[i] for i in order)}): return them as "
            "(Q, K, V), the order the unpacking `Q, K, V = project_qkv(...)` expects.")


def _same_weight_hint(name: int, used: int) -> str:
    return (f"you used the same weight for two outputs: your {NAMES[name]} was made with {_w(used)}, "
            f"but {NAMES[name]} needs its own {_w(name)}. Each of Q, K and V has its own weight matrix: "
            "that is what makes them differ although they start from the same X.")


def _transposed_hint(i: int) -> str:
    d = "d_v" if i == 2 else "d_k"
    return (f"your {NAMES[i]} was made with {_w(i)} transposed: you multiplied by the transposed weight, the "
            f"convention of nn.Linear (its .weight stores Wᵀ). Here {_w(i)} comes as a (d_model, {d}) matrix "
            "already, so it goes into the product as it is, without a transpose.")


def _left_hint(i: int) -> str:
    return (f"your {NAMES[i]} equals {_w(i)} @ X: the weight goes on the right. Each token is a row of X, and "
            f"multiplying X by {_w(i)} on the right maps every row (d_model numbers) to a row of {NAMES[i]}.")


def _with(i: int, product: object) -> object:
    """A wrong implementation whose output `i` is `product(X, W)` of its own weight, the others right."""
    def wrong(X: torch.Tensor, *weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(product(X, W) if j == i else X @ W for j, W in enumerate(weights))  # type: ignore[operator]
    return wrong


MISTAKES = [
    *(Mistake(_order_hint(order), lambda X, *W, order=order: tuple(X @ W[i] for i in order))
      for order in permutations(range(3)) if order != (0, 1, 2)),
    *(Mistake(_same_weight_hint(i, j), lambda X, *W, i=i, j=j: tuple(X @ W[j if n == i else n] for n in range(3)),
              part=NAMES[i]) for i in range(3) for j in range(3) if i != j),
    *(Mistake(_transposed_hint(i), _with(i, lambda X, W: X @ W.mT), part=NAMES[i]) for i in range(3)),
    *(Mistake(_left_hint(i), _with(i, lambda X, W: W @ X), part=NAMES[i]) for i in range(3)),
]


def _transposed_weights(case: Case, got: object) -> Iterator[Case]:
    # X @ W.T crashes on non-square weights; given Wᵀ instead of W, it computes X @ W.
    X, *weights = case.args
    yield Case(case.name, (X, *(W.mT.contiguous() for W in weights)), expected=case.outcome(project_qkv))


def _fewer_batch_dims(case: Case, got: object) -> Iterator[Case]:
    X, *weights = case.args
    for count in range(1, X.ndim - 1):
        yield Case(case.name, (leading(X, count), *weights))


def _doubled_weights(case: Case, got: object) -> Iterator[Case]:
    """If the candidate returns the same with every weight doubled, it does not use its weight arguments."""
    if isinstance(got, (tuple, list)) and len(got) == 3 and all(isinstance(t, torch.Tensor) for t in got):
        X, *weights = case.args
        yield Case(case.name, (X, *(2 * W for W in weights)), expected=got)


def _one_more_batch_dim(case: Case, got: object) -> Iterator[Case]:
    X, *weights = case.args
    if X.ndim == 2:  # type: ignore[union-attr]
        yield Case(case.name, (X[None], *weights))  # type: ignore[index]


def _values_as_wide_as_keys(case: Case, got: object) -> Iterator[Case]:
    """The same case with W_v as wide as W_k: a candidate right there assumes d_v = d_k."""
    X, W_q, W_k, W_v = case.args
    if W_v.shape[-1] != W_k.shape[-1]:  # type: ignore[union-attr]
        yield Case(case.name, (X, W_q, W_k, W_k.flip(-1).contiguous()))  # type: ignore[union-attr]


CLUES = [
    Clue("you multiplied by the transposed weight, X @ W.T: that is nn.Linear's convention (its .weight stores Wᵀ). "
         "Here the weights come as (d_model, d_k) matrices already: use them as they are, with no transpose.",
         _transposed_weights),
    Clue(lambda case, smaller: (
        f"your function works for X of shape {format_shape(smaller.args[0].shape)} but not "
        f"{format_shape(case.args[0].shape)}: it must work for any number of leading batch dimensions. "
        "The @ product does (matmul broadcasts over them); avoid `X.T` (it reverses every dimension), "
        "positive dimension numbers (use dim=-1, transpose(-2, -1)) and einsum strings with a fixed "
        "number of letters (write '...' for the leading dimensions)."), _fewer_batch_dims),
    Clue(lambda case, batched: (
        f"your function works for a batch, X of shape {format_shape(batched.args[0].shape)}, but not for "
        f"a single sentence, X of shape {format_shape(case.args[0].shape)}: X may have no batch dimension at all. "
        "Avoid einsum strings or indexing that need a batch letter, and loops over X's first dimension that "
        "expect a sentence there."), _one_more_batch_dim),
    Clue("your function works when d_v = d_k but not here, where d_v differs from d_k: V's width comes from "
         "W_v alone. Do not put Q, K and V into one tensor (stack, cat) or size V by W_k.", _values_as_wide_as_keys),
    Clue("your function returns the same result whatever weights it is given: use its arguments W_q, W_k, W_v "
         "(lower-case), not the notebook's W_Q, W_K, W_V.", _doubled_weights),
]


SQUEEZED = Mistake(
    "you squeezed away every dimension of size 1: a batch of one sentence keeps its batch dimension. "
    "Only the last dimension changes (d_model becomes d_k or d_v).",
    lambda X, *W: tuple((X @ w).squeeze() for w in W))
MISTAKES.append(SQUEEZED)


def _einsum_needs_a_batch(X: torch.Tensor, *weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(torch.einsum("...bnd,dk->...bnk", X, W) for W in weights)


def _einsum_per_ndim(X: torch.Tensor, *weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
    spec = {2: "nd,dk->nk", 3: "bnd,dk->bnk"}[X.ndim]  # no entry for (B1, B2, n, d_model)
    return tuple(torch.einsum(spec, X, W) for W in weights)


def _stacked(X: torch.Tensor, *weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(torch.stack([torch.matmul(X, W) for W in weights]).unbind(0))  # needs d_v = d_k


CONTRACT = [
    Term("a single sentence, X of shape (n, d_model), no batch dimension", "a single sentence",
         _einsum_needs_a_batch, "a single sentence"),
    Term("more leading dimensions, X of shape (B1, B2, n, d_model)", "two batch dimensions",
         _einsum_per_ndim, "any number of leading batch dimensions"),
    Term("d_v different from d_k (W_v of its own width)", "(d_v ≠ d_k)", _stacked, "d_v differs from d_k"),
    Term("a batch of size 1, X of shape (1, n, d_model): the dimension stays", "a batch of size 1",
         SQUEEZED.wrong, "squeezed away every dimension of size 1"),
]


@check(reference=project_qkv, mistakes=MISTAKES, clues=CLUES, returns=NAMES, contract=CONTRACT,
       passed="{cases} cases: one sentence (n, d_model), batches of one and two leading dimensions, "
              "a batch of size 1, square and non-square weights, d_v ≠ d_k, float32 and float64.")
def check_project_qkv() -> Iterator[Case]:
    """Check `project_qkv(X, W_q, W_k, W_v) -> (Q, K, V)`: `Q = X W_q`, `K = X W_k`, `V = X W_v`.

    X `(..., n, d_model)`, W_q and W_k `(d_model, d_k)`, W_v `(d_model, d_v)`; every leading dimension
    of X stays (size 1 too), and d_v may differ from d_k. Sizes are drawn per case from a seeded generator.
    """
    for seed, shapes in enumerate(CASES):
        g = generator(seed)
        d_model, dtype = shapes.x_shape[-1], shapes.dtype
        X = randn(g, *shapes.x_shape, dtype=dtype)
        weights = [randn(g, d_model, d, dtype=dtype) for d in (shapes.d_k, shapes.d_k, shapes.d_v)]
        yield Case(shapes.description, (X, *weights))
