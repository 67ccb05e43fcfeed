"""Checks for notebook 12: rotary position embedding, RMSNorm, and grouped-query attention's repeat_kv."""

from __future__ import annotations

import torch
from torch import Tensor

from helpers.checks.core import CheckResult, Probe, run_check
from helpers.modern import apply_rope_interleaved, repeat_kv, rotate_half

F64 = torch.float64


def _rope(x: Tensor, positions: Tensor, *, exponent: str = "2i/d", sign: int = 1) -> Tensor:
    """Rotate-half RoPE in float64, with switches that reproduce typical mistakes."""
    d = x.shape[-1]
    pair = torch.arange(d // 2, dtype=F64)
    exponents = {"2i/d": 2 * pair / d, "i/d": pair / d}
    angles = positions.to(F64)[:, None] / 10000.0 ** exponents[exponent]
    both = torch.cat([angles, angles], dim=-1)
    return x * both.cos() + sign * rotate_half(x) * both.sin()


def check_apply_rope(candidate: object) -> CheckResult:
    """Check `apply_rope(x, positions) -> x rotated`, x `(..., n, head_dim)`, positions `(n,)`."""

    def body(probe: Probe) -> str:
        gen = torch.Generator().manual_seed(12)
        cases = [((5, 8), torch.arange(5)), ((2, 3, 6, 16), torch.arange(6)),
                 ((1, 4, 32), torch.arange(7, 11)), ((2, 2, 3, 4), torch.tensor([0, 3, 100]))]
        for shape, positions in cases:
            x = torch.randn(*shape, generator=gen, dtype=F64)
            expected = _rope(x, positions)
            case = f"x of shape {shape}, positions {positions.tolist()}"
            mistakes = [
                ("you rotated the pairs (2i, 2i + 1), the paper's interleaved convention; Hugging Face's Llama "
                 "pairs dimension i with dimension i + head_dim/2 (rotate_half).",
                 lambda x=x, p=positions: apply_rope_interleaved(x, p)),
                ("the positions are off by one: token t is turned by t · θ_i, starting from angle 0 at position 0.",
                 lambda x=x, p=positions: _rope(x, p + 1)),
                ("the positions are off by one: token t is turned by t · θ_i, starting from angle 0 at position 0.",
                 lambda x=x, p=positions: _rope(x, p - 1)),
                ("you ignored the `positions` argument and numbered the tokens 0, 1, 2, ...: with a KV cache "
                 "the new token sits at position t, not 0.",
                 lambda x=x, p=positions: _rope(x, torch.arange(len(p)))),
                ("you turned every pair the other way (by −angle): rotate_half(x) = (−x2, x1), and the result "
                 "is x · cos + rotate_half(x) · sin.", lambda x=x, p=positions: _rope(x, p, sign=-1)),
                ("the frequencies use i / head_dim; they are θ_i = 10000^(−2i / head_dim) for pair i.",
                 lambda x=x, p=positions: _rope(x, p, exponent="i/d")),
            ]
            probe.expect_close(probe.call(x, positions), expected, case, mistakes, rtol=1e-4, atol=1e-5)
        return f"{probe.cases} cases: 2 to 4 dimensions, head_dim 4 to 32, positions from 0 and from 7, and a gap."

    return run_check("apply_rope", candidate, body)


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


def check_rms_norm(candidate: object) -> CheckResult:
    """Check `rms_norm(x, weight, eps) -> x / sqrt(mean(x²) + eps) · weight` over the last dimension."""

    def body(probe: Probe) -> str:
        gen = torch.Generator().manual_seed(21)
        cases = [("rows with a mean far from 0", (4, 8), 3.0, 2.0, 1e-6),
                 ("a batch of sequences", (2, 5, 16), 1.0, 0.0, 1e-5),
                 ("small inputs where eps matters (eps = 1e-3)", (3, 6), 0.01, 0.0, 1e-3)]
        for what, shape, scale, shift, eps in cases:
            x = torch.randn(*shape, generator=gen) * scale + shift
            weight = torch.rand(shape[-1], generator=gen) + 0.5
            expected = _rms_variant(x, weight, eps)
            mistakes = [
                ("you subtracted the mean: that is LayerNorm. RMSNorm divides by the root mean square "
                 "sqrt(mean(x²) + eps) and keeps the mean.",
                 lambda x=x, w=weight, e=eps: _rms_variant(x, w, e, centre=True)),
                ("eps is outside the square root: it is sqrt(mean(x²) + eps), not sqrt(mean(x²)) + eps.",
                 lambda x=x, w=weight, e=eps: _rms_variant(x, w, e, eps_outside=True)),
                ("the learned gain `weight` is missing: multiply the normalised x by it.",
                 lambda x=x, w=weight, e=eps: _rms_variant(x, w, e, no_weight=True)),
                ("you divided by mean(x²) + eps without the square root.",
                 lambda x=x, w=weight, e=eps: _rms_variant(x, w, e, no_sqrt=True)),
                ("you summed x² over the features; take the mean (divide by d).",
                 lambda x=x, w=weight, e=eps: _rms_variant(x, w, e, total=True)),
                ("you normalised over the wrong dimension: the statistics are over the last one (dim=-1).",
                 lambda x=x, w=weight, e=eps: _rms_variant(x, w, e, dim=0)),
            ]
            probe.expect_close(probe.call(x, weight, eps), expected, f"{what}, shape {shape}", mistakes,
                               rtol=1e-4, atol=1e-6)
        return f"{probe.cases} cases: means far from 0, batches of sequences, and small inputs where eps matters."

    return run_check("rms_norm", candidate, body)


def check_repeat_kv(candidate: object) -> CheckResult:
    """Check `repeat_kv(x, n_rep)`: `(B, h_kv, n, d) -> (B, h_kv · n_rep, n, d)`, groups of consecutive heads."""

    def body(probe: Probe) -> str:
        gen = torch.Generator().manual_seed(4)
        for shape, n_rep in [((2, 2, 5, 4), 3), ((1, 4, 3, 8), 2), ((2, 1, 6, 4), 4), ((1, 3, 2, 2), 1)]:
            x = torch.randn(*shape, generator=gen)
            mistakes = [
                ("the heads are in the wrong order: you tiled the key/value heads (0, 1, 0, 1, ...). Query heads "
                 "g·n_rep ... (g+1)·n_rep − 1 form group g and share key/value head g: (0, 0, 1, 1, ...), "
                 "as torch.repeat_interleave does.", lambda x=x, r=n_rep: x.repeat(1, r, 1, 1)),
                ("you repeated along the token dimension; repeat the heads (dim 1).",
                 lambda x=x, r=n_rep: torch.repeat_interleave(x, r, dim=2)),
            ]
            probe.expect_close(probe.call(x, n_rep), repeat_kv(x, n_rep), f"x of shape {shape}, n_rep={n_rep}",
                               mistakes, rtol=0, atol=0)
        return f"{probe.cases} cases: 1 to 4 key/value heads, n_rep from 1 (plain multi-head) to 4."

    return run_check("repeat_kv", candidate, body)
