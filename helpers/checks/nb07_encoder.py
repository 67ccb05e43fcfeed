"""Checks of notebook 07's exercises: LayerNorm from scratch, the FeedForward and EncoderLayer classes.

The class checks run on `ModuleRun` (below), which notebook 08's DecoderLayer check shares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NoReturn

import torch
from torch import Tensor, nn

from helpers.attention import MultiHeadAttention, padding_mask
from helpers.checks.core import (
    Case,
    Failure,
    Kind,
    Mistake,
    Stop,
    check,
    describe_difference,
    generator,
    key_mismatch,
    randn,
    seeded,
)
from helpers.tensors import format_shape
from helpers.transformer import DecoderLayer, EncoderLayer, FeedForward


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


# ---- class exercises: how a case runs a module class -------------------------------------------------
#
# The learner's class is built under a seed, the reference's weights (copied from torch's own layer) are
# loaded into it by name, and it runs forward and backward in eval() and train(). Dropout draws its masks
# from the global generator, so both classes run each mode under the same seed: a layer that drops the
# same tensors in the same order gives the same numbers. Everything compared goes into one dict, in the
# order a learner should read the differences: outputs, input gradients, parameter gradients, the count.


def _parameter_count(module: nn.Module) -> Tensor:
    return torch.tensor(sum(p.numel() for p in module.parameters()))


def _stop(kind: Kind, summary: str, hint: str) -> NoReturn:
    raise Stop(Failure(kind, summary, hint))


ShapeHint = Callable[[str, tuple[int, ...], tuple[int, ...]], str]


def _default_shape_hint(key: str, got: tuple[int, ...], want: tuple[int, ...]) -> str:
    return f"build {key.rsplit('.', 1)[0]} with the sizes the constructor's arguments give."


@dataclass(frozen=True)
class ModuleRun:
    """A case's `run` for a class exercise: `ModuleRun(...)(cls)` -> {what: tensor}.

    `init` are the constructor's arguments, `state` the reference's state_dict (torch's weights),
    `inputs` the forward's positional arguments (masks included) and `kwargs` its keywords;
    `grads` names the inputs whose gradients are compared (by position in `inputs`).
    """

    init: tuple[object, ...]
    state: Mapping[str, Tensor]
    inputs: tuple[Tensor | None, ...]
    grads: Mapping[int, str]
    kwargs: Mapping[str, object] = field(default_factory=dict)
    seed: int = 0
    modes: tuple[str, ...] = ("eval", "train")
    shape_hint: ShapeHint = _default_shape_hint
    names: str = "the sub-modules' names the exercise gives"
    init_kwargs: Mapping[str, object] = field(default_factory=dict)

    def build(self, cls: Callable[..., object]) -> nn.Module:
        with seeded(self.seed):
            module = cls(*self.init, **self.init_kwargs)
        if not isinstance(module, nn.Module):
            _stop(Kind.WRONG_TYPE, f"calling your class gave {type(module).__name__}, not an nn.Module",
                  "pass the class itself (not an instance), and derive it from nn.Module.")
        dtype = next(iter(self.state.values())).dtype
        module = module.to(dtype)
        self.load(module)
        return module

    def load(self, module: nn.Module) -> None:
        """Copy the reference's weights in by name, or stop with what does not fit."""
        theirs = module.state_dict()
        mismatch = key_mismatch(theirs, self.state)
        if mismatch:
            _stop(Kind.WRONG_TYPE, f"the torch layer's weights do not fit your module: {mismatch}",
                  f"use {self.names}: the check copies torch's weights in by these names, and notebook 09 "
                  "assembles your classes the same way.")
        for key, want in self.state.items():
            got = tuple(theirs[key].shape)
            if got != tuple(want.shape):
                _stop(Kind.WRONG_SHAPE, f"your module's {key} has shape {format_shape(got)}, "
                      f"expected {format_shape(want.shape)}", self.shape_hint(key, got, tuple(want.shape)))
        module.load_state_dict(dict(self.state))

    def __call__(self, cls: Callable[..., object]) -> dict[str, Tensor]:
        module = self.build(cls)
        results: dict[str, Tensor] = {}
        for mode in self.modes:
            module.train(mode == "train")
            module.zero_grad(set_to_none=True)
            inputs = [None if x is None else x.detach().clone().requires_grad_(i in self.grads and
                                                                                 x.is_floating_point())
                      for i, x in enumerate(self.inputs)]
            with seeded(self.seed + 1):
                out = module(*inputs, **self.kwargs)
            results[f"the output in {mode}()"] = out
            if not isinstance(out, Tensor) or not out.requires_grad:
                return results  # the comparison names what came back instead
            # Drawn in the case's dtype, whatever the candidate returns (a float64 answer is right too).
            dtype = next(iter(self.state.values())).dtype
            upstream = torch.randn(out.shape, generator=generator(self.seed + 2), dtype=dtype).to(out.dtype)
            params = dict(module.named_parameters())
            wanted = [inputs[i] for i in self.grads] + [params[k] for k in self.state if k in params]
            grads = torch.autograd.grad((out * upstream).sum(), wanted, allow_unused=True)
            names = [f"the gradient of {name}" for name in self.grads.values()]
            names += [f"the gradient of {k}" for k in self.state if k in params]
            for name, x, grad in zip(names, wanted, grads):
                results[f"{name} in {mode}()"] = torch.zeros_like(x) if grad is None else grad
        results["the parameter count"] = _parameter_count(module)
        return results


def compare_parts(actual: object, expected: object, what: str, tolerance: tuple[float, float]) -> Failure | None:
    """Compare two {what: tensor} dicts of a `ModuleRun`, part by part, in the expected one's order."""
    assert isinstance(expected, dict)
    if not isinstance(actual, dict):
        return Failure(Kind.WRONG_TYPE, "the check could not run your module")
    for name, want in expected.items():
        if name not in actual:  # the run stopped early: the part before it came back wrong
            continue
        got = actual[name]
        if name == "the parameter count":
            if int(got) != int(want):
                return Failure(Kind.WRONG_VALUES, f"your module has {int(got):,} parameters, expected {int(want):,}")
            continue
        if isinstance(got, Tensor) and got.requires_grad is False and "output" in name and want.requires_grad:
            return Failure(Kind.WRONG_TYPE, f"{name} carries no gradient",
                           "do not detach the output or run forward under torch.no_grad(): it must train.")
        if isinstance(got, tuple) and "output" in name:
            return Failure(Kind.WRONG_TYPE, f"{name} is a tuple of {len(got)}, expected one tensor",
                           "an attention module returns (output, weights): keep only the output, [0].")
        failure = describe_difference(got, want, *tolerance, what=name)
        if failure is not None:
            return failure
    return None


# ---- FeedForward ------------------------------------------------------------------------------------


class _FeedForwardVariant(FeedForward):
    """helpers' FeedForward with switches that reproduce the typical mistakes."""

    activation: Callable[[Tensor], Tensor] = staticmethod(torch.relu)
    dropout_last = False

    def forward(self, x: Tensor) -> Tensor:
        if self.dropout_last:
            return self.dropout(self.linear2(torch.relu(self.linear1(x))))
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


def _ff_mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, type("FeedForwardMistake", (_FeedForwardVariant,), switches))


