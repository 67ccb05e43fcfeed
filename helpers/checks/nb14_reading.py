"""Checks of notebook 14 (reading attention): the previous-token score, the induction score, ablating a head.

Each mistake below is a wrong implementation with the exercise's signature; the core runs it on
the failing case and names it when the candidate gives the same answer. Each check's contract
(`Term`s) lists what its statement allows, and the generated cases cover every entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from helpers.attention import MultiHeadAttention, causal_mask
from helpers.checks.core import Case, Failure, Kind, Mistake, Term, check, compare_tensors, generator, randn, seeded
from helpers.interpret import ablate_head, induction_score, previous_token_score

#: The telling pieces of each exercise's solution: no Hint 1, Hint 2 or ❌ hint may contain one.
SOLUTION_FRAGMENTS: dict[str, list[str]] = {
    "previous_token_score": ["offset=-1", "diagonal(-1", ".mean(dim=-1)"],
    "induction_score": ["p - L + 1", "L + 1, 2 * L + 1", "weights[..., p,"],
    "ablate_head": ["register_forward_pre_hook(", "head * d_head : (head + 1) * d_head", "args[0].clone()"],
}


def _causal_maps(g: torch.Generator, *shape: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Random causal attention maps `(*shape, n, n)`: each row a softmax over the keys up to the query."""
    n = shape[-1]
    scores = randn(g, *shape[:-1], n, n, dtype=dtype) * 2
    return scores.masked_fill(~causal_mask(n), float("-inf")).softmax(dim=-1)


def _keeps_precision(actual: object, expected: object, what: str, tolerance: tuple[float, float]) -> Failure | None:
    """Like `compare_tensors`, but a float64 question needs a float64 answer (a float32 one loses digits)."""
    if isinstance(actual, Tensor) and isinstance(expected, Tensor) and actual.is_floating_point() \
            and expected.is_floating_point() and torch.finfo(actual.dtype).bits < torch.finfo(expected.dtype).bits:
        return Failure(Kind.WRONG_DTYPE, f"{what} has dtype {actual.dtype}, expected {expected.dtype}")
    return compare_tensors(actual, expected, what, tolerance)


DTYPE = "keep the input's dtype: float64 maps give float64 scores (an average needs no cast to float32)."


