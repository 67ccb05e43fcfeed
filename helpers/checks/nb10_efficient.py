"""Checks of notebook 10: the cached attention step (KV cache) and the online-softmax update.

Both exercises return three tensors; a typical mistake is named only when all three of its
outputs match the candidate's (keepdim, which concerns one part, excepted).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from helpers.attention import causal_mask, scaled_dot_product_attention
from helpers.checks.core import Case, Mistake, check, generator, randn, unpack_or_stop
from helpers.efficient import cached_attention_step, online_softmax_update

NEG_INF = float("-inf")


def _mistakes(variant: Callable[..., object], table: list[tuple[str, dict[str, object]]]) -> list[Mistake]:
    return [Mistake(hint, lambda *args, switches=switches: variant(*args, **switches)) for hint, switches in table]


# ---- the cached attention step ---------------------------------------------------------------------------

CACHED = ("output", "k_cache", "v_cache")


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


def _step_by_step(Q: Tensor, K: Tensor, V: Tensor) -> Callable[[Callable[..., object]], Tensor]:
    """Feed a step function its own caches, one token after another; the outputs side by side."""
    def run(step: Callable[..., object]) -> Tensor:
        k_cache, v_cache, outputs = K[..., :0, :], V[..., :0, :], []
        for i in range(Q.shape[-2]):
            out, k_cache, v_cache = unpack_or_stop(step(*(t[..., i : i + 1, :] for t in (Q, K, V)), k_cache, v_cache),
                                                   CACHED)
            outputs.append(out)
        return torch.cat(outputs, dim=-2)
    return run


@check(reference=cached_attention_step, mistakes=_mistakes(_cached_variant, CACHED_MISTAKES), returns=CACHED,
       passed="{cases} cases: batched heads, float64, an empty cache, and 5 steps in a row that equal "
              "causal attention over the whole sequence.")
def check_cached_attention_step() -> Iterator[Case]:
    """Check `cached_attention_step(q, k_new, v_new, k_cache, v_cache) -> (output, k_cache, v_cache)`.

    q, k_new `(..., 1, d_k)`, v_new `(..., 1, d_v)`, caches `(..., t, d_k)` and `(..., t, d_v)`;
    the output is `(..., 1, d_v)` and the caches come back with one more position.
    """
    for seed, (name, batch, t, d_k, d_v, dtype) in enumerate([
        # Batched, with d_k != d_v and t + 1 != d_k, so that every mistake changes a shape or a value.
        ("a (2, 3)-head batch with 4 cached tokens, d_k = 5, d_v = 6", (2, 3), 4, 5, 6, torch.float32),
        ("one head of 3 sequences with 6 cached tokens, d_k = 4, d_v = 2, float64", (3,), 6, 4, 2, torch.float64),
        ("the first step: empty caches of shape (2, 2, 0, d)", (2, 2), 0, 3, 5, torch.float32),
    ]):
        g = generator(100 + seed)
        q, k_new = randn(g, *batch, 1, d_k, dtype=dtype), randn(g, *batch, 1, d_k, dtype=dtype)
        v_new = randn(g, *batch, 1, d_v, dtype=dtype)
        k_cache = randn(g, *batch, t, d_k, dtype=dtype) * 1.5
        yield Case(name, (q, k_new, v_new, k_cache, randn(g, *batch, t, d_v, dtype=dtype)))
    g = generator(110)
    Q, K, V = randn(g, 2, 2, 5, 4), randn(g, 2, 2, 5, 4), randn(g, 2, 2, 5, 3)
    yield Case("5 steps in a row, each fed the caches the previous step returned (compared with causal attention "
               "over all 5 tokens)", run=_step_by_step(Q, K, V), what="the 5 outputs side by side",
               expected=scaled_dot_product_attention(Q, K, V, causal_mask(5))[0])


# ---- the online-softmax update ---------------------------------------------------------------------------

ONLINE = ("m_new", "z_new", "acc_new")


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

KEEPDIM = Mistake("keep the reduced dimension (keepdim=True) so that the state broadcasts against the block.",
                  lambda *args: tuple(t.squeeze(-1) for t in online_softmax_update(*args)))


def _state(batch: tuple[int, ...], n_q: int, d_v: int, dtype: torch.dtype = torch.float32) -> tuple[Tensor, ...]:
    """The state before the first block: m = -inf, z = 0, acc = 0."""
    return (torch.full((*batch, n_q, 1), NEG_INF, dtype=dtype), torch.zeros(*batch, n_q, 1, dtype=dtype),
            torch.zeros(*batch, n_q, d_v, dtype=dtype))


def _block_by_block(scores: Tensor, v: Tensor, size: int) -> Callable[[Callable[..., object]], Tensor]:
    """Fold the key blocks one after another with an update function; then acc / z."""
    def run(update: Callable[..., object]) -> Tensor:
        state = _state(scores.shape[:-2], scores.shape[-2], v.shape[-1])
        for start in range(0, scores.shape[-1], size):
            state = unpack_or_stop(update(*state, scores[..., start : start + size], v[..., start : start + size, :]),
                                   ONLINE)
        return state[2] / state[1]  # type: ignore[operator]
    return run


@check(reference=online_softmax_update, returns=ONLINE,
       mistakes=[*_mistakes(_online_variant, ONLINE_MISTAKES),
                 *(Mistake(KEEPDIM.hint, KEEPDIM.wrong, part=part) for part in ONLINE[:2])],
       passed="{cases} cases: batched and float64 states, the first block, large scores, masked keys, and "
              "4 blocks in a row that give exact attention.")
def check_online_softmax_update() -> Iterator[Case]:
    """Check `online_softmax_update(m, z, acc, scores, v) -> (m_new, z_new, acc_new)`.

    m, z `(..., n_q, 1)`, acc `(..., n_q, d_v)`, scores `(..., n_q, b)` (scaled, -inf where masked),
    v `(..., b, d_v)`.
    """
    f64 = torch.float64
    # 1. Batched, after an earlier block; even query rows' maxima grow, odd rows' do not.
    g = generator(120)
    state = online_softmax_update(*_state((2, 3), 4, 6), randn(g, 2, 3, 4, 7) * 2, randn(g, 2, 3, 7, 6))
    scores = randn(g, 2, 3, 4, 5) * 2 + torch.tensor([3.0, -3.0, 3.0, -3.0]).reshape(4, 1)
    yield Case("a (2, 3)-head batch, 4 queries, a block of 5 keys, d_v = 6, after an earlier block",
               (*state, scores, randn(g, 2, 3, 5, 6)))
    # 2. Unbatched, float64.
    g = generator(121)
    state = online_softmax_update(*_state((), 5, 3, f64), randn(g, 5, 4, dtype=f64), randn(g, 4, 3, dtype=f64))
    yield Case("one head: 5 queries, a block of 4 keys, d_v = 3, float64, after an earlier block",
               (*state, randn(g, 5, 4, dtype=f64) * 3, randn(g, 4, 3, dtype=f64)))
    # 3. The very first block.
    g = generator(122)
    yield Case("the first block (m = -inf, z = 0, acc = 0): 2 sequences, 3 queries, 4 keys, d_v = 2",
               (*_state((2,), 3, 2), randn(g, 2, 3, 4), randn(g, 2, 4, 2)))
    # 4. Large scores: exp without subtracting the maximum overflows in float32.
    g = generator(123)
    state = online_softmax_update(*_state((2,), 3, 4), 300 + randn(g, 2, 3, 6), randn(g, 2, 6, 4))
    yield Case("large scores (around 300, where exp overflows in float32)",
               (*state, 301 + randn(g, 2, 3, 5), randn(g, 2, 5, 4)),
               hint="exp of large scores overflows: subtract the running maximum first, exp(scores - m_new).")
    # 5. Masked keys (-inf): row 1 has none allowed in this block, row 2 none so far at all, row 3 its first.
    g = generator(124)
    m, z, acc = (t.clone() for t in online_softmax_update(*_state((), 4, 3), randn(g, 4, 3), randn(g, 3, 3)))
    m[2:], z[2:], acc[2:] = NEG_INF, 0.0, 0.0
    scores = randn(g, 4, 5)
    scores[0, 1] = scores[0, 3] = NEG_INF
    scores[1] = scores[2] = NEG_INF
    yield Case("masked keys (-inf): a row with no allowed key in this block, one with none so far at all",
               (m, z, acc, scores, randn(g, 5, 3)))
    # Fold 4 blocks one after another with the candidate; acc / z is exact attention.
    g = generator(130)
    q, k, v = randn(g, 2, 6, 4), randn(g, 2, 13, 4), randn(g, 2, 13, 3)
    yield Case("4 blocks of keys folded one after another (13 keys), then acc / z, compared with exact attention",
               run=_block_by_block((q @ k.transpose(-2, -1)) / 2.0, v, 4), what="acc / z",
               expected=scaled_dot_product_attention(q, k, v)[0])