def _identity(x: Tensor) -> Tensor:
    return x


FEED_FORWARD_MISTAKES = [
    _ff_mistake("there is no activation between the two linear layers: without the ReLU, linear2(linear1(x)) is "
                "one linear map, and the network adds nothing.", activation=staticmethod(_identity)),
    _ff_mistake("the activation is not the paper's ReLU (max(0, x)): torch's TransformerEncoderLayer with "
                "activation='relu' is the reference.", activation=staticmethod(torch.nn.functional.gelu)),
    _ff_mistake("the dropout sits after the second linear layer; it belongs on the hidden activations, between "
                "the ReLU and linear2 (the layer around the network drops its output itself).", dropout_last=True),
]


def _ff_shape_hint(key: str, got: tuple[int, ...], want: tuple[int, ...]) -> str:
    if key.startswith(("linear1", "linear2", "feed_forward.linear")):
        return ("the hidden layer has d_ff features: linear1 maps d_model -> d_ff, linear2 maps d_ff -> d_model; "
                "build them from the constructor's d_model and d_ff arguments (not 4 * d_model).")
    return _default_shape_hint(key, got, want)


def torch_layer_copy(ours: type[EncoderLayer] | type[DecoderLayer], d_model: int, heads: int, d_ff: int,
                     dropout: float, norm_first: bool, seed: int, dtype: torch.dtype) -> nn.Module:
    """helpers' `ours.from_torch` copy of torch's layer of the same kind (batch_first=True, activation="relu"),
    its norms perturbed (γ = 1, β = 0 at initialisation would let a misplaced norm go unseen)."""
    kind = nn.TransformerEncoderLayer if ours is EncoderLayer else nn.TransformerDecoderLayer
    with seeded(seed):
        layer = kind(d_model, heads, d_ff, dropout, activation="relu", batch_first=True, norm_first=norm_first)
        with torch.no_grad():
            for name, p in layer.named_parameters():
                if name.startswith("norm"):
                    p.add_(0.3 * torch.randn_like(p))
    return ours.from_torch(layer.to(dtype))


