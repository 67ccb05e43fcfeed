"""Checks of notebook 05: splitting and merging heads, the multi-head forward pass, and the module."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from helpers.attention import (
    MultiHeadAttention,
    attention_weights,
    causal_mask,
    merge_heads,
    softmax,
    split_heads,
)
from helpers.checks.core import (
    EXACT,
    Case,
    Clue,
    Failure,
    Kind,
    Mistake,
    Stop,
    Term,
    check,
    generator,
    key_mismatch,
    randn,
    seeded,
    unpack_or_stop,
)
from helpers.tensors import format_shape

VIEW_WITHOUT_TRANSPOSE = (
    "you reshaped straight to (B, h, n, d_k): each 'head' then holds slices of different tokens. "
    "Cut each token's row into h pieces first, so the tokens stay where they are, then move the head "
    "dimension in front of the tokens."
)

#: The telling pieces of each exercise's solution: no Hint 1 or 2 and no ❌ hint may contain one.
SOLUTION_FRAGMENTS: dict[str, list[str]] = {
    "split_heads": ["transpose(1, 2)", "view(batch, n_tokens, num_heads", "width // num_heads)",
                    "permute(0, 2, 1, 3)", "unflatten(-1, (num_heads"],
    "merge_heads": ["transpose(1, 2)", "reshape(batch, n, num_heads * d_k)", "num_heads * d_k)",
                    "contiguous().view(", "unbind(dim=1)"],
    "multi_head_attention": ["mask.unsqueeze(1)", "query @ W_q", "key @ W_k", "value @ W_v", "@ W_o",
                             "split_heads(query", "merge_heads(heads)"],
    "MultiHeadAttention": ["mask.unsqueeze(1)", "self.dropout(weights) @ v", "attention_weights(q, k, mask)",
                           "self.W_o(attention.merge_heads", "self.W_q(query)", "nn.Dropout(dropout)"],
}


def _draw(g: torch.Generator, low: int, high: int, avoid: tuple[int, ...] = ()) -> int:
    """An int in [low, high] from the local generator `g`, not one of `avoid`."""
    while True:
        value = int(torch.randint(low, high + 1, (1,), generator=g))
        if value not in avoid:
            return value


def _squeezed(dim: int) -> Callable[[Tensor], Tensor]:
    return lambda t: t.squeeze(dim)


def _size_one(what: str) -> str:
    return (f"{what}: a dimension of size 1 is still a dimension, so keep it in the shape; "
            "`squeeze` (without a dimension) or indexing drops it.")


SPLIT_MISTAKES = [
    Mistake(VIEW_WITHOUT_TRANSPOSE, lambda x, h: x.reshape(x.shape[0], h, x.shape[1], -1)),
    Mistake("the head dimension must come before the tokens: swap the tokens' and the heads' dimensions "
            "after cutting the rows.",
            lambda x, h: x.reshape(x.shape[0], x.shape[1], h, -1)),
    Mistake("you split d_model as (d_k, h), so head j gets every h-th column; head j owns the contiguous "
            "block of columns j·d_k ... (j+1)·d_k - 1: a row is cut into (h, d_k), not (d_k, h).",
            lambda x, h: x.reshape(x.shape[0], x.shape[1], -1, h).permute(0, 3, 1, 2)),
    Mistake("you split into h heads of size h; each head has size d_k = d_model / h.",
            lambda x, h: x.reshape(x.shape[0], x.shape[1], -1, h).transpose(1, 2)),
    Mistake(_size_one("a batch of one (B = 1)"), lambda x, h: split_heads(x, h).squeeze(0)),
    Mistake(_size_one("a single token (n = 1)"), lambda x, h: split_heads(x, h).squeeze(2)),
    Mistake(_size_one("heads of width one (d_k = 1)"), lambda x, h: split_heads(x, h).squeeze(-1)),
    Mistake("with num_heads = 1 the output still has a head dimension: (B, 1, n, d_model).",
            lambda x, h: x if h == 1 else split_heads(x, h)),
    Mistake("keep the input's dtype: a float64 x gives float64 heads (moving numbers around needs no cast).",
            lambda x, h: split_heads(x, h).float()),
]

SPLIT_CONTRACT = [
    Term("a batch of one, B = 1", "B = 1", SPLIT_MISTAKES[4].wrong, "batch of one"),
    Term("a single token, n = 1", "n = 1", SPLIT_MISTAKES[5].wrong, "single token"),
    Term("heads of width one, num_heads = d_model (d_k = 1)", "d_k = 1", SPLIT_MISTAKES[6].wrong, "d_k = 1"),
    Term("one head, num_heads = 1", "num_heads = 1", SPLIT_MISTAKES[7].wrong, "num_heads = 1"),
    Term("float64 input (the dtype is kept)", "float64", SPLIT_MISTAKES[8].wrong, "dtype"),
]


def _split_shapes(g: torch.Generator) -> Iterator[tuple[str, int, int, int, int, torch.dtype]]:
    """(what the case pins, B, n, h, d_k, dtype), the free sizes drawn and all different from each other."""
    B = _draw(g, 2, 3)
    h = _draw(g, 2, 4, (B,))
    d_k = _draw(g, 2, 5, (B, h))
    n = _draw(g, 2, 7, (B, h, d_k))
    yield "", B, n, h, d_k, torch.float32
    yield "B = 1", 1, n, h, d_k, torch.float32
    yield "n = 1", B, 1, h, d_k, torch.float32
    yield "d_k = 1", B, n, h, 1, torch.float32
    yield "num_heads = 1", B, n, 1, d_k, torch.float32
    yield "float64", B, _draw(g, 2, 7, (B, h, d_k)), h, d_k, torch.float64


@check(reference=split_heads, mistakes=SPLIT_MISTAKES, contract=SPLIT_CONTRACT,
       passed="{cases} generated cases: shapes (B, n, d_model) -> (B, h, n, d_k), B, n, h or d_k of 1, float64.")
def check_split_heads() -> Iterator[Case]:
    """Check `split_heads(x, num_heads)`: `(B, n, d_model) -> (B, h, n, d_k)`."""
    g = generator(0)  # the sizes are drawn, all different, so that mixed-up dimensions change the result
    for pinned, B, n, h, d_k, dtype in _split_shapes(g):
        shape = (B, n, h * d_k)
        name = f"x of shape {shape} with num_heads={h}" + (f" ({pinned})" if pinned else "")
        yield Case(name, (randn(g, *shape, dtype=dtype), h), tolerance=EXACT)


MERGE_MISTAKES = [
    Mistake("you reshaped without moving the heads back behind the tokens: each token's row then mixes "
            "several tokens. Move the heads back first, then flatten.",
            lambda x: x.reshape(x.shape[0], x.shape[2], -1)),
    Mistake("you flattened (d_k, h) instead of (h, d_k): the heads' outputs must sit side by side, "
            "head 0's d_k columns first.", lambda x: x.permute(0, 2, 3, 1).reshape(x.shape[0], x.shape[2], -1)),
    Mistake("you moved the heads behind the tokens but did not flatten them into one dimension of h·d_k.",
            lambda x: x.transpose(1, 2)),
    Mistake("after a transpose the tensor is not contiguous in memory, which .view needs: make it "
            "contiguous first (.contiguous()), or use an operation that copies when it must.",
            lambda x: x.transpose(1, 2).view(x.shape[0], x.shape[2], -1), crashes=True),
    Mistake(_size_one("a batch of one (B = 1)"), lambda x: merge_heads(x).squeeze(0)),
    Mistake(_size_one("a single token (n = 1)"), lambda x: merge_heads(x).squeeze(1)),
    Mistake("keep the input's dtype: float64 heads give a float64 result (moving numbers around needs no cast).",
            lambda x: merge_heads(x).float()),
]

MERGE_CONTRACT = [
    Term("a batch of one, B = 1", "B = 1", MERGE_MISTAKES[4].wrong, "batch of one"),
    Term("a single token, n = 1", "n = 1", MERGE_MISTAKES[5].wrong, "single token"),
    Term("float64 input (the dtype is kept)", "float64", MERGE_MISTAKES[6].wrong, "dtype"),
]


@check(reference=merge_heads, mistakes=MERGE_MISTAKES, contract=MERGE_CONTRACT,
       passed="{cases} generated cases, including merge_heads(split_heads(x)) == x.")
def check_merge_heads() -> Iterator[Case]:
    """Check `merge_heads(x)`: `(B, h, n, d_k) -> (B, n, h·d_k)`, the inverse of `split_heads`."""
    g = generator(10)
    for pinned, B, n, h, d_k, dtype in _split_shapes(g):
        if pinned in ("d_k = 1", "num_heads = 1"):
            continue  # merging one head or heads of width one moves nothing that the other cases do not
        shape = (B, h, n, d_k)
        name = f"x of shape {shape}" + (f" ({pinned})" if pinned else "")
        yield Case(name, (randn(g, *shape, dtype=dtype),), tolerance=EXACT)
    x = randn(g, 2, 5, 12)
    yield Case("merge_heads(split_heads(x, 3))", (split_heads(x, 3),), tolerance=EXACT)


# ---- masks, shared by the function and the module ------------------------------------------------------

#: How a case names its mask's layout (the contract's `covered_by`), and what a layout needs.
MASK_LAYOUTS = {
    "mask=None": "mask=None means no mask: every query may attend to every key. Test for None before you "
                 "look at the mask's shape or change it.",
    "mask (n_q, n_k)": "a 2-D mask (n_q, n_k), one map for the whole batch, already broadcasts against the "
                       "scores (B, h, n_q, n_k) as it is: only a 3-D mask needs a head dimension.",
    "mask (B, 1, n_k)": "a padding mask (B, 1, n_k) has one row per sentence, shared by all its queries: give "
                        "it a head dimension of size 1 and let broadcasting repeat it over heads and queries; "
                        "do not reshape it as if it had n_q rows.",
    "mask (B, n_q, n_k)": "a mask (B, n_q, n_k) holds one map per sentence, a row per query: keep every row, and "
                          "give it a head dimension (of size 1) so it broadcasts against the scores (B, h, n_q, n_k).",
}


def _layout(case: Case) -> str | None:
    return next((layout for layout in MASK_LAYOUTS if layout in case.name), None)


def _case_mask(case: Case) -> Tensor | None:
    return case.run.keywords["mask"] if case.run is not None else case.args[8]  # type: ignore[attr-defined]


def _shapes(case: Case) -> tuple[int, int, int]:
    query, key = (case.run.keywords["inputs"][:2] if case.run is not None  # type: ignore[attr-defined]
                  else case.args[:2])
    return query.shape[0], query.shape[1], key.shape[1]  # type: ignore[union-attr]


def _with_mask(case: Case, mask: Tensor) -> Case:
    """The same case with another mask (one that means the same, in another layout)."""
    name = f"{case.name}, the same mask as {format_shape(mask.shape)}"
    if case.run is not None:
        keywords = {**case.run.keywords, "mask": mask}  # type: ignore[attr-defined]
        return Case(name, run=functools.partial(case.run.func, **keywords), tolerance=case.tolerance)  # type: ignore[attr-defined]
    return Case(name, (*case.args[:8], mask), tolerance=case.tolerance)


def _same_mask_elsewhere(case: Case, got: object) -> Iterator[Case]:
    """The failing case's mask in a layout that is handled alike by the mistakes of the other layouts."""
    layout, mask = _layout(case), _case_mask(case)
    B, n_q, n_k = _shapes(case)
    if layout == "mask=None":
        yield _with_mask(case, torch.ones(B, n_q, n_k, dtype=torch.bool))
    elif layout == "mask (B, n_q, n_k)" and mask is not None:
        yield _with_mask(case, mask.unsqueeze(1))  # with its head dimension already
    elif layout is not None and mask is not None:
        yield _with_mask(case, mask.expand(B, n_q, n_k).contiguous())  # one full map per sentence


