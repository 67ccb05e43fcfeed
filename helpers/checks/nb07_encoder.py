"""Checks of notebook 07's exercises: LayerNorm from scratch, the FeedForward and EncoderLayer classes.

The class checks run on `ModuleRun` (below), which notebook 08's DecoderLayer check shares.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import NoReturn

import torch
from torch import Tensor, nn

from helpers.attention import MultiHeadAttention, padding_mask
from helpers.checks.core import (
    Case,
    Clue,
    Failure,
    Kind,
    Mistake,
    Stop,
    Term,
    _where_in_student_code,
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


def _ln_as_2d(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Right values, but a single token comes back as (1, d) (torch.atleast_2d, never undone)."""
    return _layer_norm_variant(torch.atleast_2d(x), weight, bias, eps)


def _ln_merged(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Right values, but every leading dimension after the first is merged into one: (B, h, n, d) -> (B, h·n, d)."""
    out = _layer_norm_variant(x, weight, bias, eps)
    return out.reshape(x.shape[0], -1, x.shape[-1]) if x.ndim > 3 else out


def _ln_in_float32(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Right formula, computed in float32 whatever the input's dtype."""
    return _layer_norm_variant(x.float(), weight.float(), bias.float(), eps)


def _ln_ignoring_eps(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    return _layer_norm_variant(x, weight, bias, 1e-5)


def _ln_default_eps(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-8) -> Tensor:
    """Right when eps is given; its own default is not torch's 1e-5."""
    return _layer_norm_variant(x, weight, bias, eps)


SHAPE_KEPT = ("keep the input's shape: x may have any number of leading dimensions, a single token (d,) "
              "included, and the output has exactly x's shape.")

MISTAKES = [
    _mistake("epsilon belongs inside the square root: add it to the variance, then take the root; adding it to "
             "the standard deviation is a different formula.", eps_outside=True),
    _mistake("LayerNorm uses the biased variance: divide the squared deviations by d_model, not d_model - 1 "
             "(torch.var's default is the unbiased d - 1).", unbiased=True),
    _mistake("normalise each token over its features only (the last dimension), not over the whole tensor.",
             dims="all"),
    _mistake("you forgot the learned scale and shift: multiply by weight (γ) and add bias (β), feature by feature.",
             affine=False),
    _mistake("the variance is the unbiased one AND eps sits outside the square root (the formula "
             "x.std() + eps of some tutorials): use the biased variance, and put eps inside the root.",
             unbiased=True, eps_outside=True),
    _mistake("you left out eps, or ignored the eps argument: it keeps the division safe when a row is "
             "(nearly) constant.", no_eps=True),
    _mistake("normalise over the last dimension (the features), not over the tokens (dim=1).", dims=(1,)),
    Mistake(SHAPE_KEPT, _ln_as_2d),
    Mistake(SHAPE_KEPT, _ln_merged),
    Mistake("compute in the input's dtype: float64 in, float64 out (casting to float32 loses the digits that "
            "nearly constant rows need).", _ln_in_float32),
]

LN_DEFAULT_EPS = Clue("eps is optional: when the caller leaves it out it is 1e-5, torch's default; your default "
                      "differs.", lambda case, got: [replace(case, args=(*case.args, 1e-5))]
                      if "the default eps" in case.name else [])

LAYER_NORM_CONTRACT = [
    Term("x of shape (d,): a single token", "a single token (d,)", _ln_as_2d, "keep the input's shape"),
    Term("x of shape (..., d): any number of leading dimensions", "four dimensions (B, h, n, d)", _ln_merged,
         "keep the input's shape"),
    Term("weight (γ) and bias (β) of any values, one per feature", "random γ and β",
         MISTAKES[3].wrong, "scale and shift"),
    Term("eps of any value, passed by the caller", "eps 0.5", _ln_ignoring_eps, "ignored the eps argument"),
    Term("eps left out: the default 1e-5", "the default eps", _ln_default_eps, "eps is optional"),
    Term("rows that are (nearly) constant", "nearly constant rows", MISTAKES[0].wrong, "inside the square root"),
    Term("x in float64: computed and returned in float64", "float64", _ln_in_float32, "input's dtype"),
]

#: The telling pieces of each exercise's solution: no Hint 1 or 2, no ❌ hint may contain one.
SOLUTION_FRAGMENTS: dict[str, list[str]] = {
    "layer_norm": ["keepdim=True", "unbiased=False", "correction=0", "torch.sqrt(var + eps)", "var + eps",
                   "* weight + bias", ".square().mean(", "x.mean(dim=-1"],
    "FeedForward": ["nn.Linear(d_model, d_ff)", "nn.Linear(d_ff, d_model)", "nn.Dropout(dropout)",
                    "torch.relu(self.linear1(x))", "self.linear2(self.dropout("],
    "EncoderLayer": ["FeedForward(d_model, d_ff, dropout)", "MultiHeadAttention(d_model, num_heads, dropout=dropout)",
                     "self.self_attention(h, h, h, mask)", "self.self_attention(x, x, x, mask)",
                     "x + self.dropout1(", "self.norm1(x + ", "self.dropout2(self.feed_forward("],
}


def _layer_norm_cases() -> Iterator[Case]:
    g = generator(70)

    def size(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=g))

    def affine(d: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        return torch.rand(d, generator=g, dtype=dtype) + 0.5, randn(g, d, dtype=dtype)

    def shaped(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return randn(g, *shape, dtype=dtype) * 3 + 2

    d, b, n = size(6, 12), size(2, 3), size(3, 6)
    yield Case(f"a batch (B, n, d) = ({b}, {n}, {d}), random γ and β, eps 0.5",
               (shaped(b, n, d), *affine(d, torch.float32), 0.5))
    d, b, n = size(5, 10), size(2, 3), size(3, 6)
    yield Case(f"a batch ({b}, {n}, {d}) in float64, eps 1e-5", (shaped(b, n, d, dtype=torch.float64),
                                                                 *affine(d, torch.float64), 1e-5),
               tolerance=(1e-9, 1e-10))
    d, n = size(6, 12), size(3, 6)
    yield Case(f"four dimensions (B, h, n, d) = (2, 3, {n}, {d}), eps 1e-5", (shaped(2, 3, n, d),
                                                                             *affine(d, torch.float32), 1e-5))
    d, n = size(6, 12), size(3, 6)
    yield Case(f"a sentence (n, d) = ({n}, {d}), eps 1e-5", (shaped(n, d), *affine(d, torch.float32), 1e-5))
    d = size(6, 12)
    yield Case(f"a single token (d,) = ({d},), eps 1e-5", (shaped(d), *affine(d, torch.float32), 1e-5))
    d = size(12, 20)
    rows = 5 + 1e-3 * randn(g, 2, 3, d, dtype=torch.float64)
    yield Case("nearly constant rows (variance ~ 1e-6) in float64, eps 1e-3", (rows, *affine(d, torch.float64), 1e-3),
               tolerance=(1e-9, 1e-10))
    rows = 5 + 1e-3 * randn(g, 2, 3, d, dtype=torch.float64)
    yield Case("nearly constant rows in float64, the default eps (left out)", (rows, *affine(d, torch.float64)),
               tolerance=(1e-9, 1e-10))


@check(reference=lambda x, weight, bias, eps=1e-5: torch.nn.functional.layer_norm(x, x.shape[-1:], weight, bias, eps),
       mistakes=MISTAKES, clues=[LN_DEFAULT_EPS], contract=LAYER_NORM_CONTRACT, hints={Kind.WRONG_SHAPE: SHAPE_KEPT},
       passed="{cases} cases: a token, a sentence, batches of 3 and 4 dimensions, float64, nearly constant rows, "
              "eps given and left out; equal to F.layer_norm.")
def check_layer_norm() -> Iterator[Case]:
    """Check `layer_norm(x, weight, bias, eps=1e-5)`: normalise `(..., d)` over the last dimension.

    The contract (`LAYER_NORM_CONTRACT`): x of any shape `(..., d)`, a single token `(d,)` included, in float32
    or float64 (the output keeps x's shape and dtype); weight and bias of any values; eps any value, 1e-5 when
    left out. The cases' sizes are drawn from a seeded generator.
    """
    yield from _layer_norm_cases()


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
    if_raised: str = ""  # the hint when the learner's forward raises on this case (what the case is there for)

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

    def forward(self, module: nn.Module, inputs: list[Tensor | None]) -> object:
        """The module's forward pass; if it raises and the case says what it is there for, stop with that hint."""
        try:
            return module(*inputs, **self.kwargs)
        except NotImplementedError:
            raise
        except Exception as error:  # the learner's code may raise anything
            if not self.if_raised:
                raise
            _stop(Kind.RAISED, f"your module raised {type(error).__name__}: {error}{_where_in_student_code(error)}",
                  self.if_raised)

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
                out = self.forward(module, inputs)
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
    dropout_at = "hidden"  # "output": after linear2; "input": before linear1
    fixed_p: float | None = None  # a dropout probability written in, whatever the argument says
    keep_2d = False  # a single token comes back as (1, d_model)
    in_float32 = False  # the input cast to float32

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__(d_model, d_ff, dropout if self.fixed_p is None else self.fixed_p)

    def forward(self, x: Tensor) -> Tensor:
        if self.in_float32:
            x = x.float()
        if self.keep_2d:
            x = torch.atleast_2d(x)
        if self.dropout_at == "output":
            return self.dropout(self.linear2(self.activation(self.linear1(x))))
        if self.dropout_at == "input":
            return self.linear2(self.activation(self.linear1(self.dropout(x))))
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


def _ff_mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, type("FeedForwardMistake", (_FeedForwardVariant,), switches), crashes="in_float32" in switches)


def _identity(x: Tensor) -> Tensor:
    return x


def _default(cls: type, **defaults: object) -> type:
    """`cls` whose constructor has other defaults: right whenever the caller passes those arguments."""
    signature = inspect.signature(cls.__init__)

    def __init__(self: nn.Module, *args: object, **kwargs: object) -> None:  # noqa: N807
        bound = signature.bind(self, *args, **kwargs)
        for name, value in defaults.items():
            bound.arguments.setdefault(name, value)
        cls.__init__(*bound.args, **bound.kwargs)

    return type(f"{cls.__name__}OtherDefaults", (cls,), {"__init__": __init__})


def _explicit(**kwargs: object) -> Callable[[Case, object], list[Case]]:
    """A clue's related case: the case whose constructor leaves arguments out, with them passed explicitly."""
    def related(case: Case, got: object) -> list[Case]:
        if not (isinstance(case.run, ModuleRun) and "left out" in case.name):
            return []
        return [replace(case, run=replace(case.run, init_kwargs={**kwargs, **case.run.init_kwargs}))]

    return related


FEED_FORWARD_MISTAKES = [
    _ff_mistake("there is no activation between the two linear layers: without the ReLU, linear2(linear1(x)) is "
                "one linear map, and the network adds nothing.", activation=staticmethod(_identity)),
    _ff_mistake("the activation is not the paper's ReLU (max(0, x)): torch's TransformerEncoderLayer with "
                "activation='relu' is the reference.", activation=staticmethod(torch.nn.functional.gelu)),
    _ff_mistake("the dropout sits after the second linear layer; it belongs on the hidden activations, between "
                "the ReLU and linear2 (the layer around the network drops its output itself).", dropout_at="output"),
    _ff_mistake("the dropout sits on the input, before the first linear layer; it belongs on the hidden "
                "activations, between the ReLU and linear2.", dropout_at="input"),
    _ff_mistake("the dropout probability is the constructor's dropout argument, not a number written in.",
                fixed_p=0.1),
    _ff_mistake(SHAPE_KEPT.replace("(d,)", "(d_model,)"), keep_2d=True),
    _ff_mistake("keep the input's dtype: the check runs float64 too, and casting x to float32 breaks the product "
                "with float64 weights.", in_float32=True),
]

FF_DEFAULT_DROPOUT = Clue("dropout is optional: left out, it is 0.1, as the signature says; your default differs.",
                          _explicit(dropout=0.1))


def _ff_shape_hint(key: str, got: tuple[int, ...], want: tuple[int, ...]) -> str:
    if key.startswith(("linear1", "linear2", "feed_forward.linear")):
        return ("the hidden layer has d_ff features: linear1 maps d_model -> d_ff, linear2 maps d_ff -> d_model; "
                "build them from the constructor's d_model and d_ff arguments (not 4 * d_model).")
    return _default_shape_hint(key, got, want)


class _FourTimesWider(FeedForward):
    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__(d_model, 4 * d_model, dropout)


FEED_FORWARD_CONTRACT = [
    Term("x of shape (d_model,): a single token", "a single token", FEED_FORWARD_MISTAKES[5].wrong,
         "keep the input's shape"),
    Term("dropout 0 < p < 1 in train(), on the hidden activations", "in train()", FEED_FORWARD_MISTAKES[2].wrong,
         "after the second linear layer"),
    Term("any dropout probability the constructor is given", "dropout 0.", FEED_FORWARD_MISTAKES[4].wrong,
         "constructor's dropout argument"),
    Term("dropout left out: 0.1", "dropout left out", _default(FeedForward, dropout=0.0), "dropout is optional"),
    Term("any d_ff, not only 4 · d_model", "d_ff = ", _FourTimesWider, "not 4 * d_model"),
    Term("x in float64", "float64", FEED_FORWARD_MISTAKES[6].wrong, "input's dtype"),
]


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


def _size(g: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=g))


@check(reference=FeedForward, mistakes=FEED_FORWARD_MISTAKES, clues=[FF_DEFAULT_DROPOUT], compare=compare_parts,
       contract=FEED_FORWARD_CONTRACT,
       passed="{cases} cases: outputs and gradients in eval() and train() (dropout 0 < p < 1), float64, a single "
              "token, four dimensions, dropout left out; equal to nn.TransformerEncoderLayer's linear1, ReLU, "
              "dropout, linear2.")
def check_FeedForward() -> Iterator[Case]:  # noqa: N802 (named after the exercise's class)
    """Check the class `FeedForward(d_model, d_ff, dropout=0.1)`: `(..., d_model) -> (..., d_model)`.

    The contract (`FEED_FORWARD_CONTRACT`): x of any shape `(..., d_model)`, a single token included, float32 or
    float64; any d_ff; any dropout 0 <= p < 1 (0.1 when left out), on the hidden activations in train() only.
    Sizes and probabilities are drawn from a seeded generator.
    """
    g = generator(700)
    d = 2 * _size(g, 3, 5)
    p = round(0.2 + 0.4 * float(torch.rand(1, generator=g)), 2)
    plans = [(f"a batch (2, 5, {d}), d_ff = {3 * d}, dropout {p} in train() and eval()", (2, 5, d), 3 * d, p,
              torch.float32),
             (f"a (3, 4, 6) batch in float64, d_ff = 10, dropout {round(1 - p, 2)}", (3, 4, 6), 10, round(1 - p, 2),
              torch.float64),
             (f"four dimensions (2, 2, 3, {d}), d_ff = {2 * d + 2}, dropout 0.3", (2, 2, 3, d), 2 * d + 2, 0.3,
              torch.float32),
             (f"a single token ({d},), d_ff = {d + 4}, dropout 0.1", (d,), d + 4, 0.1, torch.float32),
             (f"a (2, 3, {d}) batch, d_ff = {3 * d}, dropout left out (0.1)", (2, 3, d), 3 * d, None, torch.float32)]
    for seed, (name, shape, d_ff, dropout, dtype) in enumerate(plans):
        d_model = shape[-1]
        layer = torch_layer_copy(EncoderLayer, d_model, 2, d_ff, 0.1 if dropout is None else dropout, False,
                                 700 + seed, dtype)
        state = layer.feed_forward.state_dict()
        x = randn(generator(710 + seed), *shape, dtype=dtype)
        init = (d_model, d_ff) if dropout is None else (d_model, d_ff, dropout)
        run = ModuleRun(init, state, (x,), {0: "x"}, seed=720 + seed, shape_hint=_ff_shape_hint,
                        names="linear1, linear2 and dropout")
        yield Case(name, run=run)


# ---- EncoderLayer -----------------------------------------------------------------------------------


def _from_lengths(mask: Tensor) -> Tensor:
    """A `(B, 1, n)` padding mask rebuilt from each row's count of real tokens, as if padding were always at the end."""
    lengths = mask.sum(dim=-1, keepdim=True)
    return torch.arange(mask.shape[-1], device=mask.device) < lengths


class _EncoderLayerVariant(EncoderLayer):
    """helpers' EncoderLayer with switches that reproduce the typical mistakes (class attributes)."""

    wiring: str | None = None  # "post" or "pre": that order whatever norm_first asks
    residual = "x"  # "none"; "branch_norm": x + norm(sub(x)); "normed_input": norm(x) + sub(norm(x))
    dropout_at = "branch"  # "none"; "after": on the sum (pre-LN) or after the norm (post-LN)
    use_mask = True
    mask_handling = "as given"  # "lengths": rebuilt from the row lengths; "first row": (B, n, n) -> its first row;
    # "needs a tensor": fails on mask=None
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
        if self.mask_handling == "lengths" and mask is not None and mask.shape[-2] == 1:
            mask = _from_lengths(mask)
        elif self.mask_handling == "first row" and mask is not None:
            mask = mask[:, :1]
        elif self.mask_handling == "needs a tensor":
            mask = mask.bool()
        x = self.sublayer(x, lambda h: self.self_attention(h, h, h, mask)[0], self.norm1, self.dropout1)
        return self.sublayer(x, self.feed_forward, self.norm2, self.dropout2)


def _encoder_mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, type("EncoderLayerMistake", (_EncoderLayerVariant,), switches))


