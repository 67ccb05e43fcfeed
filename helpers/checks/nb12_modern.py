"""Checks of notebook 12: rotary position embedding, RMSNorm, and grouped-query attention's repeat_kv.

The references are computed in float64 (a float32 answer is compared within tolerance); each
mistake is the exercise's function with one switch thrown, run on the failing case.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from helpers.checks.core import EXACT, Case, Mistake, check, generator, randn
from helpers.modern import apply_rope_interleaved, repeat_kv, rotate_half

F64 = torch.float64

# ---- apply_rope(x, positions) ----------------------------------------------------------------------------


def _rope(x: Tensor, positions: Tensor, *, exponent: str = "2i/d", sign: int = 1) -> Tensor:
    """Rotate-half RoPE in float64, with switches that reproduce typical mistakes."""
    d = x.shape[-1]
    pair = torch.arange(d // 2, dtype=F64)
    exponents = {"2i/d": 2 * pair / d, "i/d": pair / d}
    angles = positions.to(F64)[:, None] / 10000.0 ** exponents[exponent]
    both = torch.cat([angles, angles], dim=-1)
    return x * both.cos() + sign * rotate_half(x) * both.sin()


OFF_BY_ONE = "the positions are off by one: token t is turned by t · θ_i, starting from angle 0 at position 0."

ROPE_MISTAKES = [
    Mistake("you rotated the pairs (2i, 2i + 1), the paper's interleaved convention; Hugging Face's Llama "
            "pairs dimension i with dimension i + head_dim/2 (rotate_half).", apply_rope_interleaved),
    Mistake(OFF_BY_ONE, lambda x, positions: _rope(x, positions + 1)),
    Mistake(OFF_BY_ONE, lambda x, positions: _rope(x, positions - 1)),
    Mistake("you ignored the `positions` argument and numbered the tokens 0, 1, 2, ...: with a KV cache "
            "the new token sits at position t, not 0.", lambda x, positions: _rope(x, torch.arange(len(positions)))),
    Mistake("you turned every pair the other way (by −angle): rotate_half(x) = (−x2, x1), and the result "
            "is x · cos + rotate_half(x) · sin.", lambda x, positions: _rope(x, positions, sign=-1)),
    Mistake("the frequencies use i / head_dim; they are θ_i = 10000^(−2i / head_dim) for pair i.",
            lambda x, positions: _rope(x, positions, exponent="i/d")),
]


@check(reference=_rope, mistakes=ROPE_MISTAKES,
       passed="{cases} cases: 2 to 4 dimensions, head_dim 4 to 32, positions from 0 and from 7, and a gap.")
def check_apply_rope() -> Iterator[Case]:
    """Check `apply_rope(x, positions) -> x rotated`, x `(..., n, head_dim)`, positions `(n,)`."""
    g = generator(12)
    for shape, positions in [((5, 8), torch.arange(5)), ((2, 3, 6, 16), torch.arange(6)),
                             ((1, 4, 32), torch.arange(7, 11)), ((2, 2, 3, 4), torch.tensor([0, 3, 100]))]:
        yield Case(f"x of shape {shape}, positions {positions.tolist()}", (randn(g, *shape, dtype=F64), positions))


# ---- rms_norm(x, weight, eps) ----------------------------------------------------------------------------


def _rms_variant(x: Tensor, weight: Tensor, eps: float, *, centre: bool = False, eps_outside: bool = False,
                 no_weight: bool = False, no_sqrt: bool = False, total: bool = False, dim: int = -1) -> Tensor:
    """RMSNorm in float64, with switches that reproduce typical mistakes."""
    x = x.to(F64)
    if centre:
        x = x - x.mean(dim=dim, keepdim=True)
    square = x.pow(2).sum(dim=dim, keepdim=True) if total else x.pow(2).mean(dim=dim, keepdim=True)
    if no_sqrt:
        scale = square + eps
    else:
        scale = square.sqrt() + eps if eps_outside else (square + eps).sqrt()
    return x / scale * (1.0 if no_weight else weight.to(F64))


def _rms_mistake(hint: str, **switches: bool | int) -> Mistake:
    return Mistake(hint, lambda x, weight, eps: _rms_variant(x, weight, eps, **switches))  # type: ignore[arg-type]


RMS_MISTAKES = [
    _rms_mistake("you subtracted the mean: that is LayerNorm. RMSNorm divides by the root mean square "
                 "sqrt(mean(x²) + eps) and keeps the mean.", centre=True),
    _rms_mistake("eps is outside the square root: it is sqrt(mean(x²) + eps), not sqrt(mean(x²)) + eps.",
                 eps_outside=True),
    _rms_mistake("the learned gain `weight` is missing: multiply the normalised x by it.", no_weight=True),
    _rms_mistake("you divided by mean(x²) + eps without the square root.", no_sqrt=True),
    _rms_mistake("you summed x² over the features; take the mean (divide by d).", total=True),
    _rms_mistake("you normalised over the wrong dimension: the statistics are over the last one (dim=-1).", dim=0),
]


@check(reference=_rms_variant, mistakes=RMS_MISTAKES,
       passed="{cases} cases: means far from 0, batches of sequences, and small inputs where eps matters.")
def check_rms_norm() -> Iterator[Case]:
    """Check `rms_norm(x, weight, eps) -> x / sqrt(mean(x²) + eps) · weight` over the last dimension."""
    g = generator(21)
    for what, shape, scale, shift, eps in [("rows with a mean far from 0", (4, 8), 3.0, 2.0, 1e-6),
                                           ("a batch of sequences", (2, 5, 16), 1.0, 0.0, 1e-5),
                                           ("small inputs where eps matters (eps = 1e-3)", (3, 6), 0.01, 0.0, 1e-3)]:
        x = randn(g, *shape) * scale + shift
        weight = torch.rand(shape[-1], generator=g) + 0.5
        yield Case(f"{what}, shape {shape}", (x, weight, eps), tolerance=(1e-4, 1e-6))


# ---- repeat_kv(x, n_rep) ---------------------------------------------------------------------------------

REPEAT_MISTAKES = [
    Mistake("the heads are in the wrong order: you tiled the key/value heads (0, 1, 0, 1, ...). Query heads "
            "g·n_rep ... (g+1)·n_rep − 1 form group g and share key/value head g: (0, 0, 1, 1, ...), "
            "as torch.repeat_interleave does.", lambda x, n_rep: x.repeat(1, n_rep, 1, 1)),
    Mistake("you repeated along the token dimension; repeat the heads (dim 1).",
            lambda x, n_rep: torch.repeat_interleave(x, n_rep, dim=2)),
]


@check(reference=repeat_kv, mistakes=REPEAT_MISTAKES,
       passed="{cases} cases: 1 to 4 key/value heads, n_rep from 1 (plain multi-head) to 4.")
def check_repeat_kv() -> Iterator[Case]:
    """Check `repeat_kv(x, n_rep)`: `(B, h_kv, n, d) -> (B, h_kv · n_rep, n, d)`, groups of consecutive heads."""
    g = generator(4)
    for shape, n_rep in [((2, 2, 5, 4), 3), ((1, 4, 3, 8), 2), ((2, 1, 6, 4), 4), ((1, 3, 2, 2), 1)]:
        yield Case(f"x of shape {shape}, n_rep={n_rep}", (randn(g, *shape), n_rep), tolerance=EXACT)
