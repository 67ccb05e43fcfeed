"""Check for notebook 01's exercise: queries, keys and values from the same input."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from helpers.attention import project_qkv
from helpers.checks.core import CheckResult, Failure, NotAttempted, Probe, describe_difference, run_check
from helpers.tensors import format_shape

NAMES = ("Q", "K", "V")


@dataclass(frozen=True)
class Case:
    description: str
    x_shape: tuple[int, ...]  # (..., n, d_model)
    d_k: int
    d_v: int
    dtype: torch.dtype = torch.float32


#: Batched cases first: they tell the mistakes apart. The first is square
#: (n = d_model = d_k = d_v), so that `X @ W.T` and `W @ X` run and give wrong values
#: instead of crashing; the others are not, so that any mix-up changes a shape.
CASES = [
    Case("a batch of 2 sentences of 4 tokens, d_model = d_k = d_v = 4 (X of shape (2, 4, 4))", (2, 4, 4), 4, 4),
    Case("a batch of 2 sentences of 3 tokens, d_model = 5, d_k = 4, d_v = 6 (X of shape (2, 3, 5))", (2, 3, 5), 4, 6),
    Case("X of shape (2, 2, 3, 5) (batch and heads), d_k = 4, d_v = 6", (2, 2, 3, 5), 4, 6),
    Case("a batch of 3 sentences in float64, X of shape (3, 3, 5), d_k = 2, d_v = 3", (3, 3, 5), 2, 3, torch.float64),
    Case("a single sentence: X of shape (3, 5), d_k = 4, d_v = 6", (3, 5), 4, 6),
]

HINT_TRANSPOSED = (
    "you multiplied by the transposed weight, X @ W.T: that is nn.Linear's convention (its .weight stores Wᵀ). "
    "Here the weights come as (d_model, d_k) matrices already, so Q = X @ W_q, with no transpose."
)


def _hint_transposed(name: str) -> str:
    w = f"W_{name.lower()}"
    d = "d_v" if name == "V" else "d_k"
    return (
        f"your {name} equals X @ {w}.T: you multiplied by the transposed weight, the convention of nn.Linear "
        f"(its .weight stores Wᵀ). Here {w} comes as a (d_model, {d}) matrix already, so {name} = X @ {w}."
    )


def _hint_weight_on_the_left(name: str) -> str:
    w = f"W_{name.lower()}"
    return (
        f"your {name} equals {w} @ X: the weight goes on the right. Each token is a row of X, and "
        f"{name} = X @ {w} maps every row (d_model numbers) to a row of {name}."
    )


HINT_NUMPY = (
    "return torch tensors, not NumPy arrays: `X @ W_q` works on tensors directly (torch.from_numpy converts an array)."
)
HINT_IGNORES_WEIGHTS = (
    "your function returns the same result whatever weights it is given: use its arguments W_q, W_k, W_v "
    "(lower-case), not the notebook's W_Q, W_K, W_V."
)


def _inputs(case: Case, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    d_model = case.x_shape[-1]
    X = torch.randn(case.x_shape, generator=generator, dtype=case.dtype)
    W_q = torch.randn(d_model, case.d_k, generator=generator, dtype=case.dtype)
    W_k = torch.randn(d_model, case.d_k, generator=generator, dtype=case.dtype)
    W_v = torch.randn(d_model, case.d_v, generator=generator, dtype=case.dtype)
    return X, W_q, W_k, W_v


def _matches(actual: object, expected: Tensor) -> bool:
    return describe_difference(actual, expected) is None


def _as_triple(result: object, case: str) -> tuple[object, object, object]:
    """The candidate's (Q, K, V), or a Failure that says what was returned instead."""
    if isinstance(result, Tensor):
        raise Failure(
            f"On {case}: your function returned one tensor of shape {format_shape(result.shape)}, "
            "expected three: (Q, K, V).",
            "return all three, as a tuple: `return Q, K, V` (returning only Q, or one stacked tensor, is not enough).",
        )
    if isinstance(result, np.ndarray):
        raise Failure(f"On {case}: your function returned one NumPy array, expected a tuple (Q, K, V).", HINT_NUMPY)
    if not isinstance(result, (tuple, list)):
        raise Failure(
            f"On {case}: your function returned {type(result).__name__}, expected a tuple (Q, K, V).",
            "end your function with `return Q, K, V`.",
        )
    if len(result) != 3:
        raise Failure(
            f"On {case}: your function returned a {type(result).__name__} of {len(result)} "
            f"item{'' if len(result) == 1 else 's'}, expected 3: (Q, K, V).",
            "return exactly three tensors, in this order: `return Q, K, V`.",
        )
    return result[0], result[1], result[2]


def _products(X: Tensor, weights: tuple[Tensor, Tensor, Tensor]) -> dict[str, Callable[[], Tensor]]:
    """What each named computation gives on this case (a mistake may not run: then it is skipped)."""
    products: dict[str, Callable[[], Tensor]] = {}
    for name, W in zip(NAMES, weights):
        products[f"X W_{name.lower()}"] = lambda W=W: X @ W
    for name, W in zip(NAMES, weights):
        products[f"X W_{name.lower()}ᵀ"] = lambda W=W: X @ W.transpose(-2, -1)
    for name, W in zip(NAMES, weights):
        products[f"W_{name.lower()} X"] = lambda W=W: W @ X
    return products


def _identify(output: object, products: dict[str, Callable[[], Tensor]]) -> str | None:
    """The name of the computation `output` equals, if any."""
    for label, compute in products.items():
        try:
            value = compute()
        except Exception:  # this computation cannot run on this case's shapes
            continue
        if _matches(output, value):
            return label
    return None