#: Hints shared by the encoder and decoder checks: where padding sits, and a mask of one row per query.
PADDING_ANYWHERE = ("padding may sit at the start of a row as well as at the end: use the mask as it is given, "
                    "not one rebuilt from the rows' lengths.")

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
    _encoder_mistake(PADDING_ANYWHERE, mask_handling="lengths"),
    _encoder_mistake("the mask may be (B, n, n), one row per query: pass it on whole to the self-attention, do not "
                     "keep only its first row.", mask_handling="first row"),
]

NONE_MASK = ("the mask is optional: mask=None means no padding, every token may attend to every token; your layer "
             "must run with mask=None too (pass it on as it is: MultiHeadAttention accepts None).")

NORM_FIRST_DEFAULT = "norm_first is optional: left out, it is False (the paper's post-LN); your default differs."
ENCODER_LAYER_MISTAKES.insert(0, Mistake(NORM_FIRST_DEFAULT, _default(EncoderLayer, norm_first=True)))

ENCODER_DEFAULTS = [
    Clue("dropout is optional: left out, it is 0.1, as the signature says; your default differs.",
         _explicit(dropout=0.1)),
]

ENCODER_CONTRACT = [
    Term("norm_first=False: post-LN", "post-LN layer (norm_first=False)", ENCODER_LAYER_MISTAKES[1].wrong,
         "you wired pre-LN"),
    Term("norm_first=True: pre-LN", "pre-LN layer (norm_first=True)", ENCODER_LAYER_MISTAKES[2].wrong,
         "you wired post-LN"),
    Term("norm_first left out: post-LN", "norm_first left out", ENCODER_LAYER_MISTAKES[0].wrong,
         "norm_first is optional"),
    Term("dropout left out: 0.1", "dropout left out", _default(EncoderLayer, dropout=0.0), "dropout is optional"),
    Term("dropout 0 < p < 1 in train(), on each sub-layer's output", "in train()", ENCODER_LAYER_MISTAKES[8].wrong,
         "before it is added"),
    Term("dropout 0 < p < 1 in train(), on the attention weights", "in train()", ENCODER_LAYER_MISTAKES[10].wrong,
         "drops no attention weights"),
    Term("mask (B, 1, n), padding at the end of a row", "padding at the end", ENCODER_LAYER_MISTAKES[11].wrong,
         "the mask is not used"),
    Term("mask (B, 1, n), padding at the start of a row", "padding at the start", ENCODER_LAYER_MISTAKES[12].wrong,
         "start of a row"),
    Term("mask (B, n, n): one row per query", "a (B, n, n) mask", ENCODER_LAYER_MISTAKES[13].wrong, "(B, n, n)"),
    Term("mask=None", "mask=None", type("EncoderLayerMistake", (_EncoderLayerVariant,),
                                        {"mask_handling": "needs a tensor"}), "mask=None"),
]

