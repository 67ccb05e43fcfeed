"""Check of notebook 07's exercise: LayerNorm from scratch."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from helpers.checks.core import Case, Mistake, check, generator, randn


def _layer_norm_variant(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5, *, eps_outside: bool = False,
                        unbiased: bool = False, dims: tuple[int, ...] | str = (-1,), affine: bool = True,
                        no_eps: bool = False) -> Tensor:
    """LayerNorm with switches that reproduce the typical mistakes; dims="all" normalises over everything."""
    dims = tuple(range(x.ndim)) if dims == "all" else dims
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=unbiased)
    if eps_outside:
        normed = (x - mean) / (var.sqrt() + eps)
    elif no_eps:
        normed = (x - mean) / var.sqrt()
    else:
        normed = (x - mean) / torch.sqrt(var + eps)
    return normed * weight + bias if affine else normed


def _mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, lambda x, weight, bias, eps=1e-5: _layer_norm_variant(x, weight, bias, eps, **switches))


MISTAKES = [
    _mistake("epsilon belongs inside the square root: (x - mean) / sqrt(var + eps), not sqrt(var) + eps.",
             eps_outside=True),
    _mistake("LayerNorm uses the biased variance (divide by d_model, not d_model - 1): "
             "x.var(dim=-1, unbiased=False), or the mean of the squared deviations.", unbiased=True),
    _mistake("normalise each token over its features only (dim=-1), not over the whole tensor.", dims="all"),
    _mistake("you forgot the learned scale and shift: multiply by weight (γ) and add bias (β).", affine=False),
    _mistake("the variance is the unbiased one AND eps sits outside the square root (the formula "
             "x.std() + eps of some tutorials): use the biased variance, and sqrt(var + eps).",
             unbiased=True, eps_outside=True),
    _mistake("you left out eps, or ignored the eps argument: it keeps the division safe when a row is "
             "(nearly) constant.", no_eps=True),
    _mistake("normalise over the last dimension (the features), not over the tokens (dim=1).", dims=(1,)),
]


@check(reference=lambda x, weight, bias, eps=1e-5: torch.nn.functional.layer_norm(x, x.shape[-1:], weight, bias, eps),
       mistakes=MISTAKES,
       passed="{cases} cases: batches, float64, nearly constant rows, a single vector; equal to F.layer_norm.")
def check_layer_norm() -> Iterator[Case]:
    """Check `layer_norm(x, weight, bias, eps=1e-5)`: normalise `(..., d_model)` over the last dimension."""
    for seed, (name, shape, eps, dtype) in enumerate([
        ("a (2, 5, 8) batch with a large eps (0.5)", (2, 5, 8), 0.5, torch.float32),
        ("a (3, 4, 6) batch in float64, eps 1e-5", (3, 4, 6), 1e-5, torch.float64),
        ("rows of nearly constant values (variance ~ 1e-6), eps 1e-3", (2, 3, 16), 1e-3, torch.float64),
        ("a single token vector (8,)", (8,), 1e-5, torch.float32),
    ]):
        g = generator(70 + seed)
        x = randn(g, *shape, dtype=dtype) * 3 + 2
        if "constant" in name:
            x = 5 + 1e-3 * randn(g, *shape, dtype=dtype)
        weight = torch.rand(shape[-1], generator=g, dtype=dtype) + 0.5
        yield Case(name, (x, weight, randn(g, shape[-1], dtype=dtype), eps))