MASK_LAYOUT_CLUE = Clue(lambda case, related: f"your code is right with the same mask in another layout: "
                        f"{MASK_LAYOUTS[_layout(case) or 'mask=None']}", _same_mask_elsewhere)


def _random_mask(g: torch.Generator, B: int, n_q: int, n_k: int) -> Tensor:
    """A boolean (B, n_q, n_k) mask with at least one key per query (no fully masked rows)."""
    mask = torch.rand(B, n_q, n_k, generator=g) < 0.6
    keep = torch.randint(0, n_k, (B, n_q, 1), generator=g)
    return mask.scatter(-1, keep, True)


def _padding(g: torch.Generator, B: int, n_k: int) -> Tensor:
    """A padding mask (B, 1, n_k): row 0 padded at the end, row 1 at the start, the others not at all."""
    lengths = [_draw(g, 1, n_k - 1) for _ in range(B)]
    rows = [torch.arange(n_k) < lengths[0], torch.arange(n_k) >= n_k - lengths[1]]
    rows += [torch.ones(n_k, dtype=torch.bool)] * (B - 2)
    return torch.stack(rows).unsqueeze(1)


def _mha_shapes(g: torch.Generator) -> tuple[int, int, int, int, int]:
    """B, h, d_k, n_q, n_k: drawn, h different from B and n_q, n_k from all of them, so that misplaced dimensions
    fail to broadcast or change the values."""
    B = _draw(g, 2, 3)
    h = _draw(g, 2, 4, (B,))
    d_k = _draw(g, 2, 4)
    n_q = _draw(g, 3, 6, (B, h))
    n_k = _draw(g, 3, 7, (B, h, n_q))
    return B, h, d_k, n_q, n_k