ENCODER_NAMES = ("self_attention (a MultiHeadAttention), feed_forward (a FeedForward: linear1, linear2), "
                 "norm1, norm2, dropout1 and dropout2")


def padding_rows(g: torch.Generator, batch: int, n: int, pad_id: int, at: str) -> Tensor:
    """`(batch, n)` token ids, not pad_id, each row but the first padded by 1 to n - 2 tokens of `pad_id`.

    `at` is "end", "start" or "both" (row 1 padded at the start, row 2 at the end, and so on).
    """
    tokens = torch.randint(0, 50, (batch, n), generator=g)
    tokens[tokens == pad_id] = pad_id + 1
    for row in range(1, batch):
        count = _size(g, 1, n - 2)
        start = at == "start" or (at == "both" and row % 2 == 1)
        if start:
            tokens[row, :count] = pad_id
        else:
            tokens[row, n - count:] = pad_id
    return tokens


def query_rows_mask(g: torch.Generator, tokens: Tensor, pad_id: int) -> Tensor:
    """`(B, n, n)`: the padding mask and a random pattern per query, each query keeping at least itself."""
    n = tokens.shape[1]
    pattern = torch.rand(tokens.shape[0], n, n, generator=g) < 0.6
    return (padding_mask(tokens, pad_id) & pattern) | torch.eye(n, dtype=torch.bool)


