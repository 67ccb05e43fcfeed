"""Checks for notebook 10: the cached attention step (KV cache) and the online-softmax update.

Both exercises return three tensors, so the comparison is done component by component, and a
typical mistake is named only when all three of its outputs match the candidate's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor

from helpers.attention import causal_mask, scaled_dot_product_attention
from helpers.checks.core import CheckResult, Failure, Probe, describe_difference, run_check
from helpers.efficient import cached_attention_step, online_softmax_update

NEG_INF = float("-inf")

Mistakes = Sequence[tuple[str, Callable[[], object]]]


def _expect_triple(
    probe: Probe,
    actual: object,
    expected: tuple[Tensor, Tensor, Tensor],
    names: tuple[str, str, str],
    case: str,
    mistakes: Mistakes = (),
    fallback: Callable[[tuple], str] | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """Like `Probe.expect_close`, for a function that returns three tensors."""
    probe.cases += 1
    what = f"a tuple of three tensors ({', '.join(names)})"
    if isinstance(actual, Tensor):
        raise Failure(f"On {case}: your function returned one tensor of shape {tuple(actual.shape)}, expected {what}.",
                      f"return all three: `return {', '.join(names)}`.")
    if not isinstance(actual, (tuple, list)) or len(actual) != 3:
        got = f"a {type(actual).__name__} of length {len(actual)}" if isinstance(actual, (tuple, list)) \
            else f"a {type(actual).__name__}"
        raise Failure(f"On {case}: your function returned {got}, expected {what}.",
                      f"return all three: `return {', '.join(names)}`.")
    problem = None
    for got, want, name in zip(actual, expected, names):
        problem = describe_difference(got, want, rtol, atol, what=name)
        if problem is not None:
            if isinstance(got, Tensor) and tuple(got.shape) == tuple(want.shape[:-1]) and want.shape[-1] == 1:
                raise Failure(f"On {case}: {problem}.",
                              "keep the reduced dimension (keepdim=True) so that the state broadcasts against "
                              "the block.")
            break
    if problem is None:
        return
    for hint, wrong_answer in mistakes:
        try:
            wrong = wrong_answer()
        except Exception:  # that mistake cannot even run on this case: not this one
            continue
        if all(describe_difference(got, w, rtol, atol) is None for got, w in zip(actual, wrong)):
            raise Failure(f"On {case}: {problem}.", hint)
    hint = fallback(tuple(actual)) if fallback is not None else ""
    if not hint and any(isinstance(got, Tensor) and got.is_floating_point()
                        and not bool(torch.isfinite(got.detach().cpu().double()).all())
                        for got in actual):
        hint = "NaN or inf usually comes from dividing by zero, log of zero, or exp of a huge number."
    raise Failure(f"On {case}: {problem}.", hint)


# ---- the cached attention step ---------------------------------------------------------------------------


def _cached_variant(q: Tensor, k_new: Tensor, v_new: Tensor, k_cache: Tensor, v_cache: Tensor, *,
                    append: bool = True, include_new: bool = True, only_new: bool = False, scale: str = "sqrt_dk",
                    prepend: bool = False, softmax_dim: int = -1) -> tuple[Tensor, Tensor, Tensor]:
    """The cached attention step with switches that reproduce the typical mistakes."""
    k_all = torch.cat([k_new, k_cache] if prepend else [k_cache, k_new], dim=-2)
    v_all = torch.cat([v_new, v_cache] if prepend else [v_cache, v_new], dim=-2)
    if only_new:
        keys, values = k_new, v_new
    elif include_new:
        keys, values = k_all, v_all
    else:
        keys, values = k_cache, v_cache
    scores = q @ keys.transpose(-2, -1)
    divisor = {"sqrt_dk": math.sqrt(q.shape[-1]), "none": 1.0, "dk": float(q.shape[-1]),
               "sqrt_dv": math.sqrt(v_new.shape[-1]), "sqrt_t": math.sqrt(keys.shape[-2])}[scale]
    weights = torch.softmax(scores / divisor, dim=softmax_dim)
    if append:
        return weights @ values, k_all, v_all
    return weights @ values, k_cache, v_cache


CACHED_MISTAKES: list[tuple[str, dict[str, object]]] = [
    ("the caches you return lack the new token: return torch.cat([k_cache, k_new], dim=-2) (and the same for v), "
     "or the next step forgets this token.", dict(append=False)),
    ("the new token must attend to itself too: append k_new and v_new to the caches first, then attend over all "
     "t + 1 positions.", dict(include_new=False)),
    ("you attended to the old cache only and did not extend it: concatenate the new key and value onto the caches "
     "(dim=-2), then attend over all t + 1 positions.", dict(include_new=False, append=False)),
    ("you attended only to the newest token (its weight is then 1 and the output is just v_new): the query must "
     "attend to every cached key as well as its own.", dict(only_new=True)),
    ("you attended only to the newest token and did not extend the caches.", dict(only_new=True, append=False)),
    ("the scores are not scaled: divide q Kᵀ by √d_k before the softmax.", dict(scale="none")),
    ("divide the scores by √d_k, not by d_k.", dict(scale="dk")),
    ("d_k is the width of the queries and keys (q.shape[-1]), not of the values.", dict(scale="sqrt_dv")),
    ("scale by √d_k (the width of a key), not by the square root of the number of keys.", dict(scale="sqrt_t")),
    ("append the new key and value at the END of the caches (torch.cat([k_cache, k_new], dim=-2)): the cache is "
     "kept in position order.", dict(prepend=True)),
    ("take the softmax over the keys (dim=-1): with one query, a softmax over dim=-2 gives every key weight 1.",
     dict(softmax_dim=-2)),
]


def check_cached_attention_step(candidate: object) -> CheckResult:
    """Check `cached_attention_step(q, k_new, v_new, k_cache, v_cache) -> (output, k_cache, v_cache)`.

    q, k_new `(..., 1, d_k)`, v_new `(..., 1, d_v)`, caches `(..., t, d_k)` and `(..., t, d_v)`;
    the output is `(..., 1, d_v)` and the caches come back with one more position.
    """
    names = ("output", "k_cache", "v_cache")

    def body(probe: Probe) -> str:
        cases = [
            # Batched, with d_k != d_v and t + 1 != d_k, so that every mistake changes a shape or a value.
            ("a (2, 3)-head batch with 4 cached tokens, d_k = 5, d_v = 6", (2, 3), 4, 5, 6, torch.float32),
            ("one head of 3 sequences with 6 cached tokens, d_k = 4, d_v = 2, float64", (3,), 6, 4, 2,
             torch.float64),
            ("the first step: empty caches of shape (2, 2, 0, d)", (2, 2), 0, 3, 5, torch.float32),
        ]
        for seed, (case, batch, t, d_k, d_v, dtype) in enumerate(cases):
            g = torch.Generator().manual_seed(100 + seed)
            q = torch.randn(*batch, 1, d_k, generator=g, dtype=dtype)
            k_new = torch.randn(*batch, 1, d_k, generator=g, dtype=dtype)
            v_new = torch.randn(*batch, 1, d_v, generator=g, dtype=dtype)
            k_cache = torch.randn(*batch, t, d_k, generator=g, dtype=dtype) * 1.5
            v_cache = torch.randn(*batch, t, d_v, generator=g, dtype=dtype)
            args = (q, k_new, v_new, k_cache, v_cache)
            expected = cached_attention_step(*args)
            mistakes = [(hint, partial(_cached_variant, *args, **switches)) for hint, switches in CACHED_MISTAKES]
            _expect_triple(probe, probe.call(*args), expected, names, case, mistakes)

        # Feed the candidate its own caches for 5 steps: the outputs are causal attention over the sequence.
        g = torch.Generator().manual_seed(110)
        steps, d_k, d_v = 5, 4, 3
        Q = torch.randn(2, 2, steps, d_k, generator=g)
        K = torch.randn(2, 2, steps, d_k, generator=g)
        V = torch.randn(2, 2, steps, d_v, generator=g)
        k_cache, v_cache = K[..., :0, :], V[..., :0, :]
        outputs = []
        for i in range(steps):
            result = probe.call(Q[..., i : i + 1, :], K[..., i : i + 1, :], V[..., i : i + 1, :], k_cache, v_cache)
            if not isinstance(result, (tuple, list)) or len(result) != 3:
                raise Failure("In 5 steps in a row, your function did not return (output, k_cache, v_cache).")
            out, k_cache, v_cache = result
            outputs.append(out)
        try:
            decoded = torch.cat(outputs, dim=-2)
        except (RuntimeError, TypeError):
            decoded = outputs[0]
        expected = scaled_dot_product_attention(Q, K, V, causal_mask(steps))[0]
        probe.expect_close(decoded, expected, "5 steps in a row, each fed the caches the previous step returned "
                           "(compared with causal attention over all 5 tokens)",
                           what="the 5 outputs side by side")
        return (f"{probe.cases} cases: batched heads, float64, an empty cache, and 5 steps in a row that equal "
                "causal attention over the whole sequence.")

    return run_check("cached_attention_step", candidate, body)


# ---- the online-softmax update ---------------------------------------------------------------------------


def _online_variant(m: Tensor, z: Tensor, acc: Tensor, scores: Tensor, v: Tensor, *, rescale_z: bool = True,
                    rescale_acc: bool = True, block_max: bool = False, flip: bool = False, normalise: bool = False,
                    no_max: bool = False, guard: bool = True, sum_dim: int = -1) -> tuple[Tensor, Tensor, Tensor]:
    """The online-softmax update with switches that reproduce the typical mistakes."""
    block = scores.amax(dim=-1, keepdim=True)
    m_new = block if block_max else torch.maximum(m, block)
    reference = m_new.masked_fill(m_new == NEG_INF, 0.0) if guard else m_new
    if no_max:
        p = torch.exp(scores)
        rescale = torch.ones_like(m)
    else:
        p = torch.exp(scores - reference)
        rescale = torch.exp(reference - m) if flip else torch.exp(m - reference)
    z_new = (z * rescale if rescale_z else z) + p.sum(dim=sum_dim, keepdim=True)
    acc_new = (acc * rescale if rescale_acc else acc) + p @ v
    if normalise:
        acc_new = acc_new / z_new
    return m_new, z_new, acc_new


ONLINE_MISTAKES: list[tuple[str, dict[str, object]]] = [
    ("you did not rescale the old state: when the maximum grows from m to m_new, multiply both the running sum z "
     "and the accumulator acc by exp(m - m_new) before adding the block's terms.",
     dict(rescale_z=False, rescale_acc=False)),
    ("you rescaled the running sum z but not the accumulator: acc must be multiplied by exp(m - m_new) too.",
     dict(rescale_acc=False)),
    ("you rescaled the accumulator but not the running sum: z must be multiplied by exp(m - m_new) too.",
     dict(rescale_z=False)),
    ("you used the block's maximum instead of the running maximum: m_new = torch.maximum(m, "
     "scores.amax(dim=-1, keepdim=True)), the largest score seen in ANY block so far.", dict(block_max=True)),
    ("you used the block's maximum instead of the running maximum, and did not rescale the old state: m_new is "
     "the max over all blocks so far, and z, acc are multiplied by exp(m - m_new).",
     dict(block_max=True, rescale_z=False, rescale_acc=False)),
    ("the rescaling factor is upside down: it is exp(m - m_new) (at most 1), not exp(m_new - m).", dict(flip=True)),
    ("you divided the accumulator by z inside the update: keep acc unnormalised and divide acc / z once, "
     "after the last block.", dict(normalise=True)),
    ("you did not subtract the maximum before exp: use exp(scores - m_new), or large scores overflow to inf.",
     dict(no_max=True)),
    ("sum the block's exponentials over the keys (dim=-1, keepdim=True), one sum per query.", dict(sum_dim=-2)),
    ("a row whose keys are all masked so far has m_new = -inf, and exp(-inf - (-inf)) is NaN: subtract 0 instead "
     "where m_new is -inf (e.g. m_new.masked_fill(m_new == float('-inf'), 0.0)).", dict(guard=False)),
]


def _state(batch: tuple[int, ...], n_q: int, d_v: int, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """The state before the first block: m = -inf, z = 0, acc = 0."""
    return (torch.full((*batch, n_q, 1), NEG_INF, dtype=dtype), torch.zeros(*batch, n_q, 1, dtype=dtype),
            torch.zeros(*batch, n_q, d_v, dtype=dtype))


def _online_cases() -> list[tuple[str, tuple[Tensor, ...]]]:
    cases = []
    # 1. Batched, after an earlier block; even query rows' maxima grow, odd rows' do not.
    g = torch.Generator().manual_seed(120)
    batch, n_q, b, d_v = (2, 3), 4, 5, 6
    state = _state(batch, n_q, d_v, torch.float32)
    state = online_softmax_update(*state, torch.randn(*batch, n_q, 7, generator=g) * 2,
                                  torch.randn(*batch, 7, d_v, generator=g))
    shift = torch.tensor([3.0, -3.0, 3.0, -3.0]).reshape(n_q, 1)
    scores = torch.randn(*batch, n_q, b, generator=g) * 2 + shift
    cases.append(("a (2, 3)-head batch, 4 queries, a block of 5 keys, d_v = 6, after an earlier block",
                  (*state, scores, torch.randn(*batch, b, d_v, generator=g))))
    # 2. Unbatched, float64.
    g = torch.Generator().manual_seed(121)
    state = online_softmax_update(*_state((), 5, 3, torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64),
                                  torch.randn(4, 3, generator=g, dtype=torch.float64))
    scores = torch.randn(5, 4, generator=g, dtype=torch.float64) * 3
    cases.append(("one head: 5 queries, a block of 4 keys, d_v = 3, float64, after an earlier block",
                  (*state, scores, torch.randn(4, 3, generator=g, dtype=torch.float64))))
    # 3. The very first block.
    g = torch.Generator().manual_seed(122)
    cases.append(("the first block (m = -inf, z = 0, acc = 0): 2 sequences, 3 queries, 4 keys, d_v = 2",
                  (*_state((2,), 3, 2, torch.float32), torch.randn(2, 3, 4, generator=g),
                   torch.randn(2, 4, 2, generator=g))))
    # 4. Large scores: exp without subtracting the maximum overflows in float32.
    g = torch.Generator().manual_seed(123)
    state = online_softmax_update(*_state((2,), 3, 4, torch.float32), 300 + torch.randn(2, 3, 6, generator=g),
                                  torch.randn(2, 6, 4, generator=g))
    cases.append(("large scores (around 300, where exp overflows in float32)",
                  (*state, 301 + torch.randn(2, 3, 5, generator=g), torch.randn(2, 5, 4, generator=g))))
    # 5. Masked keys (-inf): row 1 has none allowed in this block, row 2 none so far at all, row 3 its first.
    g = torch.Generator().manual_seed(124)
    m, z, acc = online_softmax_update(*_state((), 4, 3, torch.float32), torch.randn(4, 3, generator=g),
                                      torch.randn(3, 3, generator=g))
    m, z, acc = m.clone(), z.clone(), acc.clone()
    m[2:], z[2:], acc[2:] = NEG_INF, 0.0, 0.0
    scores = torch.randn(4, 5, generator=g)
    scores[0, 1] = scores[0, 3] = NEG_INF
    scores[1] = scores[2] = NEG_INF
    cases.append(("masked keys (-inf): a row with no allowed key in this block, one with none so far at all",
                  (m, z, acc, scores, torch.randn(5, 3, generator=g))))
    return cases


def _overflow_hint(actual: tuple) -> str:
    if any(isinstance(x, Tensor) and bool(torch.isinf(x.detach().cpu().double()).any()) for x in actual):
        return "exp of large scores overflows: subtract the running maximum first, exp(scores - m_new)."
    return ""


def check_online_softmax_update(candidate: object) -> CheckResult:
    """Check `online_softmax_update(m, z, acc, scores, v) -> (m_new, z_new, acc_new)`.

    m, z `(..., n_q, 1)`, acc `(..., n_q, d_v)`, scores `(..., n_q, b)` (scaled, -inf where masked),
    v `(..., b, d_v)`.
    """
    names = ("m_new", "z_new", "acc_new")

    def body(probe: Probe) -> str:
        for case, args in _online_cases():
            expected = online_softmax_update(*args)
            mistakes = [(hint, partial(_online_variant, *args, **switches)) for hint, switches in ONLINE_MISTAKES]
            _expect_triple(probe, probe.call(*args), expected, names, case, mistakes, fallback=_overflow_hint)

        # Fold 4 blocks one after another with the candidate; acc / z is exact attention.
        g = torch.Generator().manual_seed(130)
        q, k = torch.randn(2, 6, 4, generator=g), torch.randn(2, 13, 4, generator=g)
        v = torch.randn(2, 13, 3, generator=g)
        scores = (q @ k.transpose(-2, -1)) / 2.0
        state: tuple = _state((2,), 6, 3, torch.float32)
        for start in range(0, 13, 4):
            state = probe.call(*state, scores[..., start : start + 4], v[..., start : start + 4, :])
            if not isinstance(state, (tuple, list)) or len(state) != 3:
                raise Failure("Folding 4 blocks in a row, your function did not return (m_new, z_new, acc_new).")
        try:
            output = state[2] / state[1]
        except (RuntimeError, TypeError):
            output = state[2]
        expected = scaled_dot_product_attention(q, k, v)[0]
        probe.expect_close(output, expected, "4 blocks of keys folded one after another (13 keys), then acc / z, "
                           "compared with exact attention", what="acc / z")
        return (f"{probe.cases} cases: batched and float64 states, the first block, large scores, masked keys, and "
                "4 blocks in a row that give exact attention.")

    return run_check("online_softmax_update", candidate, body)
