"""Check of notebook 01's exercise: queries, keys and values from the same input."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import permutations

import torch

from helpers.attention import project_qkv
from helpers.checks.core import Case, Clue, Mistake, check, generator, leading, randn
from helpers.tensors import format_shape

NAMES = ("Q", "K", "V")


@dataclass(frozen=True)
class Shapes:
    description: str
    x_shape: tuple[int, ...]  # (..., n, d_model)
    d_k: int
    d_v: int
    dtype: torch.dtype = torch.float32


#: Batched cases first: they tell the mistakes apart. The first is square
#: (n = d_model = d_k = d_v), so that `X @ W.T` and `W @ X` run and give wrong values
#: instead of crashing; the others are not, so that any mix-up changes a shape.
CASES = [
    Shapes("a batch of 2 sentences of 4 tokens, d_model = d_k = d_v = 4 (X of shape (2, 4, 4))", (2, 4, 4), 4, 4),
    Shapes("a batch of 2 sentences of 3 tokens, d_model = 5, d_k = 4, d_v = 6 (X of shape (2, 3, 5))", (2, 3, 5), 4, 6),
    Shapes("X of shape (2, 2, 3, 5) (batch and heads), d_k = 4, d_v = 6", (2, 2, 3, 5), 4, 6),
    Shapes("a batch of 3 sentences in float64, X of shape (3, 3, 5), d_k = 2, d_v = 3", (3, 3, 5), 2, 3,
           torch.float64),
    Shapes("a single sentence: X of shape (3, 5), d_k = 4, d_v = 6", (3, 5), 4, 6),
]


def _w(i: int) -> str:
    return f"W_{NAMES[i].lower()}"


def _order_hint(order: tuple[int, ...]) -> str:
    return (f"your function returns them in the order ({', '.join(NAMES[i] for i in order)}): return them as "
            "(Q, K, V), the order the unpacking `Q, K, V = project_qkv(...)` expects.")


def _same_weight_hint(name: int, used: int) -> str:
    return (f"you used the same weight for two outputs: your {NAMES[name]} equals X @ {_w(used)}, "
            f"but {NAMES[name]} needs its own {_w(name)}. Each of Q, K and V has its own weight matrix: "
            "that is what makes them differ although they start from the same X.")


def _transposed_hint(i: int) -> str:
    d = "d_v" if i == 2 else "d_k"
    return (f"your {NAMES[i]} equals X @ {_w(i)}.T: you multiplied by the transposed weight, the convention of "
            f"nn.Linear (its .weight stores Wᵀ). Here {_w(i)} comes as a (d_model, {d}) matrix already, "
            f"so it goes into the product as it is, without a transpose.")


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
    Clue("your function returns the same result whatever weights it is given: use its arguments W_q, W_k, W_v "
         "(lower-case), not the notebook's W_Q, W_K, W_V.", _doubled_weights),
]


@check(reference=project_qkv, mistakes=MISTAKES, clues=CLUES, returns=NAMES,
       passed="{cases} cases, from one sentence (n, d_model) to a (2, 2, 3, 5) batch, "
              "square and non-square weights, float32 and float64.")
def check_project_qkv() -> Iterator[Case]:
    """Check `project_qkv(X, W_q, W_k, W_v) -> (Q, K, V)`: `Q = X W_q`, `K = X W_k`, `V = X W_v`.

    X `(..., n, d_model)`, W_q and W_k `(d_model, d_k)`, W_v `(d_model, d_v)`.
    """
    for seed, shapes in enumerate(CASES):
        g = generator(seed)
        d_model, dtype = shapes.x_shape[-1], shapes.dtype
        X = randn(g, *shapes.x_shape, dtype=dtype)
        weights = [randn(g, d_model, d, dtype=dtype) for d in (shapes.d_k, shapes.d_k, shapes.d_v)]
        yield Case(shapes.description, (X, *weights))