@check(reference=EncoderLayer, mistakes=ENCODER_LAYER_MISTAKES, clues=ENCODER_DEFAULTS, compare=compare_parts,
       contract=ENCODER_CONTRACT,
       passed="{cases} cases: post-LN and pre-LN, padding at the end and at the start of rows, a (B, n, n) mask and "
              "none, dropout 0 < p < 1, arguments left out, float64; outputs, input and weight gradients in eval() "
              "and train(), parameter count: equal to nn.TransformerEncoderLayer with its weights copied.")
def check_EncoderLayer() -> Iterator[Case]:  # noqa: N802 (named after the exercise's class)
    """Check the class `EncoderLayer(d_model, num_heads, d_ff, dropout=0.1, norm_first=False)`.

    `forward(x (B, n, d_model), mask=None) -> (B, n, d_model)`, with torch's weights copied in. The contract
    (`ENCODER_CONTRACT`): both norm placements, norm_first False and dropout 0.1 when left out; a mask `(B, 1, n)`
    with padding at the end or the start of a row, or `(B, n, n)`, or None. Lengths, pad ids and dropout
    probabilities are drawn from a seeded generator.
    """
    g = generator(730)
    d_model, heads, d_ff = 16, 4, 24
    p = round(0.15 + 0.3 * float(torch.rand(1, generator=g)), 2)
    # (name, norm_first or None = left out, dropout or None = left out, mask layout, dtype, mask as keyword)
    plans = [(f"the post-LN layer (norm_first=False), dropout {p} in train() and eval(), a (B, 1, n) mask with "
              "padding at the end of rows", False, p, "end", torch.float32, False),
             (f"the pre-LN layer (norm_first=True), dropout {p} in train() and eval(), a (B, 1, n) mask=... with "
              "padding at the start of some rows", True, p, "both", torch.float32, True),
             ("the post-LN layer (norm_first=False), dropout 0.3, a (B, n, n) mask: one row per query", False, 0.3,
              "rows", torch.float32, False),
             ("the pre-LN layer (norm_first=True) in float64, dropout 0.2, a (B, n, n) mask", True, 0.2, "rows",
              torch.float64, True),
             ("the post-LN layer (norm_first=False) in float64, dropout 0.2, mask=None", False, 0.2, None,
              torch.float64, False),
             ("the pre-LN layer (norm_first=True), dropout 0.2, mask=None", True, 0.2, None, torch.float32, False),
             ("norm_first left out (post-LN) and dropout left out (0.1), padding at the end", None, None, "end",
              torch.float32, False)]
    for seed, (name, norm_first, dropout, layout, dtype, keyword) in enumerate(plans):
        layer = torch_layer_copy(EncoderLayer, d_model, heads, d_ff, 0.1 if dropout is None else dropout,
                                 bool(norm_first), 731 + seed, dtype)
        batch, n, pad_id = _size(g, 2, 3), _size(g, 4, 7), _size(g, 0, 3)
        x = randn(g, batch, n, d_model, dtype=dtype)
        tokens = padding_rows(g, batch, n, pad_id, "end" if layout in ("end", "rows") else "both")
        mask = None if layout is None else query_rows_mask(g, tokens, pad_id) if layout == "rows" \
            else padding_mask(tokens, pad_id)
        inputs: tuple[Tensor | None, ...] = (x,) if mask is None or keyword else (x, mask)
        init_kwargs = {k: v for k, v in (("dropout", dropout), ("norm_first", norm_first)) if v is not None}
        run = ModuleRun((d_model, heads, d_ff), layer.state_dict(), inputs, {0: "x"},
                        kwargs={"mask": mask} if keyword and mask is not None else {}, seed=750 + seed,
                        shape_hint=_ff_shape_hint, names=ENCODER_NAMES, init_kwargs=init_kwargs,
                        if_raised=NONE_MASK if mask is None else "")
        yield Case(name, run=run)