def _mha_layouts(g: torch.Generator, B: int, n_q: int, n_k: int) -> list[tuple[str, bool, Tensor | None, torch.dtype]]:
    """(name, self-attention?, mask, dtype): one case per mask layout the statement allows."""
    return [
        ("cross-attention, mask=None", False, None, torch.float32),
        ("self-attention, causal mask (n_q, n_k)", True, causal_mask(n_q), torch.float32),
        ("cross-attention, padding mask (B, 1, n_k) (row 0 padded at the end, row 1 at the start), float64",
         False, _padding(g, B, n_k), torch.float64),
        ("cross-attention, mask (B, n_q, n_k)", False, _random_mask(g, B, n_q, n_k), torch.float32),
    ]


def _mha(query: Tensor, key: Tensor, value: Tensor, W_q: Tensor, W_k: Tensor, W_v: Tensor, W_o: Tensor, heads: int,
         mask: Tensor | None = None, *, by_d_model: bool = False, wo: bool = True, transpose_split: bool = True,
         transpose_merge: bool = True, mask_mode: str = "right", softmax_dim: int = -1, value_from: str = "value",
         head_dim: str = "if 3-D", rows_from: str = "query") -> tuple[Tensor, Tensor]:
    """Multi-head attention with switches that reproduce the typical mistakes."""
    def split(x: Tensor) -> Tensor:
        return split_heads(x, heads) if transpose_split else x.reshape(x.shape[0], heads, x.shape[1], -1)

    q, k = split(query @ W_q), split(key @ W_k)
    v = split((value if value_from == "value" else key) @ W_v)
    if head_dim == "if 3-D":  # the rule: a 3-D mask gets a head dimension, a 2-D one broadcasts as it is
        m = mask.unsqueeze(1) if mask is not None and mask.ndim == 3 else mask
    elif head_dim == "never":
        m = mask
    elif head_dim == "padding only":  # every 3-D mask taken for a padding mask (B, 1, n_k)
        m = mask.reshape(mask.shape[0], 1, 1, -1) if mask is not None and mask.ndim == 3 else mask
    elif head_dim == "always":
        m = None if mask is None else mask.unsqueeze(1)
    elif head_dim == "reshape":  # as if every 3-D mask had n_q rows
        m = mask.reshape(query.shape[0], 1, query.shape[1], key.shape[1]) if mask is not None and mask.ndim == 3 \
            else mask
    else:  # "no None test"
        m = mask.unsqueeze(1) if mask.ndim == 3 else mask  # type: ignore[union-attr]
    if not by_d_model and softmax_dim == -1:
        chosen = {"right": m, "inverted": None if m is None else ~m, "ignored": None}[mask_mode]
        weights = attention_weights(q, k, chosen)
    else:
        scores = q @ k.transpose(-2, -1) / math.sqrt(query.shape[-1] if by_d_model else q.shape[-1])
        if m is not None:
            scores = scores.masked_fill(~m, float("-inf"))
        weights = softmax(scores, dim=softmax_dim)
    out = weights @ v
    n_rows = query.shape[1] if rows_from == "query" else key.shape[1]
    merged = merge_heads(out) if transpose_merge else out.reshape(query.shape[0], query.shape[1], -1)
    merged = merged.reshape(query.shape[0], n_rows, -1)
    return (merged @ W_o if wo else merged), weights


