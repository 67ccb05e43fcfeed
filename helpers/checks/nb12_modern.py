"""Checks of notebook 12: RoPE, RMSNorm, grouped-query attention's repeat_kv, latent attention's absorbed query.

The references are computed in float64 (a float32 answer is compared within tolerance); each
mistake is the exercise's function with one switch thrown, run on the failing case. Every check
carries its exercise's contract (`core.Term`): what the statement allows, the generated cases
that cover it, and an implementation wrong only there whose ❌ names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

from helpers.checks.core import EXACT, Case, Clue, Kind, Mistake, Term, check, generator, randn
from helpers.modern import apply_rope_interleaved, repeat_kv, rotate_half

F64 = torch.float64

#: Telling pieces of each exercise's solution: no Hint 1, Hint 2 or ❌ hint may contain one.
SOLUTION_FRAGMENTS: dict[str, list[str]] = {
    "apply_rope": ["[:, None] * theta", "torch.cat([angles, angles]", "torch.cat([-x", "x[..., d // 2:]",
                   "x[..., : d // 2]", "x * both.cos()", "rotated_half * both.sin()", "-torch.arange(0, d, 2",
                   "d // 2", "head_dim // 2", "[..., :", "positions[:, None]"],
    "rms_norm": ["pow(2).mean(", "mean(dim=-1, keepdim=True)", "rsqrt(", "sqrt(x.pow(2)", "keepdim=True) + eps",
                 "* weight"],
    "absorb_query": ["q_nope @ w_uk", "@ w_uk", "w_uk[i]", "einsum(", "bhnd,hdc", "...hnd,hdc", "hdc->"],
    "repeat_kv": ["repeat_interleave(x, n_rep, dim=1)", "repeat_interleave(n_rep, dim=1)", "[:, :, None]",
                  "expand(b, h_kv, n_rep", "reshape(b, h_kv * n_rep", "unsqueeze(2)",
                  "repeat_interleave(", ".expand(", ".reshape("],
}


def _randint(g: torch.Generator, low: int, high: int) -> int:
    """One integer drawn from [low, high] by the local generator."""
    return int(torch.randint(low, high + 1, (1,), generator=g))


# ---- apply_rope(x, positions) ----------------------------------------------------------------------------


def _rope(x: Tensor, positions: Tensor, *, exponent: str = "2i/d", sign: int = 1) -> Tensor:
    """Rotate-half RoPE in float64, with switches that reproduce typical mistakes."""
    d = x.shape[-1]
    pair = torch.arange(d // 2, dtype=F64)
    exponents = {"2i/d": 2 * pair / d, "i/d": pair / d}
    angles = positions.to(F64)[:, None] / 10000.0 ** exponents[exponent]
    both = torch.cat([angles, angles], dim=-1)
    return x * both.cos() + sign * rotate_half(x) * both.sin()


def _rope_from_first_position(x: Tensor, positions: Tensor) -> Tensor:
    """Wrong: numbers the tokens t, t + 1, ... from the first position, as if positions were consecutive."""
    return _rope(x, positions[0] + torch.arange(len(positions)))


def _rope_with_a_batch_axis(x: Tensor, positions: Tensor) -> Tensor:
    """Wrong only on x without leading dimensions: cos and sin were given a batch axis, (1, n, head_dim)."""
    out = _rope(x, positions)
    return out if x.ndim > 2 else out[None]


def _rope_tokens_third_from_last(x: Tensor, positions: Tensor) -> Tensor:
    """Wrong only on 4-d x: reads it as (B, n, h, head_dim), Meta's layout, and rotates along dimension -3."""
    if x.ndim != 4:
        return _rope(x, positions)
    return _rope(x.transpose(-3, -2), positions).transpose(-3, -2)


OFF_BY_ONE = "the positions are off by one: token t is turned by t · θ_i, starting from angle 0 at position 0."
IGNORED_POSITIONS = ("you ignored the `positions` argument and numbered the tokens 0, 1, 2, ...: with a KV cache "
                     "the new token sits at position t, not 0.")
CONSECUTIVE = ("you assumed consecutive positions (the first one, then + 1, + 2, ...): turn each token by its own "
               "entry of `positions`; they may have gaps.")
LEADING_DIMENSIONS = ("the output has x's shape: x may have any number of leading dimensions, none included "
                      "((n, head_dim), (B, n, head_dim), (B, h, n, head_dim)); build the angles for the n tokens "
                      "and let broadcasting cover the rest.")
