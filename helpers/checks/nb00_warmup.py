"""Check of notebook 00's warm-up exercise: the batched dot product."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from helpers.checks.core import Case, Mistake, check, generator, randn
from helpers.tensors import batched_dot

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
]


@check(reference=batched_dot, mistakes=MISTAKES,
       passed="{cases} cases, from one vector pair to a (2, 2, 3, 4) batch, float32 and float64.")
def check_batched_dot() -> Iterator[Case]:
    """Check `batched_dot(a, b)`: `(..., d), (..., d) -> (...)`, one dot product per vector pair."""
    # Batches first: they tell the typical mistakes apart; a lone pair of vectors cannot.
    for seed, (name, shape, dtype) in enumerate([
        ("a batch of 3 vector pairs (shape (3, 5))", (3, 5), torch.float32),
        ("a (2, 3, 6) batch", (2, 3, 6), torch.float32),
        ("a (2, 3, 6) batch in float64", (2, 3, 6), torch.float64),
        ("a (2, 2, 3, 4) batch", (2, 2, 3, 4), torch.float32),
        ("two single vectors of length 4 (shape (4,))", (4,), torch.float32),
    ]):
        g = generator(seed)
        yield Case(name, (randn(g, *shape, dtype=dtype), randn(g, *shape, dtype=dtype)))