def _mha_wrong(**switches: object) -> Callable[..., tuple[Tensor, Tensor]]:
    return lambda *args: _mha(*args, **switches)  # type: ignore[arg-type]


def _mha_mistake(hint: str, crashes: bool = False, **switches: object) -> Mistake:
    return Mistake(hint, _mha_wrong(**switches), crashes=crashes)


DROPOUT_LAYER = ("in train(), drop the attention weights with an nn.Dropout layer (or torch.nn.functional.dropout): "
                 "the check makes its random choice repeatable through it, which a hand-made random mask is not.")

VALUE_FROM_KEY = ("the values come from `value`, the keys from `key`: in cross-attention they are different "
                  "tensors, and the output mixes the rows of `value`.")
ROWS_FROM_KEYS = ("in cross-attention n_q and n_k differ: the output has one row per query, (B, n_q, d_model); "
                  "only the keys and values have n_k rows.")

MHA_MISTAKES = [
    _mha_mistake("you left out the output projection W_O: the merged heads still go through W_o.", wo=False),
    _mha_mistake(VIEW_WITHOUT_TRANSPOSE, transpose_split=False),
    _mha_mistake("when merging, move the heads back behind the tokens before flattening them.",
                 transpose_merge=False),
    _mha_mistake("you scaled by √d_model; each head's scores are scaled by √d_k = √(d_model / h).", by_d_model=True),
    _mha_mistake("softmax must run over the keys (dim=-1): each query's weights sum to 1.", softmax_dim=-2),
    _mha_mistake("the mask was ignored: set the scores where mask is False to -inf before the softmax.",
                 mask_mode="ignored"),
    _mha_mistake("the mask is inverted: True means 'may attend', so the scores to hide are where it is False.",
                 mask_mode="inverted"),
    Mistake("return the weights of every head, shape (B, h, n_q, n_k), not their average.",
            lambda *args: (_mha(*args)[0], _mha(*args)[1].mean(dim=1))),
    _mha_mistake(VALUE_FROM_KEY, value_from="key"),
    _mha_mistake(ROWS_FROM_KEYS, crashes=True, rows_from="key"),
]

