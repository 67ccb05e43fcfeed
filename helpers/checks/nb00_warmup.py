"""Check of notebook 00's warm-up exercise: the batched dot product.

The statement: `a` and `b` of the same shape `(..., d)`, any number of leading dimensions (none
included, a single pair of vectors), any sizes (1 included); the result has shape `(...)`: the last
dimension is summed away and every other one stays, even one of size 1.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from helpers.checks.core import Case, Clue, Mistake, Term, check, distinct_sizes, generator, leading, randn
from helpers.tensors import batched_dot, format_shape

#: The telling pieces of the solution (tests/test_hint_tiers.py: no Hint 1, Hint 2 or ❌ hint contains one).
SOLUTION_FRAGMENTS: dict[str, list[str]] = {
    "batched_dot": ["(a * b)", "a * b", "sum(dim=-1)", "sum(-1)", "...d,...d->...", "vecdot("],
}

SQUEEZED = Mistake(
    "you squeezed away every dimension of size 1: a batch of one pair, or a sentence of one token, keeps that "
    "dimension. Remove only the summed (last) dimension.",
    lambda a, b: (a * b).sum(dim=-1).squeeze())

MISTAKES = [
    Mistake("you multiplied element by element but did not sum: add the products up over the last dimension.",
            lambda a, b: a * b),
    Mistake("you summed over every dimension and lost the batch: sum over the last dimension only.",
            lambda a, b: (a * b).sum()),
    Mistake("you summed over the first dimension; the vectors run along the last one (count dimensions from the end).",
            lambda a, b: (a * b).sum(dim=0)),
    Mistake("you kept the summed dimension (keepdim=True): the result has a's shape without its last dimension.",
            lambda a, b: (a * b).sum(dim=-1, keepdim=True)),
    Mistake("you computed every vector against every other (a matrix product, like QKᵀ in notebook 02); "
            "here each vector pairs only with its partner in b.", lambda a, b: a @ b.transpose(-2, -1)),
    Mistake("you divided by the vectors' lengths: that is the cosine similarity, not the dot product.",
            lambda a, b: torch.nn.functional.cosine_similarity(a, b, dim=-1)),
    Mistake("you compared the vectors' lengths squared instead of multiplying a with b.",
            lambda a, b: (a * a).sum(dim=-1)),
    SQUEEZED,
]


def _fewer_batch_dims(case: Case, got: object) -> Iterator[Case]:
    a, b = case.args
    for count in range(1, a.ndim - 1):  # type: ignore[union-attr]
        yield Case(case.name, (leading(a, count), leading(b, count)))  # type: ignore[arg-type]


def _as_a_batch_of_one(case: Case, got: object) -> Iterator[Case]:
    a, b = case.args
    if a.ndim == 1:  # type: ignore[union-attr]
        yield Case(case.name, (a[None], b[None]))  # type: ignore[index]


CLUES = [
    Clue(lambda case, smaller: (
        f"your function works for a and b of shape {format_shape(smaller.args[0].shape)} but not "
        f"{format_shape(case.args[0].shape)}: it must work for any number of leading batch dimensions. Count "
        "dimensions from the end, and avoid code written for a fixed number of them (an einsum string with a "
        "fixed number of letters, a table of cases per ndim, positive dimension numbers)."), _fewer_batch_dims),
    Clue("your function works for a batch of vector pairs but not for a single pair of shape (d,): the answer "
         "there is a tensor with no dimensions (shape ()), still a torch.Tensor, not a Python number, and a "
         "loop over the first dimension would loop over the numbers of the vector instead.", _as_a_batch_of_one),
]



def _with_one(g: torch.Generator) -> tuple[int, ...]:
    """A (B, n, d) shape with B = 1 or n = 1 (drawn), the other sizes drawn."""
    B, n, d = distinct_sizes(g, 3, high=7)
    return (1, n, d) if bool(torch.rand((), generator=g) < 0.5) else (B, 1, d)


#: The layouts the statement allows, each a case (batches first: they tell the typical mistakes apart).
LAYOUTS = [
    ("a batch of vector pairs", lambda g: tuple(distinct_sizes(g, 2, high=7)), torch.float32),
    ("a 3-dimensional batch", lambda g: tuple(distinct_sizes(g, 3, high=7)), torch.float32),
    ("a 3-dimensional batch in float64", lambda g: tuple(distinct_sizes(g, 3, high=7)), torch.float64),
    ("three leading dimensions", lambda g: tuple(distinct_sizes(g, 4, high=7)), torch.float32),
    ("a batch with a dimension of size 1", _with_one, torch.float32),
    ("a single pair of vectors", lambda g: tuple(distinct_sizes(g, 1, high=7)), torch.float32),
]


def _loop_over_the_first_dimension(a: torch.Tensor, b: torch.Tensor) -> object:
    # Right for every batch; on a single pair it returns a Python number instead of a 0-dimensional tensor.
    if a.ndim == 1:
        return float((a * b).sum())
    return (a * b).sum(dim=-1)


def _einsum_per_ndim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    spec = {1: "d,d->", 2: "nd,nd->n", 3: "bnd,bnd->bn"}[a.ndim]  # no entry for four dimensions
    return torch.einsum(spec, a, b)


CONTRACT = [
    Term("a single pair of vectors, shape (d,) -> a 0-dimensional tensor", "a single pair",
         _loop_over_the_first_dimension, "a single pair of shape (d,)"),
    Term("any number of leading dimensions, (B, h, n, d) included", "three leading dimensions",
         _einsum_per_ndim, "any number of leading batch dimensions"),
    Term("dimensions of size 1 (B = 1 or n = 1) stay in the result", "size 1",
         SQUEEZED.wrong, "squeezed away every dimension of size 1"),
]


@check(reference=batched_dot, mistakes=MISTAKES, clues=CLUES, contract=CONTRACT,
       passed="{cases} cases: one vector pair, batches of 1 to 3 leading dimensions, a dimension of size 1, "
              "float32 and float64.")
def check_batched_dot() -> Iterator[Case]:
    """Check `batched_dot(a, b)`: `(..., d), (..., d) -> (...)`, one dot product per vector pair.

    a and b have the same shape; every leading dimension stays (size 1 too); a single pair gives shape ().
    """
    for seed, (name, draw, dtype) in enumerate(LAYOUTS):
        g = generator(seed)
        shape = draw(g)
        yield Case(f"{name} (shape {format_shape(shape)})", (randn(g, *shape, dtype=dtype),
                                                            randn(g, *shape, dtype=dtype)))