@check(reference=FeedForward, mistakes=FEED_FORWARD_MISTAKES, compare=compare_parts,
       passed="{cases} cases: outputs and gradients in eval() and train() (dropout), float64, a single token; "
              "equal to nn.TransformerEncoderLayer's linear1, ReLU, dropout, linear2.")
def check_FeedForward() -> Iterator[Case]:  # noqa: N802 (named after the exercise's class)
    """Check the class `FeedForward(d_model, d_ff, dropout=0.1)`: `(..., d_model) -> (..., d_model)`."""
    for seed, (name, shape, d_ff, dropout, dtype) in enumerate([
        ("a (2, 5, 8) batch, d_ff = 24, dropout 0.25", (2, 5, 8), 24, 0.25, torch.float32),
        ("a (3, 4, 6) batch in float64, d_ff = 10, dropout 0.5", (3, 4, 6), 10, 0.5, torch.float64),
        ("a single token (8,), d_ff = 16, dropout 0.1", (8,), 16, 0.1, torch.float32),
    ]):
        d_model = shape[-1]
        layer = torch_layer_copy(EncoderLayer, d_model, 2, d_ff, dropout, False, 700 + seed, dtype)
        state = layer.feed_forward.state_dict()
        x = randn(generator(710 + seed), *shape, dtype=dtype)
        run = ModuleRun((d_model, d_ff, dropout), state, (x,), {0: "x"}, seed=720 + seed,
                        shape_hint=_ff_shape_hint, names="linear1, linear2 and dropout")
        yield Case(name, run=run)


# ---- EncoderLayer -----------------------------------------------------------------------------------


class _EncoderLayerVariant(EncoderLayer):
    """helpers' EncoderLayer with switches that reproduce the typical mistakes (class attributes)."""

    wiring: str | None = None  # "post" or "pre": that order whatever norm_first asks
    residual = "x"  # "none"; "branch_norm": x + norm(sub(x)); "normed_input": norm(x) + sub(norm(x))
    dropout_at = "branch"  # "none"; "after": on the sum (pre-LN) or after the norm (post-LN)
    use_mask = True
    activation: Callable[[Tensor], Tensor] = staticmethod(torch.relu)
    attention_dropout = True

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1,
                 norm_first: bool = False) -> None:
        super().__init__(d_model, num_heads, d_ff, dropout, norm_first)
        variant = type("FeedForward", (_FeedForwardVariant,), {"activation": staticmethod(type(self).activation)})
        self.feed_forward = variant(d_model, d_ff, dropout)
        if not self.attention_dropout:
            self.self_attention = MultiHeadAttention(d_model, num_heads)

    def sublayer(self, x: Tensor, f: Callable[[Tensor], Tensor], norm: nn.Module, drop: nn.Module) -> Tensor:
        def branch(h: Tensor) -> Tensor:
            return drop(f(h)) if self.dropout_at == "branch" else f(h)

        if (self.wiring or ("pre" if self.norm_first else "post")) == "pre":
            if self.residual == "normed_input":
                h = norm(x)
                out = h + branch(h)
            else:
                out = branch(norm(x)) + (0 if self.residual == "none" else x)
        elif self.residual == "branch_norm":
            out = x + norm(branch(x))
        else:
            out = norm(branch(x) + (0 if self.residual == "none" else x))
        return drop(out) if self.dropout_at == "after" else out

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        mask = mask if self.use_mask else None
        x = self.sublayer(x, lambda h: self.self_attention(h, h, h, mask)[0], self.norm1, self.dropout1)
        return self.sublayer(x, self.feed_forward, self.norm2, self.dropout2)