MHA_CONTRACT = [
    Term("mask=None (no mask)", "mask=None", _mha_wrong(head_dim="no None test"), "mask=None"),
    Term("a 2-D mask (n_q, n_k), one for the whole batch (causal)", "mask (n_q, n_k)",
         _mha_wrong(head_dim="always"), "2-D mask"),
    Term("a padding mask (B, 1, n_k), padded at the end or at the start", "mask (B, 1, n_k)",
         _mha_wrong(head_dim="reshape"), "(B, 1, n_k)"),
    Term("a mask (B, n_q, n_k), one map per sentence", "mask (B, n_q, n_k)", _mha_wrong(head_dim="padding only"),
         "(B, n_q, n_k)"),
    Term("key and value different tensors (cross-attention)", "cross-attention", _mha_wrong(value_from="key"),
         "from `value`"),
    Term("n_q different from n_k (cross-attention)", "cross-attention", _mha_wrong(rows_from="key"),
         "one row per query"),
]


@check(reference=_mha, mistakes=MHA_MISTAKES, clues=[MASK_LAYOUT_CLUE], contract=MHA_CONTRACT,
       returns=("output", "weights"), shown={"output": "the output", "weights": "the weights tensor"},
       compare_first=("weights",),
       passed="{cases} generated cases: cross- and self-attention, no mask and masks (n_q, n_k), (B, 1, n_k) "
              "and (B, n_q, n_k), float32 and float64.")
def check_multi_head_attention() -> Iterator[Case]:
    """Check `multi_head_attention(query, key, value, W_q, W_k, W_v, W_o, num_heads, mask=None)`.

    query `(B, n_q, d_model)`, key and value `(B, n_k, d_model)`, each W `(d_model, d_model)`; the boolean
    mask (True = may attend) is None, `(n_q, n_k)`, `(B, 1, n_k)` or `(B, n_q, n_k)`; returns
    `output (B, n_q, d_model)` and per-head `weights (B, h, n_q, n_k)`.
    """
    g = generator(30)
    B, heads, d_k, n_q, n_k = _mha_shapes(g)
    d_model = heads * d_k
    for name, self_attention, mask, dtype in _mha_layouts(g, B, n_q, n_k):
        if self_attention:
            x = randn(g, B, n_q, d_model, dtype=dtype)
            inputs = [x, x, x]
        else:
            inputs = [randn(g, B, n, d_model, dtype=dtype) for n in (n_q, n_k, n_k)]
        weights = [randn(g, d_model, d_model, dtype=dtype) / math.sqrt(d_model) for _ in range(4)]
        yield Case(f"{name}, B={B}, h={heads}, n_q={n_q}, n_k={n_k if not self_attention else n_q}",
                   (*inputs, *weights, heads, mask))


# ---- the module: MultiHeadAttention ------------------------------------------------------------------

#: The parts a class case compares, in order, and how messages name them.
_PARAMETERS = [f"{p}.{kind}" for p in ("W_q", "W_k", "W_v", "W_o") for kind in ("weight", "bias")]
MODULE_PARTS = ("output", "weights", "grad_query", "grad_key", "grad_value",
                *(f"grad_{p}" for p in _PARAMETERS), "count")
MODULE_SHOWN = {"output": "the output", "weights": "the weights tensor", "count": "the parameter count",
                **{f"grad_{x}": f"the gradient of {x}" for x in ("query", "key", "value")},
                **{f"grad_{p}": f"the gradient of {p}" for p in _PARAMETERS}}

NOT_A_MODULE = "subclass nn.Module (`class MultiHeadAttention(nn.Module):`) and call super().__init__() first."