def _single_map_3d_only(f: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """`f` computed on maps flattened to (N, n, n): right with leading dimensions, crashes on a single (n, n) map."""

    def wrong(weights: Tensor, *args: object) -> Tensor:
        flat = weights.flatten(0, -3)
        return f(flat, *args).view(weights.shape[:-2])

    return wrong


# ---- the previous-token score ----------------------------------------------------------------------------------


def _prev_counting_query_0(weights: Tensor) -> Tensor:
    return weights.diagonal(-1, dim1=-2, dim2=-1).sum(dim=-1) / weights.shape[-1]


def _prev_dims_1_2(weights: Tensor) -> Tensor:
    return weights.diagonal(-1, dim1=1, dim2=2).mean(dim=-1)  # right for (B, n, n) only


def _prev_all_earlier(weights: Tensor) -> Tensor:
    return weights.tril(diagonal=-1).sum(dim=-1)[..., 1:].mean(dim=-1)


DIAGONAL = ("the diagonal counted: weights[..., i, i] is the query looking at ITSELF; the previous token sits one "
            "below the diagonal, at key i − 1.")
QUERY_0 = ("query 0 has no previous token: average over the n − 1 queries 1 … n − 1 that have one, not over all n.")
LEADING = ("one score per map: work on the last two dimensions (queries, keys) whatever the leading dimensions, and "
           "keep those leading dimensions in the result.")
SINGLE_MAP = "a single map (n, n) with no leading dimension must work too: the result is then a scalar tensor."

PREVIOUS_MISTAKES = [
    Mistake(DIAGONAL, lambda w: w.diagonal(dim1=-2, dim2=-1).mean(dim=-1)),
    Mistake("above the diagonal is the FUTURE (key i + 1), which a causal map never sees: the previous token is "
            "one below the diagonal.", lambda w: w.diagonal(1, dim1=-2, dim2=-1).mean(dim=-1)),
    Mistake(QUERY_0, _prev_counting_query_0),
    Mistake("you summed over the queries: the score is a mean, between 0 and 1.",
            lambda w: w.diagonal(-1, dim1=-2, dim2=-1).sum(dim=-1)),
    Mistake("you added up the weight on EVERY earlier token; the score counts only the token just before the "
            "query, key i − 1.", _prev_all_earlier),
    Mistake(LEADING, lambda w: previous_token_score(w).mean()),
    Mistake(LEADING, _prev_dims_1_2),
    Mistake(SINGLE_MAP, _single_map_3d_only(previous_token_score), crashes=True),
    Mistake(DTYPE, lambda w: previous_token_score(w).float()),
]

PREVIOUS_CONTRACT = [
    Term("any number of leading dimensions (..., n, n): (B, h, n, n), (layers, B, h, n, n)", "leading dimensions",
         _prev_dims_1_2, "last two dimensions"),
    Term("a single map (n, n): a scalar score", "a single map", _single_map_3d_only(previous_token_score),
         "single map"),
    Term("queries 1 … n − 1 only (query 0 has no previous token), n from 2 up", "n = ", _prev_counting_query_0,
         "query 0"),
    Term("float32 or float64 maps, the dtype kept", "float64", PREVIOUS_MISTAKES[-1].wrong, "dtype"),
]


def _previous_cases(seed: int) -> Iterator[Case]:
    g = generator(seed)
    shapes = [((2, 3, 7), "(B, h) = (2, 3) leading dimensions"), ((4, 5), "a batch of 4 (leading dimensions)"),
              ((6,), "a single map"), ((2, 2, 2, 5), "(layers, B, h) = (2, 2, 2) leading dimensions"),
              ((3, 2), "n = 2, a batch of 3")]
    for index, (shape, what) in enumerate(shapes):
        dtype = torch.float32 if index % 2 else torch.float64
        n = shape[-1]
        name = f"{what}, n = {n}" if not what.startswith("n =") else what
        yield Case(f"{name}{', float64' if dtype == torch.float64 else ''}", (_causal_maps(g, *shape, dtype=dtype),),
                   tolerance=(1e-5, 1e-7))


@check(reference=previous_token_score, mistakes=PREVIOUS_MISTAKES, what="the score", contract=PREVIOUS_CONTRACT,
       compare=_keeps_precision,
       passed="{cases} generated cases: leading dimensions, a single map, n = 2, float64.")
def check_previous_token_score() -> Iterator[Case]:
    """Check `previous_token_score(weights (..., n, n)) -> (...)`: mean weight on key i − 1, queries 1 … n − 1."""
    yield from _previous_cases(1400)


# ---- the induction score ----------------------------------------------------------------------------------------


def _induction_with_offset(offset: int, first: int = 1) -> Callable[[Tensor, int], Tensor]:
    """Weight on key p − L + offset over queries p = L + first … 2 L."""

    def wrong(weights: Tensor, segment_length: int) -> Tensor:
        L = segment_length
        p = torch.arange(L + first, 2 * L + 1)
        return weights[..., p, p - L + offset].mean(dim=-1)

    return wrong


def _induction_dims_1_2(weights: Tensor, segment_length: int) -> Tensor:
    L = segment_length
    p = torch.arange(L + 1, 2 * L + 1)
    return weights[:, p, p - L + 1].mean(dim=-1)  # right for (B, n, n) only


OFF_BY_ONE = ("the induction offset is off by one: key p − L holds the same token as query p (its previous "
              "occurrence); the induction head looks at the token AFTER it, key p − L + 1.")

INDUCTION_MISTAKES = [
    Mistake(OFF_BY_ONE, _induction_with_offset(0)),
    Mistake("the induction offset is off by one the other way: key p − L + 2 is two tokens after the previous "
            "occurrence; the induction head looks at the token right after it, key p − L + 1.",
            _induction_with_offset(2)),
    Mistake("the diagonal counted: the weight of query p on key p is the query looking at itself, not at the token "
            "after its previous occurrence (key p − L + 1).",
            lambda w, L: w.diagonal(dim1=-2, dim2=-1)[..., L + 1 :].mean(dim=-1)),
    Mistake(LEADING, lambda w, L: induction_score(w, L).mean()),
    Mistake(LEADING, _induction_dims_1_2, crashes=True),
    Mistake(SINGLE_MAP, _single_map_3d_only(induction_score), crashes=True),
    Mistake(DTYPE, lambda w, L: induction_score(w, L).float()),
]

INDUCTION_CONTRACT = [
    Term("any number of leading dimensions (..., n, n): (B, h, n, n), (layers, B, h, n, n)", "leading dimensions",
         _induction_dims_1_2, "last two dimensions"),
    Term("a single map (n, n): a scalar score", "a single map", _single_map_3d_only(induction_score), "single map"),
    Term("float32 or float64 maps, the dtype kept", "float64", INDUCTION_MISTAKES[-1].wrong, "dtype"),
]


def _induction_cases(seed: int) -> Iterator[Case]:
    g = generator(seed)
    layouts = [((2, 3), 5, "(B, h) = (2, 3) leading dimensions"), ((4,), 3, "a batch of 4 (leading dimensions)"),
               ((), 6, "a single map"), ((2, 2, 2), 4, "(layers, B, h) = (2, 2, 2) leading dimensions"),
               ((3,), 2, "a batch of 3")]
    for index, (lead, L, what) in enumerate(layouts):
        dtype = torch.float32 if index % 2 else torch.float64
        weights = _causal_maps(g, *lead, 2 * L + 1, dtype=dtype)
        yield Case(f"{what}, a segment of L = {L} (n = {2 * L + 1}){', float64' if dtype == torch.float64 else ''}",
                   (weights, L), tolerance=(1e-5, 1e-7))


@check(reference=induction_score, mistakes=INDUCTION_MISTAKES, what="the score", contract=INDUCTION_CONTRACT,
       compare=_keeps_precision,
       passed="{cases} generated cases: leading dimensions, a single map, segments of 2 to 6 tokens, float64.")
def check_induction_score() -> Iterator[Case]:
    """Check `induction_score(weights (..., 2L+1, 2L+1), L) -> (...)`: weight on key p − L + 1, queries L + 1 … 2 L."""
    yield from _induction_cases(1401)


# ---- ablating one head ------------------------------------------------------------------------------------------


def _run_ablation(ablate: Callable[..., object], d_model: int, num_heads: int, head: int, seed: int,
                  batch: int = 2, n: int = 5) -> tuple[Tensor, Tensor]:
    """Build a MultiHeadAttention, ablate `head` with `ablate`, run it; remove the hook, run again."""
    with seeded(seed):
        attention = MultiHeadAttention(d_model, num_heads).double().eval()
        x = torch.randn(batch, n, d_model, dtype=torch.float64)
    mask = causal_mask(n)
    handle = ablate(attention, head)
    with torch.no_grad():
        ablated_output = attention(x, x, x, mask)[0]
        handle.remove()
        restored_output = attention(x, x, x, mask)[0]
    return ablated_output, restored_output


def _hook_after(attention: MultiHeadAttention, head: int) -> object:
    d_head = attention.d_model // attention.num_heads

    def hook(_module: object, _args: object, output: Tensor) -> Tensor:
        output = output.clone()
        output[..., head * d_head : (head + 1) * d_head] = 0
        return output

    return attention.W_o.register_forward_hook(hook)


def _zero_columns(columns: Callable[[MultiHeadAttention, int], slice | Tensor]) -> Callable[..., object]:
    """An ablation by a pre-hook on W_O that zeroes `columns(attention, head)` of its input."""

    def ablate(attention: MultiHeadAttention, head: int) -> object:
        where = columns(attention, head)

        def hook(_module: object, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            merged = args[0].clone()
            merged[..., where] = 0
            return (merged, *args[1:])

        return attention.W_o.register_forward_pre_hook(hook)

    return ablate


def _d_head(attention: MultiHeadAttention) -> int:
    return attention.d_model // attention.num_heads


_negative_slice = _zero_columns(lambda a, k: slice(-(a.num_heads - k) * _d_head(a),
                                                   -(a.num_heads - k - 1) * _d_head(a)))
_d_head_as_h = _zero_columns(lambda a, k: slice(k * a.num_heads, (k + 1) * a.num_heads))


def _hook_not_removable(attention: MultiHeadAttention, head: int) -> object:
    ablate_head(attention, head)  # this hook stays
    return ablate_head(attention, head)


def _query_zeroed(attention: MultiHeadAttention, head: int) -> object:
    d_head = _d_head(attention)

    def hook(_module: object, _args: object, output: Tensor) -> Tensor:
        output = output.clone()
        output[..., head * d_head : (head + 1) * d_head] = 0
        return output

    return attention.W_q.register_forward_hook(hook)


AFTER = ("the ablation comes after the output projection: W_O mixes every head into every output column, so "
         "zeroing columns of W_O's OUTPUT removes parts of all heads. Zero the head's columns of W_O's INPUT "
         "(a forward PRE-hook on W_O).")
LAST_HEAD = ("the last head: with negative indices its slice ends at -0, which is the empty slice; count the "
             "columns from the front, head k owns k · d_head up to (k + 1) · d_head.")
D_HEAD = ("each head owns d_head = d_model / h columns of W_O's input, not h columns: the sizes differ when "
          "d_model ≠ h².")
REMOVE = ("after handle.remove() the module must be as before: return the handle of the one hook you "
          "registered, so the caller can remove it.")

ABLATION_MISTAKES = [
    Mistake(AFTER, _hook_after),
    Mistake("you zeroed every head: zero only the columns of head `head`, k · d_head up to (k + 1) · d_head.",
            _zero_columns(lambda a, k: slice(None))),
    Mistake("the heads' columns are side by side (merge_heads puts head k's d_head columns together), not "
            "interleaved: zero columns k · d_head up to (k + 1) · d_head.",
            _zero_columns(lambda a, k: slice(k, None, a.num_heads))),
    Mistake("zeroing the head's QUERY makes its scores 0 and its weights uniform: the head still writes the mean "
            "of its values. Zero what the head outputs, at W_O's input.", _query_zeroed),
    Mistake(LAST_HEAD, _negative_slice),
    Mistake(D_HEAD, _d_head_as_h),
    Mistake(REMOVE, _hook_not_removable),
    Mistake("return the handle that register_forward_pre_hook gives back: the caller removes the hook with it.",
            lambda a, k: ablate_head(a, k) and None, crashes=True),
]

ABLATION_CONTRACT = [
    Term("any head 0 … h − 1, the last one included", "the last head", _negative_slice, "last head"),
    Term("any d_model and h (d_head = d_model / h, not always h)", "d_head =", _d_head_as_h, "d_head"),
    Term("the hook removable: after handle.remove() the module computes what it did before", "then removed",
         _hook_not_removable, "handle.remove()"),
]


def _ablation_cases(seed: int) -> Iterator[Case]:
    g = generator(seed)
    for index, (d_model, num_heads) in enumerate([(12, 3), (16, 2), (16, 4), (24, 4)]):
        heads = [int(torch.randint(0, num_heads, (), generator=g)), num_heads - 1]
        for head in heads:
            last = ", the last head" if head == num_heads - 1 else ""
            name = (f"d_model = {d_model}, h = {num_heads} (d_head = {d_model // num_heads}), head {head}{last}, "
                    "its output, then removed")
            yield Case(name, run=lambda f, d=d_model, h=num_heads, k=head, s=seed + index: _run_ablation(f, d, h, k, s),
                       tolerance=(1e-9, 1e-12))


@check(reference=ablate_head, mistakes=ABLATION_MISTAKES, contract=ABLATION_CONTRACT,
       returns=("output with the head ablated", "output after handle.remove()"),
       passed="{cases} generated cases: heads of every index, d_head ≠ h, the hook removed afterwards.")
def check_ablate_head() -> Iterator[Case]:
    """Check `ablate_head(attention, head) -> handle`: head `head` outputs zeros until `handle.remove()`."""
    yield from _ablation_cases(1402)