def _name_the_mistake(outputs: tuple[object, object, object], X: Tensor, weights: tuple[Tensor, ...]) -> str:
    """A hint naming the mistake behind wrong (but well-formed) outputs, or '' if none is recognized."""
    if any(isinstance(o, np.ndarray) for o in outputs):
        return HINT_NUMPY
    labels = [_identify(o, _products(X, weights)) for o in outputs]
    right = [f"X W_{name.lower()}" for name in NAMES]
    if all(label in right for label in labels):
        if sorted(labels) == sorted(right):  # every product is there, in another order
            order = ", ".join(NAMES[right.index(label)] for label in labels)
            return (
                f"your function returns them in the order ({order}): return them as (Q, K, V), "
                "the order the unpacking `Q, K, V = project_qkv(...)` expects."
            )
        wrong = [(name, label) for name, label in zip(NAMES, labels) if label != f"X W_{name.lower()}"]
        name, label = wrong[0]
        used = label.split()[1]
        return (
            f"you used the same weight for two outputs: your {name} equals X @ {used}, "
            f"but {name} = X @ W_{name.lower()}. Each of Q, K and V has its own weight matrix: "
            "that is what makes them differ although they start from the same X."
        )
    for name, label in zip(NAMES, labels):
        if label is not None and label.endswith("ᵀ"):
            return _hint_transposed(name)
    for name, label in zip(NAMES, labels):
        if label is not None and label.startswith("W_"):
            return _hint_weight_on_the_left(name)
    return ""


def _first_problem(outputs: tuple[object, object, object], expected: tuple[Tensor, Tensor, Tensor]) -> str | None:
    for name, actual, want in zip(NAMES, outputs, expected):
        problem = describe_difference(actual, want, what=name)
        if problem is not None:
            return problem
    return None


def _passes(probe: Probe, X: Tensor, weights: tuple[Tensor, Tensor, Tensor],
            expected: tuple[Tensor, Tensor, Tensor] | None = None) -> bool:
    """Whether the candidate returns `expected` (by default the right (Q, K, V)); any failure counts as no."""
    try:
        result = probe.call(X, *weights)
        outputs = _as_triple(result, "")
    except (Failure, NotAttempted):
        return False
    if expected is None:
        expected = project_qkv(X, *weights)
    return _first_problem(outputs, expected) is None


def _hint_from_other_calls(probe: Probe, X: Tensor, weights: tuple[Tensor, Tensor, Tensor],
                           outputs: tuple[object, ...] | None) -> str:
    """Name a mistake by calling the candidate again on variations of the failing case."""
    W_q, W_k, W_v = weights
    # X @ W.T crashes on non-square weights; given Wᵀ instead of W, it computes X @ W.
    transposed = (W_q.mT.contiguous(), W_k.mT.contiguous(), W_v.mT.contiguous())
    if _passes(probe, X, transposed, expected=project_qkv(X, *weights)):
        return HINT_TRANSPOSED
    for leading in range(1, X.ndim - 1):  # fewer batch dimensions: does it work there?
        smaller = X[(0,) * leading]
        if _passes(probe, smaller, weights):
            return (
                f"your function works for X of shape {format_shape(smaller.shape)} but not "
                f"{format_shape(X.shape)}: it must work for any number of leading batch dimensions. "
                "`X @ W_q` does (matmul broadcasts over them); avoid `X.T` (it reverses every dimension), "
                "positive dimension numbers (use dim=-1, transpose(-2, -1)) and einsum strings with a fixed "
                "number of letters (write '...nd,dk->...nk')."
            )
    if outputs is not None and all(isinstance(o, Tensor) for o in outputs):
        doubled = tuple(2 * W for W in weights)
        try:
            again = _as_triple(probe.call(X, *doubled), "")
        except (Failure, NotAttempted):
            again = None
        if again is not None and all(
            isinstance(a, Tensor) and a.shape == o.shape and bool(torch.allclose(a.detach(), o.detach()))  # type: ignore[union-attr]
            for a, o in zip(again, outputs)
        ):
            return HINT_IGNORES_WEIGHTS
    return ""


def check_project_qkv(candidate: object) -> CheckResult:
    """Check `project_qkv(X, W_q, W_k, W_v) -> (Q, K, V)`: `Q = X W_q`, `K = X W_k`, `V = X W_v`.

    X `(..., n, d_model)`, W_q and W_k `(d_model, d_k)`, W_v `(d_model, d_v)`.
    """

    def body(probe: Probe) -> str:
        for seed, case in enumerate(CASES):
            X, W_q, W_k, W_v = _inputs(case, seed)
            weights = (W_q, W_k, W_v)
            expected = project_qkv(X, *weights)
            try:
                result = probe.call(X, *weights)
            except Failure as failure:  # the candidate raised: can another call tell why?
                hint = _hint_from_other_calls(probe, X, weights, None)
                raise Failure(f"On {case.description}: {failure.summary}", hint or failure.hint) from None
            outputs = _as_triple(result, case.description)
            probe.cases += 1
            problem = _first_problem(outputs, expected)
            if problem is None:
                continue
            hint = _name_the_mistake(outputs, X, weights) or _hint_from_other_calls(probe, X, weights, outputs)
            if not hint:
                wrong = next(o for o, e in zip(outputs, expected) if describe_difference(o, e) is not None)
                hint = Probe._diagnose(wrong, [], 1e-4, 1e-5)
            raise Failure(f"On {case.description}: {problem}.", hint)
        return (
            f"{probe.cases} cases, from one sentence (n, d_model) to a (2, 2, 3, 5) batch, "
            "square and non-square weights, float32 and float64."
        )

    return run_check("project_qkv", candidate, body)