def load_reference_state(module: object, state: dict[str, Tensor], what: str, naming: str) -> None:
    """Copy the reference's weights into the learner's module, or stop the case with what does not fit.

    `naming` is the hint when the learner's parameter names differ from the reference's.
    """
    if not isinstance(module, nn.Module):
        raise Stop(Failure(Kind.WRONG_TYPE, f"{what} built a {type(module).__name__}, expected an nn.Module",
                            NOT_A_MODULE))
    theirs = module.state_dict()
    mismatch = key_mismatch(theirs, state)
    if mismatch:
        summary = f"the weights of torch's module do not fit into your module: {mismatch}"
        missing, unexpected = [k for k in state if k not in theirs], [k for k in theirs if k not in state]
        if missing and not unexpected and all(k.endswith(".bias") for k in missing):
            hint = ("your linear layers have no bias: keep nn.Linear's bias (its default), as torch's "
                    "module does; the parameter count then includes 4·d_model biases.")
        else:
            hint = naming
        raise Stop(Failure(Kind.WRONG_TYPE, summary, hint))
    for key, value in state.items():
        if tuple(theirs[key].shape) != tuple(value.shape):
            raise Stop(Failure(Kind.WRONG_SHAPE, f"your {key} has shape {format_shape(theirs[key].shape)}, "
                                f"torch's has {format_shape(value.shape)}", naming))
    module.load_state_dict(state)


def _gradient(parameter: Tensor) -> Tensor:
    # A parameter the forward pass never used has no gradient: zeros compare (and reproduce) cleanly.
    return parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)


#: Dropout in a check keeps an entry when frac(|value| · KEY) >= p: the same entries, whatever the order and the
#: number of random draws a correct answer makes (one dropout on all heads, or one per head).
DROPOUT_KEY = 13.0


def _keyed_dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """`F.dropout` made deterministic: which entries drop depends on their values only (see `DROPOUT_KEY`)."""
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = torch.frac(input.detach().to(torch.float64).abs() * DROPOUT_KEY) >= p
    return input * keep.to(input.dtype) / (1.0 - p)


@contextlib.contextmanager
def keyed_dropout() -> Iterator[None]:
    """Within the block, `torch.nn.functional.dropout` (which `nn.Dropout` calls) is `_keyed_dropout`.

    A check with 0 < p < 1 in train() then compares a learner's module with the reference entry by entry:
    dropping another tensor (V, the output, the returned weights) changes the result, while a correct module
    that draws its random numbers in another order still matches.
    """
    original = F.dropout
    F.dropout = _keyed_dropout  # type: ignore[assignment]
    try:
        yield
    finally:
        F.dropout = original


def _run_module(candidate: Callable[..., object], *, d_model: int, heads: int, dropout: float, train: bool,
                dtype: torch.dtype, inputs: tuple[Tensor, Tensor, Tensor], mask: Tensor | None,
                seed: int) -> tuple[object, ...]:
    """Build `candidate(d_model, heads, dropout=...)`, copy torch's weights in, run forward and backward."""
    with seeded(seed):
        theirs = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        with torch.no_grad():  # torch starts its biases at zero: random ones make a missing bias visible
            theirs.in_proj_bias.normal_(0.0, 0.5)
            theirs.out_proj.bias.normal_(0.0, 0.5)
        state = MultiHeadAttention.from_torch(theirs.to(dtype)).state_dict()
        module = candidate(d_model, heads, dropout=dropout)
    if isinstance(module, nn.Module):
        module = module.to(dtype)
    load_reference_state(module, state, "MultiHeadAttention(d_model, num_heads, dropout=...)",
                         "name the projections W_q, W_k, W_v and W_o, each nn.Linear(d_model, d_model), and "
                         "store them as attributes of self: torch's weights are copied in by these names.")
    module.train(train)
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    with seeded(seed + 1), keyed_dropout():
        output, weights = unpack_or_stop(module(*leaves, mask), ("output", "weights"))
    if isinstance(output, Tensor) and output.requires_grad:
        # Drawn in the case's dtype: a float64 answer to a float32 case gets the same upstream gradient.
        upstream = randn(generator(seed + 2), *output.shape, dtype=dtype).to(output.dtype)
        (output * upstream).sum().backward()
    parameters = dict(module.named_parameters())
    grads = [x.grad if x.grad is not None else torch.zeros_like(x) for x in leaves]
    count = torch.tensor(sum(p.numel() for p in module.parameters()))
    return (output, weights, *grads, *(_gradient(parameters[p]) for p in _PARAMETERS), count)