TOKENS_AXIS = ("the tokens are the second-to-last dimension of x, (..., n, head_dim): with heads x is "
               "(B, h, n, head_dim), as after splitting heads. You rotated along dimension -3, as if x were "
               "(B, n, h, head_dim).")

ROPE_MISTAKES = [
    Mistake("you rotated the pairs (2i, 2i + 1), the paper's interleaved convention; Hugging Face's Llama "
            "pairs dimension i with dimension i + head_dim/2 (rotate_half).", apply_rope_interleaved),
    Mistake(OFF_BY_ONE, lambda x, positions: _rope(x, positions + 1)),
    Mistake(OFF_BY_ONE, lambda x, positions: _rope(x, positions - 1)),
    Mistake(IGNORED_POSITIONS, lambda x, positions: _rope(x, torch.arange(len(positions)))),
    Mistake(CONSECUTIVE, _rope_from_first_position),
    Mistake("you turned every pair the other way (by −angle): rotate_half(x) = (−x2, x1), and the result "
            "is x · cos + rotate_half(x) · sin.", lambda x, positions: _rope(x, positions, sign=-1)),
    Mistake("the frequencies use i / head_dim; they are θ_i = 10000^(−2i / head_dim) for pair i.",
            lambda x, positions: _rope(x, positions, exponent="i/d")),
]


def _tokens_moved(case: Case, got: object) -> Iterable[Case]:
    """The same 4-d x with tokens and heads swapped: right there means the tokens were read from dimension -3."""
    x, positions = case.args
    if isinstance(x, Tensor) and x.ndim == 4:
        yield Case(case.name, (x.transpose(-3, -2).contiguous(), positions), tolerance=case.tolerance,
                   expected=_rope(x, positions).transpose(-3, -2))


ROPE_CONTRACT = [
    Term("x (n, head_dim): no leading dimension", "no batch dimension", _rope_with_a_batch_axis,
         "any number of leading dimensions"),
    Term("x (B, h, n, head_dim): heads before the tokens", "batch and heads", _rope_tokens_third_from_last,
         "second-to-last dimension"),
    Term("positions that do not start at 0 (a KV-cache step)", "positions from",
         lambda x, positions: _rope(x, torch.arange(len(positions))), "ignored the `positions`"),
    Term("positions with gaps (any integers)", "positions with gaps", _rope_from_first_position, "consecutive"),
]

ROPE_TOLERANCE = (1e-4, 1e-4)  # float32 angles of positions up to 120 round to about 1e-5


@check(reference=_rope, mistakes=ROPE_MISTAKES, contract=ROPE_CONTRACT,
       clues=[Clue(TOKENS_AXIS, _tokens_moved)], hints={Kind.WRONG_SHAPE: LEADING_DIMENSIONS},
       passed="{cases} cases: x with 0, 1 and 2 leading dimensions, head_dim 4 to 32, positions from 0, "
              "from a later step and with gaps.")
def check_apply_rope() -> Iterator[Case]:
    """Check `apply_rope(x, positions) -> x rotated`, x `(..., n, head_dim)`, positions `(n,)` any integers."""
    g = generator(12)

    def x_of(*shape: int) -> Tensor:
        return randn(g, *shape, dtype=F64)

    n, d = _randint(g, 4, 7), 8 * _randint(g, 1, 2)
    yield Case(f"a batch of sequences, x of shape {(2, n, d)}, positions from 0", (x_of(2, n, d), torch.arange(n)),
               tolerance=ROPE_TOLERANCE)
    h, n, d = 3, _randint(g, 4, 7), 16
    yield Case(f"batch and heads, x of shape {(2, h, n, d)}, positions from 0", (x_of(2, h, n, d), torch.arange(n)),
               tolerance=ROPE_TOLERANCE)
    n, d = _randint(g, 3, 6), 6
    yield Case(f"no batch dimension, x of shape {(n, d)}, positions from 0", (x_of(n, d), torch.arange(n)),
               tolerance=ROPE_TOLERANCE)
    t = _randint(g, 5, 60)
    yield Case(f"one new token (a KV-cache step), x of shape (1, 4, 1, 32), positions from {t}",
               (x_of(1, 4, 1, 32), torch.tensor([t])), tolerance=ROPE_TOLERANCE)
    n, t = _randint(g, 3, 5), _randint(g, 5, 60)
    yield Case(f"x of shape {(2, n, 4)}, positions from {t}", (x_of(2, n, 4), torch.arange(t, t + n)),
               tolerance=ROPE_TOLERANCE)
    gaps = torch.randperm(119, generator=g)[:4].add(1).sort().values
    yield Case(f"x of shape (2, 2, 4, 8), positions with gaps {gaps.tolist()}", (x_of(2, 2, 4, 8), gaps),
               tolerance=ROPE_TOLERANCE)