def _encoder_mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, type("EncoderLayerMistake", (_EncoderLayerVariant,), switches))


ENCODER_LAYER_MISTAKES = [
    _encoder_mistake("norm_first=False asks for the paper's post-LN order, the norm after the addition: "
                     "x = norm(x + sublayer(x)); you wired pre-LN.", wiring="pre"),
    _encoder_mistake("norm_first=True asks for pre-LN, the norm at the start of the branch: "
                     "x = x + sublayer(norm(x)); you wired post-LN.", wiring="post"),
    _encoder_mistake("post-LN normalises the sum, not the branch: the residual is added before the norm, "
                     "norm(x + sublayer(x)), not x + norm(sublayer(x)).", residual="branch_norm"),
    _encoder_mistake("in pre-LN the residual carries x itself, not norm(x): keep x, normalise a copy for the "
                     "sub-layer and add its output to the un-normalised x.", residual="normed_input"),
    _encoder_mistake("a residual connection is missing: each sub-layer's output is added to its input "
                     "(the identity path of the first section).", residual="none"),
    _encoder_mistake("the feed-forward network has no ReLU between its linear layers (check FeedForward above "
                     "first).", activation=staticmethod(_identity)),
    _encoder_mistake("the feed-forward network uses GELU; the paper's layer (torch's activation='relu') uses ReLU "
                     "(check FeedForward above first).", activation=staticmethod(torch.nn.functional.gelu)),
    _encoder_mistake("dropout goes on each sub-layer's output before it is added to x, not on the sum "
                     "or after the norm.", dropout_at="after"),
    _encoder_mistake("no dropout on the sub-layers' outputs: in train() dropout1 and dropout2 drop the attention's "
                     "and the feed-forward network's output before each addition.", dropout_at="none"),
    _encoder_mistake("the self-attention drops no attention weights: pass dropout on to MultiHeadAttention too, "
                     "as torch's layer does.", attention_dropout=False),
    _encoder_mistake("the mask is not used: pass it to the self-attention, or real tokens attend to the padding.",
                     use_mask=False),
]

ENCODER_NAMES = ("self_attention (a MultiHeadAttention), feed_forward (a FeedForward: linear1, linear2), "
                 "norm1, norm2, dropout1 and dropout2")


@check(reference=EncoderLayer, mistakes=ENCODER_LAYER_MISTAKES, compare=compare_parts,
       passed="{cases} cases: post-LN and pre-LN, a padding mask, float64; outputs, input and weight gradients in "
              "eval() and train(), parameter count: equal to nn.TransformerEncoderLayer with its weights copied.")
def check_EncoderLayer() -> Iterator[Case]:  # noqa: N802 (named after the exercise's class)
    """Check the class `EncoderLayer(d_model, num_heads, d_ff, dropout=0.1, norm_first=False)`.

    `forward(x (B, n, d_model), mask=None) -> (B, n, d_model)`, with torch's weights copied in.
    """
    for seed, (name, norm_first, padded, dtype, keyword) in enumerate([
        ("the post-LN layer (norm_first=False) on a padded batch (2, 5, 16)", False, True, torch.float32, False),
        ("the pre-LN layer (norm_first=True) on a padded batch (2, 5, 16), mask=mask", True, True, torch.float32,
         True),
        ("the post-LN layer in float64 without a mask", False, False, torch.float64, False),
        ("the pre-LN layer in float64 without a mask", True, False, torch.float64, False),
    ]):
        d_model, heads, d_ff, dropout = 16, 4, 24, 0.2
        layer = torch_layer_copy(EncoderLayer, d_model, heads, d_ff, dropout, norm_first, 730 + seed, dtype)
        state = layer.state_dict()
        x = randn(generator(740 + seed), 2, 5, d_model, dtype=dtype)
        tokens = torch.tensor([[4, 2, 7, 1, 3], [5, 6, 1, 0, 0]])
        mask = padding_mask(tokens, 0) if padded else None
        inputs: tuple[Tensor | None, ...] = (x,) if mask is None or keyword else (x, mask)
        run = ModuleRun((d_model, heads, d_ff), state, inputs, {0: "x"},
                        kwargs={"mask": mask} if keyword else {}, seed=750 + seed, shape_hint=_ff_shape_hint,
                        names=ENCODER_NAMES, init_kwargs={"dropout": dropout, "norm_first": norm_first})
        yield Case(name, run=run)