class _WrongMultiHeadAttention(MultiHeadAttention):
    """helpers' module with switches that reproduce the typical mistakes of the class exercise."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, *, scale: str = "d_k",
                 wo: bool = True, transpose_split: bool = True, softmax_dim: int = -1, mask_mode: str = "right",
                 head_dim: str = "if 3-D", dropout_at: str = "weights", value_from: str = "value") -> None:
        super().__init__(d_model, num_heads, dropout=dropout)
        self.scale, self.wo, self.transpose_split, self.softmax_dim = scale, wo, transpose_split, softmax_dim
        self.mask_mode, self.head_dim, self.dropout_at, self.value_from = mask_mode, head_dim, dropout_at, value_from

    def _split(self, x: Tensor) -> Tensor:
        if self.transpose_split:
            return split_heads(x, self.num_heads)
        return x.reshape(x.shape[0], self.num_heads, x.shape[1], -1)

    def _mask(self, mask: Tensor | None, n_q: int) -> Tensor | None:
        if self.head_dim == "no None test":
            return mask.unsqueeze(1) if mask.ndim == 3 else mask  # type: ignore[union-attr]
        if mask is None or self.mask_mode == "ignored" or self.head_dim == "never":
            return None if self.mask_mode == "ignored" else mask
        if self.head_dim == "always":
            return mask.unsqueeze(1)
        if self.head_dim == "padding only" and mask.ndim == 3:  # every 3-D mask taken for a padding mask
            return mask.reshape(mask.shape[0], 1, 1, -1)
        if self.head_dim == "reshape" and mask.ndim == 3:  # as if every 3-D mask had n_q rows
            return mask.reshape(mask.shape[0], 1, n_q, mask.shape[-1])
        return mask.unsqueeze(1) if mask.ndim == 3 else mask

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        values = self.W_v(value if self.value_from == "value" else key)
        q, k, v = self._split(self.W_q(query)), self._split(self.W_k(key)), self._split(values)
        if self.dropout_at == "values":
            v = self.dropout(v)
        scores = q @ k.transpose(-2, -1)
        if self.scale != "none":
            scores = scores / math.sqrt(self.d_model if self.scale == "d_model" else q.shape[-1])
        mask = self._mask(mask, query.shape[1])
        if mask is not None:
            scores = scores.masked_fill(mask if self.mask_mode == "inverted" else ~mask, float("-inf"))
        weights = softmax(scores, dim=self.softmax_dim)
        if self.dropout_at == "always":
            dropped = F.dropout(weights, self.dropout.p, training=True)
        else:
            dropped = self.dropout(weights) if self.dropout_at in ("weights", "returned") else weights
        merged = merge_heads(dropped @ v)
        output = self.W_o(merged) if self.wo else merged
        if self.dropout_at == "output":
            output = self.dropout(output)
        return output, (dropped if self.dropout_at == "returned" else weights)


def _module_mistake(hint: str, crashes: bool = False, **switches: object) -> Mistake:
    return Mistake(hint, functools.partial(_WrongMultiHeadAttention, **switches), crashes=crashes)


def _wrong_module(**switches: object) -> Callable[..., nn.Module]:
    return functools.partial(_WrongMultiHeadAttention, **switches)


DROPOUT_IN_EVAL = ("in eval() dropout must be off: nn.Dropout follows the module's train()/eval() by itself; "
                   "a functional dropout needs training=self.training.")

MODULE_MISTAKES = [
    _module_mistake("the scores are not scaled: divide them by √d_k before the softmax.", scale="none"),
    _module_mistake("you scaled by √d_model; each head's scores are scaled by √d_k = √(d_model / h).",
                    scale="d_model"),
    _module_mistake(VIEW_WITHOUT_TRANSPOSE, transpose_split=False),
    _module_mistake("softmax must run over the keys (the last dimension): each query's weights sum to 1.",
                    softmax_dim=-2),
    _module_mistake("the mask is inverted: True means 'may attend', so the scores to hide are where the mask "
                    "is False.", mask_mode="inverted"),
    _module_mistake("the mask was ignored: hide the scores where the mask is False (-inf) before the softmax.",
                    mask_mode="ignored"),
    _module_mistake(MASK_LAYOUTS["mask (B, n_q, n_k)"], crashes=True, head_dim="never"),
    _module_mistake("dropout is never applied: in train() the attention weights go through the dropout layer "
                    "before they multiply V.", dropout_at="none"),
    _module_mistake(DROPOUT_IN_EVAL, dropout_at="always"),
    _module_mistake("dropout belongs on the attention weights (before they multiply V), not on the output.",
                    dropout_at="output"),
    _module_mistake("dropout belongs on the attention weights, not on V: it drops whole links between a query "
                    "and a key.", dropout_at="values"),
    _module_mistake("return the attention weights as the softmax gives them; only the copy that multiplies V "
                    "goes through dropout.", dropout_at="returned"),
    Mistake("return the weights of every head, shape (B, h, n_q, n_k), not their average.",
            lambda *args, **kwargs: _Averaged(*args, **kwargs)),
    _module_mistake(VALUE_FROM_KEY, value_from="key"),
    _module_mistake("W_o is never applied: the merged heads must go through the output projection.", wo=False),
]

MODULE_CONTRACT = [
    Term("mask=None (no mask)", "mask=None", _wrong_module(head_dim="no None test"), "mask=None"),
    Term("a 2-D mask (n_q, n_k), one for the whole batch (causal)", "mask (n_q, n_k)",
         _wrong_module(head_dim="always"), "2-D mask"),
    Term("a padding mask (B, 1, n_k), padded at the end or at the start", "mask (B, 1, n_k)",
         _wrong_module(head_dim="reshape"), "(B, 1, n_k)"),
    Term("a mask (B, n_q, n_k), one map per sentence", "mask (B, n_q, n_k)",
         _wrong_module(head_dim="padding only"), "(B, n_q, n_k)"),
    Term("train() with 0 < dropout < 1: the weights that multiply V are dropped", "train() with dropout",
         _wrong_module(dropout_at="values"), "not on V"),
    Term("train() with 0 < dropout < 1: not the output", "train() with dropout", _wrong_module(dropout_at="output"),
         "not on the output"),
    Term("train() with 0 < dropout < 1: the returned weights are the softmax's, before dropout",
         "train() with dropout", _wrong_module(dropout_at="returned"), "as the softmax gives them"),
    Term("train() with 0 < dropout < 1: dropout is applied", "train() with dropout",
         _wrong_module(dropout_at="none"), "never applied"),
    Term("eval() with dropout > 0: no dropout", "in eval()", _wrong_module(dropout_at="always"), "in eval()"),
    Term("key and value different tensors (cross-attention)", "cross-attention", _wrong_module(value_from="key"),
         "from `value`"),
]


class _Averaged(MultiHeadAttention):
    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        output, weights = super().forward(query, key, value, mask)
        return output, weights.mean(dim=1)


def _reference_module(d_model: int, num_heads: int, dropout: float = 0.0) -> MultiHeadAttention:
    return MultiHeadAttention(d_model, num_heads, dropout=dropout)


@check(reference=_reference_module, mistakes=MODULE_MISTAKES, clues=[MASK_LAYOUT_CLUE], contract=MODULE_CONTRACT,
       returns=MODULE_PARTS, shown=MODULE_SHOWN,
       passed="{cases} generated cases with torch.nn.MultiheadAttention's weights copied in: outputs, weights, all "
              "gradients, parameter count; no mask and masks (n_q, n_k), (B, 1, n_k), (B, n_q, n_k); eval() and "
              "train() with dropout.")
def check_MultiHeadAttention() -> Iterator[Case]:  # noqa: N802 (named like the class it checks)
    """Check the class `MultiHeadAttention(d_model, num_heads, dropout=0.0)`.

    `forward(query (B, n_q, d_model), key, value (B, n_k, d_model), mask=None) -> (output (B, n_q,
    d_model), weights (B, h, n_q, n_k))`, parameters W_q, W_k, W_v, W_o (nn.Linear with bias), the mask
    None, `(n_q, n_k)`, `(B, 1, n_k)` or `(B, n_q, n_k)`. The weights of a torch.nn.MultiheadAttention
    (batch_first=True) are copied into the learner's module, and it is compared with helpers'
    `MultiHeadAttention` holding the same weights (`from_torch`). In eval() that equals torch's module; in
    train() the reference returns the weights before dropout, where torch's module returns them after
    it. Dropout runs keyed (`keyed_dropout`), so 0 < p < 1 compares entry by entry.
    """
    g = generator(50)
    B, heads, d_k, n_q, n_k = _mha_shapes(g)
    d_model = heads * d_k
    p = round(0.2 + 0.4 * float(torch.rand(1, generator=g)), 2)
    layouts = _mha_layouts(g, B, n_q, n_k)
    runs = [(*layout, p if i == 0 else 0.0, False) for i, layout in enumerate(layouts)]  # eval(), dropout unused
    runs.append((f"train() with dropout={p}, padding mask (B, 1, n_k)", False, layouts[2][2], torch.float32, p, True))
    for seed, (name, self_attention, mask, dtype, dropout, train) in enumerate(runs):
        if self_attention:
            x = randn(g, B, n_q, d_model, dtype=dtype)
            inputs = (x, x, x)
        else:
            inputs = tuple(randn(g, B, n, d_model, dtype=dtype) for n in (n_q, n_k, n_k))
        mode = "" if train else f" in eval() with dropout={dropout}" if dropout else " in eval()"
        yield Case(f"{name}{mode}, B={B}, h={heads}, d_model={d_model}", hint=DROPOUT_LAYER if train else "",
                   run=functools.partial(
                       _run_module, d_model=d_model, heads=heads, dropout=dropout, train=train, dtype=dtype,
                       inputs=inputs, mask=mask, seed=60 + seed))