# ---- rms_norm(x, weight, eps=1e-6) -----------------------------------------------------------------------


def _rms_variant(x: Tensor, weight: Tensor, eps: float = 1e-6, *, centre: bool = False, eps_outside: bool = False,
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
    return Mistake(hint, lambda x, weight, eps=1e-6: _rms_variant(x, weight, eps, **switches))  # type: ignore[arg-type]


def _rms_over_dim_1_of_3d(x: Tensor, weight: Tensor, eps: float = 1e-6) -> Tensor:
    """Wrong only on 3-d x: the statistics over dimension 1, right for (n, d) rows only."""
    return _rms_variant(x, weight, eps, dim=1 if x.ndim == 3 else -1)


def _rms_rows_only(x: Tensor, weight: Tensor, eps: float = 1e-6) -> Tensor:
    """Wrong only on a single vector (d,): written for rows, it reduces over dimension 1, which x lacks."""
    return _rms_variant(x, weight, eps, dim=1 if x.ndim == 1 else -1)


def _rms_default_eps_1e5(x: Tensor, weight: Tensor, eps: float = 1e-5) -> Tensor:
    """Wrong only when eps is omitted: LayerNorm's default, 1e-5, instead of the statement's 1e-6."""
    return _rms_variant(x, weight, eps)


RMS_MISTAKES = [
    _rms_mistake("you subtracted the mean: that is LayerNorm. RMSNorm divides by the root mean square "
                 "sqrt(mean(x²) + eps) and keeps the mean.", centre=True),
    _rms_mistake("eps is outside the square root: it is sqrt(mean(x²) + eps), not sqrt(mean(x²)) + eps.",
                 eps_outside=True),
    _rms_mistake("the learned gain `weight` is missing: multiply the normalised x by it.", no_weight=True),
    _rms_mistake("you divided by mean(x²) + eps without the square root.", no_sqrt=True),
    _rms_mistake("you summed x² over the features; take the mean (divide by d).", total=True),
    _rms_mistake("you normalised over the wrong dimension: the statistics are over the last one (dim=-1).", dim=0),
    Mistake("you ignored the `eps` argument: use the eps the caller passes (1e-6 is only its default).",
            lambda x, weight, eps=1e-6: _rms_variant(x, weight, 1e-6)),
]

DEFAULT_EPS = "with eps omitted, the default is eps = 1e-6, as the statement's signature says."
PASS_EPS = ("your function is right when eps = 1e-6 is passed, but not when eps is omitted: the default is "
            "eps = 1e-6, as the statement's signature `rms_norm(x, weight, eps=1e-6)` says.")


def _as_rows(case: Case, got: object) -> Iterable[Case]:
    """The same x as a table of rows (rows, d): right there means the leading dimensions were mishandled."""
    x, weight, *rest = case.args
    if isinstance(x, Tensor) and x.ndim != 2:
        yield Case(f"x of shape {tuple(x.reshape(-1, x.shape[-1]).shape)}", (x.reshape(-1, x.shape[-1]), weight, *rest),
                   case.kwargs, tolerance=case.tolerance)


def _eps_passed(case: Case, got: object) -> Iterable[Case]:
    """The same case with eps = 1e-6 passed: right there means the default is missing or wrong."""
    if len(case.args) == 2 and "eps" not in case.kwargs:
        yield Case(case.name, (*case.args, 1e-6), tolerance=case.tolerance)


def _leading_dimensions(case: Case, rows: Case) -> str:
    return (f"your function is right on the same numbers as rows, {rows.name}, but not on {case.name}: x may have "
            "any number of leading dimensions, none included; each vector is normalised over its last dimension.")


RMS_CONTRACT = [
    Term("x (B, n, d): a batch of sequences", "batch of sequences", _rms_over_dim_1_of_3d,
         "any number of leading dimensions"),
    Term("x (d,): a single vector", "a single vector", _rms_rows_only, "any number of leading dimensions"),
    Term("rows whose mean is far from 0 (the mean is kept)", "mean far from 0",
         lambda x, weight, eps=1e-6: _rms_variant(x, weight, eps, centre=True), "LayerNorm"),
    Term("a learned gain `weight` (not all ones)", "learned gain",
         lambda x, weight, eps=1e-6: _rms_variant(x, weight, eps, no_weight=True), "`weight` is missing"),
    Term("eps passed by the caller (eps = 1e-3 on small inputs)", "eps = 1e-3",
         lambda x, weight, eps=1e-6: _rms_variant(x, weight, 1e-6), "the `eps` argument"),
    Term("eps omitted: the default 1e-6", "default eps", _rms_default_eps_1e5, "the default is eps = 1e-6"),
]


@check(reference=_rms_variant, mistakes=RMS_MISTAKES, contract=RMS_CONTRACT,
       clues=[Clue(_leading_dimensions, _as_rows), Clue(PASS_EPS, _eps_passed)],
       passed="{cases} cases: x with 0, 1 and 2 leading dimensions, means far from 0, a learned gain, eps passed, "
              "and small inputs where eps (its default too) matters.")
def check_rms_norm() -> Iterator[Case]:
    """Check `rms_norm(x, weight, eps=1e-6) -> x / sqrt(mean(x²) + eps) · weight` over the last dimension."""
    g = generator(21)

    def inputs(shape: tuple[int, ...], scale: float, shift: float) -> tuple[Tensor, Tensor]:
        return randn(g, *shape) * scale + shift, torch.rand(shape[-1], generator=g) + 0.5

    tolerance = (1e-4, 1e-6)
    shape = (_randint(g, 3, 5), 8)
    yield Case(f"rows with a mean far from 0 and a learned gain, shape {shape}, eps = 1e-6",
               (*inputs(shape, 3.0, 2.0), 1e-6), tolerance=tolerance)
    shape = (2, _randint(g, 3, 6), 16)
    yield Case(f"a batch of sequences, shape {shape}, eps = 1e-5", (*inputs(shape, 1.0, 0.0), 1e-5),
               tolerance=tolerance)
    shape = (_randint(g, 5, 12),)
    yield Case(f"a single vector, shape {shape}, eps = 1e-6", (*inputs(shape, 1.0, 0.5), 1e-6), tolerance=tolerance)
    shape = (3, _randint(g, 4, 8))
    yield Case(f"small inputs where eps matters (eps = 1e-3), shape {shape}", (*inputs(shape, 0.01, 0.0), 1e-3),
               tolerance=tolerance)
    shape = (2, _randint(g, 4, 8))
    yield Case(f"small inputs and the default eps (not passed), shape {shape}", inputs(shape, 0.003, 0.0),
               hint=DEFAULT_EPS, tolerance=tolerance)


# ---- repeat_kv(x, n_rep) ---------------------------------------------------------------------------------


def _repeat_with_view(x: Tensor, n_rep: int) -> Tensor:
    """Wrong only on a non-contiguous x: `view` merges batch and heads, which such a tensor cannot do."""
    b, h, n, d = x.shape
    return x.view(b * h, n, d).repeat_interleave(n_rep, dim=0).view(b, h * n_rep, n, d)


def _repeat_after_squeeze(x: Tensor, n_rep: int) -> Tensor:
    """Wrong wherever x has a dimension of size 1 (here: h_kv = 1): squeeze() drops it with the others."""
    return x.squeeze().repeat_interleave(n_rep, dim=-3)


def _repeat_unless_one(x: Tensor, n_rep: int) -> Tensor | None:
    """Wrong only for n_rep = 1: the branch for it is missing, and the function falls through to None."""
    if n_rep > 1:
        return repeat_kv(x, n_rep)
    return None


REPEAT_MISTAKES = [
    Mistake("the heads are in the wrong order: you tiled the key/value heads (0, 1, 0, 1, ...). Query heads "
            "g·n_rep ... (g+1)·n_rep − 1 form group g and share key/value head g: (0, 0, 1, 1, ...), "
            "as torch.repeat_interleave does.", lambda x, n_rep: x.repeat(1, n_rep, 1, 1)),
    Mistake("you repeated along the token dimension; repeat the heads (dim 1).",
            lambda x, n_rep: torch.repeat_interleave(x, n_rep, dim=2)),
]

KEEP_EVERY_DIMENSION = ("the output is (B, h_kv · n_rep, n, d_head): only the head dimension grows, and every other "
                        "dimension stays, even one of size 1 (h_kv = 1 is multi-query attention).")
NON_CONTIGUOUS = ("your function is right on a contiguous copy of x but not on x itself, a non-contiguous view "
                  "(keys are one after the heads are split with a transpose): `view` cannot merge dimensions of "
                  "such a tensor; `reshape` can (it copies when it must).")


def _with_n_rep_2(case: Case, n_rep: int) -> str:
    return ("your function is right for n_rep = 2 but not for n_rep = 1: with n_rep = 1 every query head has its "
            "own key/value head, and the answer is x itself.")


def _n_rep_2(case: Case, got: object) -> Iterable[Case]:
    x, n_rep = case.args
    if n_rep == 1:
        yield Case("the same x with n_rep=2", (x, 2), tolerance=EXACT)


def _contiguous(case: Case, got: object) -> Iterable[Case]:
    x, n_rep = case.args
    if isinstance(x, Tensor) and not x.is_contiguous():
        yield Case("a contiguous copy of x", (x.contiguous(), n_rep), tolerance=EXACT)


REPEAT_CONTRACT = [
    Term("h_kv ≥ 2: groups of consecutive query heads", "h_kv=2", lambda x, n_rep: x.repeat(1, n_rep, 1, 1),
         "wrong order"),
    Term("heads are dimension 1 of (B, h_kv, n, d_head), n ≠ d_head", "h_kv=3",
         lambda x, n_rep: torch.repeat_interleave(x, n_rep, dim=2), "token dimension"),
    Term("h_kv = 1: multi-query attention", "h_kv=1", _repeat_after_squeeze, "even one of size 1"),
    Term("n_rep = 1: plain multi-head attention, x unchanged", "n_rep=1", _repeat_unless_one, "n_rep = 1"),
    Term("x non-contiguous (a transposed view, as after splitting heads)", "non-contiguous", _repeat_with_view,
         "non-contiguous"),
]


@check(reference=repeat_kv, mistakes=REPEAT_MISTAKES, contract=REPEAT_CONTRACT,
       clues=[Clue(_with_n_rep_2, _n_rep_2), Clue(NON_CONTIGUOUS, _contiguous)],
       hints={Kind.WRONG_SHAPE: KEEP_EVERY_DIMENSION},
       passed="{cases} cases: 1 to 4 key/value heads, n_rep from 1 (plain multi-head) to 4, a non-contiguous x.")
def check_repeat_kv() -> Iterator[Case]:
    """Check `repeat_kv(x, n_rep)`: `(B, h_kv, n, d) -> (B, h_kv · n_rep, n, d)`, groups of consecutive heads."""
    g = generator(4)

    def case(h_kv: int, n_rep: int, what: str = "") -> Case:
        n, d = _randint(g, 3, 6), 2 * _randint(g, 1, 4)
        d = d if d != n else d + 2  # tokens and head size differ, so a repeat along the tokens shows
        x = randn(g, 2, h_kv, n, d)
        return Case(f"{what}h_kv={h_kv}, n_rep={n_rep}, x of shape {(2, h_kv, n, d)}", (x, n_rep), tolerance=EXACT)

    yield case(2, _randint(g, 2, 4))
    yield case(3, 2)
    yield case(1, _randint(g, 2, 4), "multi-query, ")
    yield case(_randint(g, 2, 4), 1, "plain multi-head, ")
    n = _randint(g, 3, 6)
    x = randn(g, 2, n, 4, 2 * n).transpose(1, 2)  # (B, h_kv, n, d) as a view of (B, n, h_kv, d)
    yield Case(f"a non-contiguous x (keys after splitting heads), h_kv=4, n_rep=2, shape {tuple(x.shape)}", (x, 2),
               tolerance=EXACT)


# ---- absorb_query(q_nope, w_uk) --------------------------------------------------------------------------


def _absorb(q_nope: Tensor, w_uk: Tensor) -> Tensor:
    """The reference: head i's query times w_uk[i] = W_UK_iᵀ, batched over any leading dimensions."""
    return q_nope @ w_uk


def _absorb_transposed_if_square(q_nope: Tensor, w_uk: Tensor) -> Tensor:
    """Wrong only where d_c = d_nope: multiplies by w_uk[i]ᵀ = W_UK_i itself, which only a square one lets through."""
    return q_nope @ w_uk.mT if w_uk.shape[-1] == w_uk.shape[-2] else q_nope @ w_uk


def _absorb_with_a_batch(q_nope: Tensor, w_uk: Tensor) -> Tensor:
    """Wrong only on a q_nope without a batch dimension: the einsum names four dimensions."""
    return torch.einsum("bhnd,hdc->bhnc", q_nope, w_uk)


def _absorb_squeezed(q_nope: Tensor, w_uk: Tensor) -> Tensor:
    """Wrong only where n = 1: squeeze(-2) drops the token dimension of a single new token."""
    return (q_nope @ w_uk).squeeze(-2)


def _with_a_batch(case: Case, got: object) -> Iterable[Case]:
    """The same q_nope with a batch dimension of 1: right there means the product names four dimensions."""
    q_nope, w_uk = case.args
    if isinstance(q_nope, Tensor) and q_nope.ndim == 3:
        yield Case("the same q_nope with a batch dimension", (q_nope[None], w_uk), expected=_absorb(q_nope[None], w_uk))


TRANSPOSED = ("you multiplied by W_UK_i itself, (d_c, d_nope). k_C = c_KV W_UK_i, so q_C · k_C = q_C (c_KV W_UK_i)ᵀ: "
              "write out that transpose of a product, and the query needs W_UK_i transposed, (d_nope, d_c), "
              "which takes it from d_nope numbers to d_c. That is each head's matrix of w_uk as stored, "
              "the layout nn.Linear keeps.")
ONE_HEAD = ("every head used the first head's W_UK: head i's query goes with head i's own up-projection; "
            "the heads of q_nope (dimension -3) and of w_uk (dimension 0) go together.")
ABSORB_LEADING = ("q_nope may come without a batch dimension, (h, n, d_nope), or with one, (B, h, n, d_nope): "
                  "write the product so that any leading dimensions broadcast.")
ABSORB_SHAPE = ("the output is (..., h, n, d_c): q_nope's shape with d_nope replaced by d_c. Every other dimension "
                "stays, even n = 1 (one new token while decoding).")

ABSORB_MISTAKES = [
    Mistake(TRANSPOSED, lambda q_nope, w_uk: q_nope @ w_uk.mT),
    Mistake(TRANSPOSED, lambda q_nope, w_uk: q_nope @ w_uk.mT, crashes=True),
    Mistake(ONE_HEAD, lambda q_nope, w_uk: q_nope @ w_uk[0]),
]

ABSORB_CONTRACT = [
    Term("h ≥ 2 heads, each with its own W_UK", "heads", lambda q_nope, w_uk: q_nope @ w_uk[0], "first head"),
    Term("d_c = d_nope: a square W_UK (a transpose would go through)", "square", _absorb_transposed_if_square,
         "transposed"),
    Term("q_nope (h, n, d_nope): no batch dimension", "no batch dimension", _absorb_with_a_batch,
         "leading dimensions"),
    Term("n = 1: one new token while decoding", "one new token", _absorb_squeezed, "n = 1"),
]


@check(reference=_absorb, mistakes=ABSORB_MISTAKES, contract=ABSORB_CONTRACT,
       clues=[Clue(ABSORB_LEADING, _with_a_batch)], hints={Kind.WRONG_SHAPE: ABSORB_SHAPE},
       passed="{cases} cases: 2 to 5 heads, with and without a batch, one new token, a latent wider than a "
              "head and a square W_UK, float64 and float32.")
def check_absorb_query() -> Iterator[Case]:
    """Check `absorb_query(q_nope, w_uk)`: `(..., h, n, d_nope), (h, d_nope, d_c) -> (..., h, n, d_c)`."""
    g = generator(23)

    def case(what: str, batch: tuple[int, ...], h: int, n: int, d_nope: int, d_c: int,
             dtype: torch.dtype = F64) -> Case:
        q, w = randn(g, *batch, h, n, d_nope, dtype=dtype), randn(g, h, d_nope, d_c, dtype=dtype)
        return Case(f"{what}, {h} heads, q_nope {tuple(q.shape)}, w_uk {tuple(w.shape)}", (q, w))

    d = 2 * _randint(g, 2, 4)
    yield case("a batch of 2, a latent wider than a head", (2,), _randint(g, 2, 5), _randint(g, 3, 6), d, 3 * d)
    d = 2 * _randint(g, 2, 4)
    yield case("a square W_UK (d_c = d_nope)", (2,), 3, _randint(g, 3, 6), d, d)
    yield case("no batch dimension", (), _randint(g, 2, 5), _randint(g, 3, 6), 6, 10)
    yield case("one new token (n = 1), a batch of 3", (3,), 4, 1, 8, 12)
    yield case("float32", (2,), 2, _randint(g, 3, 6), 4, 8, dtype=torch.float32)
