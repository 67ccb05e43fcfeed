"""Tensor basics every chapter leans on: argument and shape validation, and the dot product.

Shapes follow the course's notation: batch-first, `(..., n, d)`, where `...` stands for
any number of leading batch (and later head) dimensions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def format_shape(shape: Sequence[int]) -> str:
    """A shape as a tuple of ints: `(2, 3, 4)`, `(4,)` for one dimension, `()` for a scalar."""
    return str(tuple(int(s) for s in shape))


def require_int(name: str, value: object, minimum: int = 1) -> int:
    """Return `value` if it is an int of at least `minimum` (a positive int by default).

    `bool` is refused although Python counts it as an int: `causal_mask(True)` is a mistake.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        wanted = "a positive int" if minimum == 1 else f"an int ≥ {minimum}"
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return value


def require_tensor(name: str, x: object) -> Tensor:
    """Return `x` if it is a tensor; otherwise raise a TypeError that says what it is."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def require_ndim(name: str, x: Tensor, min_ndim: int, expected: str) -> None:
    """Raise a ValueError naming `expected` (e.g. "(..., n, d)") if `x` has too few dims."""
    if x.ndim < min_ndim:
        raise ValueError(f"{name}: expected shape {expected}, got {format_shape(x.shape)}")


def require_activations(name: str, x: object, d_model: int) -> Tensor:
    """Return `x` if it is a `(B, n, d_model)` tensor, one row of d_model features per token."""
    tensor = require_tensor(name, x)
    if tensor.ndim != 3 or tensor.shape[-1] != d_model:
        raise ValueError(f"{name}: expected shape (B, n, d_model={d_model}), got {format_shape(tensor.shape)}")
    return tensor


def require_same_size(
    name_a: str, a: Tensor, dim_a: int, name_b: str, b: Tensor, dim_b: int, what: str
) -> None:
    """Raise a ValueError naming both shapes if `a.shape[dim_a] != b.shape[dim_b]`."""
    if a.shape[dim_a] != b.shape[dim_b]:
        raise ValueError(
            f"{name_a} and {name_b} must agree on {what}: "
            f"{name_a} has shape {format_shape(a.shape)}, {name_b} has shape {format_shape(b.shape)}"
        )


def require_broadcastable(name_a: str, a_shape: Sequence[int], name_b: str, b_shape: Sequence[int]) -> None:
    """Raise a ValueError naming both shapes if the two batch shapes cannot broadcast."""
    try:
        torch.broadcast_shapes(tuple(a_shape), tuple(b_shape))
    except RuntimeError:
        raise ValueError(
            f"the batch dimensions of {name_a} {format_shape(a_shape)} and "
            f"{name_b} {format_shape(b_shape)} cannot be broadcast together"
        ) from None


def batched_dot(a: Tensor, b: Tensor) -> Tensor:
    """Dot product of matching vectors along the last dimension.

    Args:
        a: `(..., d)`, any number of leading dimensions, none included (a single vector `(d,)`).
        b: `(..., d)`, the shape of `a` (the exercise's rule); leading dimensions that broadcast
            against `a`'s work too.

    Returns:
        `(...)`: `out[i] = sum_j a[i, j] * b[i, j]` for every batch index `i`; every leading dimension
        stays, size 1 included, and a single pair gives a 0-dimensional tensor.
    """
    require_tensor("a", a)
    require_tensor("b", b)
    require_ndim("a", a, 1, "(..., d)")
    require_ndim("b", b, 1, "(..., d)")
    require_same_size("a", a, -1, "b", b, -1, "the vector length d (their last dimension)")
    require_broadcastable("a", a.shape[:-1], "b", b.shape[:-1])
    return (a * b).sum(dim=-1)
