"""Checks of notebook 05: splitting and merging heads, the multi-head forward pass, and the module."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from helpers.attention import (
    MultiHeadAttention,
    attention_weights,
    causal_mask,
    merge_heads,
    padding_mask,
    softmax,
    split_heads,
)
from helpers.checks.core import (
    EXACT,
    Case,
    Failure,
    Kind,
    Mistake,
    Stop,
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
]


@check(reference=split_heads, mistakes=SPLIT_MISTAKES,
       passed="{cases} cases: shapes (B, n, d_model) -> (B, h, n, d_k), values in the right heads.")
def check_split_heads() -> Iterator[Case]:
    """Check `split_heads(x, num_heads)`: `(B, n, d_model) -> (B, h, n, d_k)`."""
    # d_k, h and n all differ so that mixed-up dimensions change the shape or the values.
    for seed, (shape, heads, dtype) in enumerate(
            [((2, 5, 12), 3, torch.float32), ((3, 7, 8), 2, torch.float64), ((1, 4, 6), 6, torch.float32)]):
        yield Case(f"x of shape {shape} with num_heads={heads}", (randn(generator(seed), *shape, dtype=dtype), heads),
                   tolerance=EXACT)


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
]


@check(reference=merge_heads, mistakes=MERGE_MISTAKES,
       passed="{cases} cases, including merge_heads(split_heads(x)) == x.")
def check_merge_heads() -> Iterator[Case]:
    """Check `merge_heads(x)`: `(B, h, n, d_k) -> (B, n, h·d_k)`, the inverse of `split_heads`."""
    for seed, (shape, dtype) in enumerate(
            [((2, 3, 5, 4), torch.float32), ((3, 2, 7, 4), torch.float64), ((1, 6, 4, 1), torch.float32)]):
        yield Case(f"x of shape {shape}", (randn(generator(10 + seed), *shape, dtype=dtype),), tolerance=EXACT)
    x = randn(generator(20), 2, 12, 5).reshape(2, 5, 12)
    yield Case("merge_heads(split_heads(x, 3))", (split_heads(x, 3),), tolerance=EXACT)


def _mha(query: Tensor, key: Tensor, value: Tensor, W_q: Tensor, W_k: Tensor, W_v: Tensor, W_o: Tensor, heads: int,
         mask: Tensor | None = None, *, by_d_model: bool = False, wo: bool = True, transpose_split: bool = True,
         transpose_merge: bool = True, mask_mode: str = "right", softmax_dim: int = -1) -> tuple[Tensor, Tensor]:
    """Multi-head attention with switches that reproduce the typical mistakes."""
    def split(x: Tensor) -> Tensor:
        return split_heads(x, heads) if transpose_split else x.reshape(x.shape[0], heads, x.shape[1], -1)

    q, k, v = split(query @ W_q), split(key @ W_k), split(value @ W_v)
    m = mask.unsqueeze(1) if mask is not None and mask.ndim == 3 else mask
    if not by_d_model and softmax_dim == -1:
        chosen = {"right": m, "inverted": None if m is None else ~m, "ignored": None}[mask_mode]
        weights = attention_weights(q, k, chosen)
    else:
        scores = q @ k.transpose(-2, -1) / math.sqrt(query.shape[-1] if by_d_model else q.shape[-1])
        if m is not None:
            scores = scores.masked_fill(~m, float("-inf"))
        weights = softmax(scores, dim=softmax_dim)
    out = weights @ v
    merged = merge_heads(out) if transpose_merge else out.reshape(query.shape[0], query.shape[1], -1)
    return (merged @ W_o if wo else merged), weights


def _mha_mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, lambda *args: _mha(*args, **switches))  # type: ignore[arg-type]


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
]


@check(reference=_mha, mistakes=MHA_MISTAKES, returns=("output", "weights"),
       shown={"output": "the output", "weights": "the weights tensor"}, compare_first=("weights",),
       passed="{cases} cases: cross- and self-attention, causal and padding masks, float32 and float64.")
def check_multi_head_attention() -> Iterator[Case]:
    """Check `multi_head_attention(query, key, value, W_q, W_k, W_v, W_o, num_heads, mask=None)`.

    query `(B, n_q, d_model)`, key and value `(B, n_k, d_model)`, each W `(d_model, d_model)`;
    returns `output (B, n_q, d_model)` and per-head `weights (B, h, n_q, n_k)`.
    """
    d_model, heads = 12, 3
    padding = padding_mask(torch.tensor([[1, 2, 3, 4, 0, 0], [1, 2, 3, 4, 5, 6]]), pad_id=0)
    for seed, (name, n_q, n_k, mask, dtype) in enumerate([
        ("cross-attention: 5 queries, 7 keys", 5, 7, None, torch.float32),
        ("self-attention with a causal mask", 6, 6, causal_mask(6), torch.float32),
        ("cross-attention with a padding mask (B, 1, n_k)", 4, 6, padding, torch.float64),
    ]):
        g = generator(30 + seed)
        inputs = [randn(g, 2, n, d_model, dtype=dtype) for n in (n_q, n_k, n_k)]
        weights = [randn(g, d_model, d_model, dtype=dtype) / math.sqrt(d_model) for _ in range(4)]
        yield Case(name, (*inputs, *weights, heads, mask))


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
    with seeded(seed + 1):
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
                 unsqueeze: bool = True, dropout_at: str = "weights") -> None:
        super().__init__(d_model, num_heads, dropout=dropout)
        self.scale, self.wo, self.transpose_split, self.softmax_dim = scale, wo, transpose_split, softmax_dim
        self.mask_mode, self.unsqueeze, self.dropout_at = mask_mode, unsqueeze, dropout_at

    def _split(self, x: Tensor) -> Tensor:
        if self.transpose_split:
            return split_heads(x, self.num_heads)
        return x.reshape(x.shape[0], self.num_heads, x.shape[1], -1)

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        q, k, v = self._split(self.W_q(query)), self._split(self.W_k(key)), self._split(self.W_v(value))
        scores = q @ k.transpose(-2, -1)
        if self.scale != "none":
            scores = scores / math.sqrt(self.d_model if self.scale == "d_model" else q.shape[-1])
        if mask is not None and self.mask_mode != "ignored":
            if mask.ndim == 3 and self.unsqueeze:
                mask = mask.unsqueeze(1)
            scores = scores.masked_fill(mask if self.mask_mode == "inverted" else ~mask, float("-inf"))
        weights = softmax(scores, dim=self.softmax_dim)
        dropped = self.dropout(weights) if self.dropout_at in ("weights", "returned") else weights
        merged = merge_heads(dropped @ v)
        output = self.W_o(merged) if self.wo else merged
        if self.dropout_at == "output":
            output = self.dropout(output)
        return output, (dropped if self.dropout_at == "returned" else weights)


def _module_mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, functools.partial(_WrongMultiHeadAttention, **switches))


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
    Mistake("a mask (B, 1 or n_q, n_k) has no head dimension: give it one (of size 1) so it broadcasts "
            "against the scores (B, h, n_q, n_k).",
            functools.partial(_WrongMultiHeadAttention, unsqueeze=False), crashes=True),
    _module_mistake("dropout is never applied: in train() the attention weights go through self.dropout "
                    "before they multiply V.", dropout_at="none"),
    _module_mistake("dropout belongs on the attention weights (before they multiply V), not on the output.",
                    dropout_at="output"),
    _module_mistake("return the attention weights as the softmax gives them; only the copy that multiplies V "
                    "goes through dropout.", dropout_at="returned"),
    Mistake("return the weights of every head, shape (B, h, n_q, n_k), not their average.",
            lambda *args, **kwargs: _Averaged(*args, **kwargs)),
    # After the dropout mistakes: with dropout=1.0 a missing W_o and a dropped output both give zeros.
    _module_mistake("W_o is never applied: the merged heads must go through the output projection.", wo=False),
]


class _Averaged(MultiHeadAttention):
    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        output, weights = super().forward(query, key, value, mask)
        return output, weights.mean(dim=1)


def _reference_module(d_model: int, num_heads: int, dropout: float = 0.0) -> MultiHeadAttention:
    return MultiHeadAttention(d_model, num_heads, dropout=dropout)


@check(reference=_reference_module, mistakes=MODULE_MISTAKES, returns=MODULE_PARTS, shown=MODULE_SHOWN,
       passed="{cases} cases against torch.nn.MultiheadAttention with copied weights: outputs, weights, "
              "all gradients, parameter count, eval() and train().")
def check_MultiHeadAttention() -> Iterator[Case]:  # noqa: N802 (named like the class it checks)
    """Check the class `MultiHeadAttention(d_model, num_heads, dropout=0.0)`.

    `forward(query (B, n_q, d_model), key, value (B, n_k, d_model), mask=None) -> (output (B, n_q,
    d_model), weights (B, h, n_q, n_k))`, parameters W_q, W_k, W_v, W_o (nn.Linear with bias).
    torch's nn.MultiheadAttention(batch_first=True) is built, its weights copied into the
    learner's module (through helpers' `MultiHeadAttention.from_torch`), and both are compared.
    """
    d_model, heads = 12, 3  # h = 3 differs from B = 2: a mask missing its head dimension fails to broadcast
    padding = padding_mask(torch.tensor([[1, 2, 3, 4, 0, 0], [1, 2, 3, 4, 5, 6]]), pad_id=0)
    for seed, (name, n_q, n_k, mask, dtype, dropout, train) in enumerate([
        ("cross-attention in eval(): 5 queries, 7 keys", 5, 7, None, torch.float32, 0.1, False),
        ("self-attention with a causal mask (n, n)", 6, 6, causal_mask(6), torch.float32, 0.0, False),
        ("cross-attention with a padding mask (B, 1, n_k), float64", 4, 6, padding, torch.float64, 0.0, False),
        ("train() with dropout=1.0 (every dropped weight is 0, whatever the random draw)", 5, 6, padding,
         torch.float32, 1.0, True),
    ]):
        g = generator(50 + seed)
        inputs = tuple(randn(g, 2, n, d_model, dtype=dtype) for n in (n_q, n_k, n_k))
        if n_q == n_k and mask is not None and mask.ndim == 2:
            inputs = (inputs[0], inputs[0], inputs[0])  # self-attention: query, key and value are one X
        yield Case(name, run=functools.partial(_run_module, d_model=d_model, heads=heads, dropout=dropout,
                                               train=train, dtype=dtype, inputs=inputs, mask=mask,
                                               seed=60 + seed))
