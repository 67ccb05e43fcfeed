"""Checks of notebook 10: the cached attention step (KV cache), the online-softmax update, chunked attention.

The first two exercises return three tensors; a typical mistake is named only when all three of its
outputs match the candidate's (keepdim, which concerns one part, excepted).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from helpers.attention import causal_mask, scaled_dot_product_attention
from helpers.checks.core import Case, Clue, Mistake, Term, check, generator, randn, unpack_or_stop
from helpers.efficient import cached_attention_step, chunked_attention, online_softmax_update

NEG_INF = float("-inf")

#: The telling pieces of the solutions' code: no Hint 1 or 2 and no ❌ hint may contain one.
SOLUTION_FRAGMENTS: dict[str, list[str]] = {
    "cached_attention_step": ["torch.cat([k_cache, k_new]", "torch.cat([v_cache, v_new]",
                              "k_cache.transpose(-2, -1)", "weights @ v_cache", "math.sqrt(q.shape[-1])",
                              ".transpose(-2, -1)", "], dim=-2)"],
    "online_softmax_update": ["torch.maximum(m, scores", "m_new.masked_fill(m_new ==",
                              "torch.exp(scores - reference)", "torch.exp(m - reference)", "z * rescale",
                              "acc * rescale", "p.sum(dim=-1, keepdim=True)"],
    "chunked_attention": ["range(0, k.shape[-2], block_size)", "slice(start, start + block_size)",
                          "masked_fill(~mask", "online_softmax_update(m, z, acc", "return acc / z",
                          "q / math.sqrt(q.shape[-1])"],
}


# ---- shared: the same case with fewer or more leading dimensions, or in float32 ------------------------------

def _tensors(case: Case, change: Callable[[Tensor], Tensor]) -> tuple[object, ...]:
    return tuple(change(a) if isinstance(a, Tensor) else a for a in case.args)


def _no_batch(case: Case, got: object) -> Iterator[Case]:
    """Where the case has no batch dimension: the same case with one (a batch of 1)."""
    if case.args and isinstance(case.args[0], Tensor) and case.args[0].ndim == 2 and not case.kwargs:
        kwargs = {"expected": case.expected[None]} if isinstance(case.expected, Tensor) else {}
        yield Case("the same with a batch of 1", _tensors(case, lambda t: t[None]), **kwargs)


NO_BATCH = Clue("your function handles batched inputs but not inputs with no batch dimension (2-D): count "
                "dimensions from the end (dim=-1, dim=-2), so that any number of leading dimensions, including "
                "none, passes through.", _no_batch)


def _fewer(case: Case, got: object) -> Iterator[Case]:
    """Where the case has batch and heads (4-D): the same without its first dimension."""
    if case.args and isinstance(case.args[0], Tensor) and case.args[0].ndim == 4 and not case.kwargs \
            and case.run is None:
        yield Case("the same without the heads", _tensors(case, lambda t: t[0] if t.ndim == 4 else t))


FIXED_DIMS = Clue("your function is right for 3-D inputs but not for 4-D ones (batch and heads): it counts "
                  "dimensions from the front. Count dimensions from the end (dim=-2 is always the token "
                  "dimension).", _fewer)


def _in_float32(case: Case, got: object) -> Iterator[Case]:
    if any(isinstance(a, Tensor) and a.dtype == torch.float64 for a in case.args):
        expected = case.expected
        yield Case("the same inputs in float32", _tensors(case, lambda t: t.float() if t.is_floating_point() else t),
                   case.kwargs, **({"expected": expected.float()} if isinstance(expected, Tensor) else {}))


FLOAT64 = Clue("your function is right in float32 but not on float64 inputs: compute in the inputs' dtype "
               "(no .float(), and no new tensor made without dtype=...).", _in_float32)


def _float32_only(f: Callable[..., object]) -> Callable[..., object]:
    """`f` that converts one argument to float32 first: it breaks (a dtype mismatch) on float64 inputs only."""
    return lambda first, *rest, **kwargs: f(first.float(), *rest, **kwargs)


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
    ("the caches you return lack the new token: return them with k_new and v_new appended along the token "
     "dimension, or the next step forgets this token.", dict(append=False)),
    ("the new token must attend to itself too: append k_new and v_new to the caches first, then attend over all "
     "t + 1 positions.", dict(include_new=False)),
    ("you attended to the old cache only and did not extend it: concatenate the new key and value onto the caches "
     "(dim=-2), then attend over all t + 1 positions.", dict(include_new=False, append=False)),
    ("you attended only to the newest token (its weight is then 1 and the output is just v_new): the query must "
     "attend to every cached key as well as its own.", dict(only_new=True)),
    ("you attended only to the newest token and did not extend the caches.", dict(only_new=True, append=False)),
    ("the scores are not scaled: divide q Kᵀ by √d_k before the softmax.", dict(scale="none")),
    ("divide the scores by √d_k, not by d_k.", dict(scale="dk")),
    ("d_k is the width of the queries and keys, not of the values.", dict(scale="sqrt_dv")),
    ("scale by √d_k (the width of a key), not by the square root of the number of keys.", dict(scale="sqrt_t")),
    ("append the new key and value at the END of the caches, after the old ones: the cache is kept in position "
     "order.", dict(prepend=True)),
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


def _cached_only(where: Callable[..., bool], wrong: Callable[..., object]) -> Callable[..., object]:
    """A cached step right everywhere except where `where(q, k_new, v_new, k_cache, v_cache)` holds (contract tests)."""
    return lambda *args: wrong(*args) if where(*args) else cached_attention_step(*args)


def _cat_dim_1(q: Tensor, k_new: Tensor, v_new: Tensor, k_cache: Tensor, v_cache: Tensor) -> tuple[Tensor, ...]:
    """Appends along dim=1, the token dimension of a (B, t, d) cache only."""
    k_all, v_all = torch.cat([k_cache, k_new], dim=1), torch.cat([v_cache, v_new], dim=1)
    weights = torch.softmax(q @ k_all.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v_all, k_all, v_all


CACHED_CONTRACT = [
    Term("an empty cache, t = 0 (the first step)", "empty caches",
         _cached_only(lambda q, kn, vn, kc, vc: kc.shape[-2] == 0,
                      lambda *args: _cached_variant(*args, include_new=False)), "attend to itself"),
    Term("no batch dimension: q (1, d_k), caches (t, d)", "no batch dimension",
         _cached_only(lambda q, *rest: q.ndim == 2, _cat_dim_1), "no batch dimension"),
    Term("batch and heads: q (B, h, 1, d_k)", "-head batch",
         _cached_only(lambda q, *rest: q.ndim == 4, _cat_dim_1), "counts dimensions from the front"),
    Term("d_k ≠ d_v", "d_v =", lambda *args: _cached_variant(*args, scale="sqrt_dv"), "not of the values"),
    Term("float64 inputs", "float64",
         _cached_only(lambda q, *rest: q.dtype == torch.float64, _float32_only(cached_attention_step)),
         "not on float64"),
]


@check(reference=cached_attention_step, mistakes=_mistakes(_cached_variant, CACHED_MISTAKES), returns=CACHED,
       clues=[NO_BATCH, FIXED_DIMS, FLOAT64], contract=CACHED_CONTRACT,
       passed="{cases} generated cases: batched heads, no batch, float64, an empty cache, and 5 steps in a row "
              "that equal causal attention over the whole sequence.")
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
        ("no batch dimension: q (1, 4), caches of 3 tokens, d_k = 4, d_v = 3", (), 3, 4, 3, torch.float32),
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
    ("you used the block's maximum instead of the running maximum: m_new is the larger of m and the block's "
     "largest score, the largest score seen in ANY block so far.", dict(block_max=True)),
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
     "of m_new where m_new is -inf.", dict(guard=False)),
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


def _online_only(where: Callable[..., bool], wrong: Callable[..., object]) -> Callable[..., object]:
    """An update right everywhere except where `where(m, z, acc, scores, v)` holds (contract tests)."""
    return lambda *args: wrong(*args) if where(*args) else online_softmax_update(*args)


def _forgets_the_first_block(m: Tensor, z: Tensor, acc: Tensor, scores: Tensor, v: Tensor) -> tuple[Tensor, ...]:
    """Keeps z = 0 and acc = 0 when the state is empty: only the maximum moves."""
    return torch.maximum(m, scores.amax(dim=-1, keepdim=True)), z, acc


ONLINE_CONTRACT = [
    Term("the first block: m = -inf, z = 0, acc = 0 everywhere", "the first block",
         _online_only(lambda m, *rest: bool((m == NEG_INF).all()), _forgets_the_first_block), "empty state"),
    Term("masked keys (-inf scores), a row with no allowed key so far", "masked keys",
         lambda *args: _online_variant(*args, guard=False), "exp(-inf - (-inf)) is nan"),
    Term("a block that raises the running maximum of some rows and not of others", "after an earlier block",
         lambda *args: _online_variant(*args, rescale_z=False, rescale_acc=False), "did not rescale"),
    Term("large scores (exp overflows in float32)", "large scores",
         _online_only(lambda m, z, acc, scores, v: bool(scores.amax() > 80),
                      lambda *args: _online_variant(*args, no_max=True)), "subtract the maximum"),
    Term("no batch dimension: m, z (n_q, 1), scores (n_q, b)", "one head",
         _online_only(lambda m, *rest: m.ndim == 2,
                      lambda m, z, acc, s, v: online_softmax_update(m, z, acc, s, v.unsqueeze(0))),
         "no batch dimension"),
    Term("float64 state and inputs", "float64",
         _online_only(lambda m, *rest: m.dtype == torch.float64,
                      lambda m, z, acc, s, v: online_softmax_update(m, z, acc, s, v.float())),
         "not on float64"),
]


@check(reference=online_softmax_update, returns=ONLINE, clues=[NO_BATCH, FLOAT64], contract=ONLINE_CONTRACT,
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
               (*_state((2,), 3, 2), randn(g, 2, 3, 4), randn(g, 2, 4, 2)),
               hint="the update must start from the empty state (m = -inf, z = 0, acc = 0): the first block's "
                    "exponentials and their weighted values are then the whole of z and acc.")
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


# ---- chunked attention -----------------------------------------------------------------------------------


def _reference_chunked(q: Tensor, k: Tensor, v: Tensor, block_size: int, mask: Tensor | None = None) -> Tensor:
    """`helpers.efficient.chunked_attention` with the exercise's argument order."""
    return chunked_attention(q, k, v, mask, block_size)


def _chunked_variant(q: Tensor, k: Tensor, v: Tensor, block_size: int, mask: Tensor | None = None, *,
                     rescale_z: bool = True, rescale_acc: bool = True, carry_max: bool = True,
                     divide: bool = True, blocks: str = "all", scale: bool = True) -> Tensor:
    """Chunked attention with switches that reproduce the typical mistakes (its own loop, not the reference's)."""
    n_k = k.shape[-2]
    if scale:
        q = q / math.sqrt(q.shape[-1])
    stops = {"all": n_k, "floor": n_k - n_k % block_size, "one_less": n_k - block_size}[blocks]
    m = z = acc = None
    for start in range(0, max(stops, 0), block_size):
        stop = min(start + block_size, n_k)
        scores = q @ k[..., start:stop, :].transpose(-2, -1)
        if mask is not None:
            scores = scores.masked_fill(~mask[..., start:stop], NEG_INF)
        block_max = scores.amax(dim=-1, keepdim=True)
        if m is None:  # the first block
            m = block_max
            p = torch.exp(scores - m)
            z, acc = p.sum(dim=-1, keepdim=True), p @ v[..., start:stop, :]
            continue
        m_new = torch.maximum(m, block_max) if carry_max else block_max
        rescale, p = torch.exp(m - m_new), torch.exp(scores - m_new)
        z = (z * rescale if rescale_z else z) + p.sum(dim=-1, keepdim=True)
        acc = (acc * rescale if rescale_acc else acc) + p @ v[..., start:stop, :]
        m = m_new
    if acc is None:
        return torch.zeros((*q.shape[:-1], v.shape[-1]), dtype=q.dtype)
    return acc / z if divide else acc


CHUNKED_MISTAKES: list[tuple[str, dict[str, object]]] = [
    ("the last keys are missing: when block_size does not divide n_k, the last block is shorter, and your loop "
     "stops before it. Let the loop start a block at every multiple of block_size below n_k, and cut the last "
     "one off at n_k.", dict(blocks="floor")),
    ("your loop stops one block early: the last block (full or not) is never folded in. A block starts at every "
     "multiple of block_size below n_k, up to and including the last one.", dict(blocks="one_less")),
    ("you did not rescale the running sum and the accumulator: when a block raises the maximum, the old state "
     "was relative to the old maximum and must shrink by exp(m - m_new) before the block is added. "
     "(online_softmax_update does this for you.)", dict(rescale_z=False, rescale_acc=False)),
    ("you did not rescale the running sum z when the maximum grew (the accumulator you did): both are relative "
     "to the old maximum. (online_softmax_update does this for you.)", dict(rescale_z=False)),
    ("you did not rescale the accumulator when the maximum grew (the running sum you did): both are relative to "
     "the old maximum. (online_softmax_update does this for you.)", dict(rescale_acc=False)),
    ("you returned the unnormalised accumulator: divide it by the running normaliser z once, after the last "
     "block.", dict(divide=False)),
    ("you took each block's own maximum and did not carry the running maximum from block to block: when the "
     "scores fall, exp(m - m_new) then overflows. The maximum to subtract is the largest score seen in any "
     "block so far. (online_softmax_update keeps it for you.)", dict(carry_max=False)),
    ("the scores are not scaled: scale the queries (or each block's scores) by 1/√d_k first.", dict(scale=False)),
]


def _falling_scores(g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Scores near +100 in the first block of 4 keys, -100 in the second, 0 in the third (float32)."""
    q = torch.full((2, 3, 4), 10.0) + 0.1 * randn(g, 2, 3, 4)
    offsets = torch.tensor([5.0] * 4 + [-5.0] * 4 + [0.0] * 4).reshape(12, 1)
    k = 0.1 * randn(g, 2, 12, 4) + offsets  # q · k / √4 ≈ 20 · offset
    return q, k, randn(g, 2, 12, 3)


def _sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """torch's own attention, the answer every case is compared with."""
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _with_a_mask_of_ones(case: Case, got: object) -> Iterator[Case]:
    """Where the case has no mask: the same case with a mask that allows every key."""
    if "mask" not in case.kwargs and len(case.args) == 4:
        q, k = case.args[0], case.args[1]
        yield Case("the same with a mask of ones", case.args,  # type: ignore[arg-type]
                   {"mask": torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool)}, expected=case.expected)


MASK_OPTIONAL = Clue("your function needs a mask, but the mask is optional: with mask=None (the default) every key "
                     "may be attended to, so skip the masking step.", _with_a_mask_of_ones)


def _chunked_only(where: Callable[..., bool], wrong: Callable[..., object]) -> Callable[..., object]:
    """Chunked attention right everywhere except where `where(q, k, v, block_size, mask)` holds (contract tests)."""
    def run(q: Tensor, k: Tensor, v: Tensor, block_size: int, mask: Tensor | None = None) -> Tensor:
        if where(q, k, v, block_size, mask):
            return wrong(q, k, v, block_size, mask)  # type: ignore[return-value]
        return _reference_chunked(q, k, v, block_size, mask)
    return run


def _ignores_mask(q: Tensor, k: Tensor, v: Tensor, block_size: int, mask: Tensor | None = None) -> Tensor:
    return _reference_chunked(q, k, v, block_size)


def _indexes_mask(q: Tensor, k: Tensor, v: Tensor, block_size: int, mask: Tensor | None = None) -> Tensor:
    """Slices the mask without asking whether there is one: right with a mask, a TypeError without."""
    mask[..., :]  # type: ignore[index]
    return _reference_chunked(q, k, v, block_size, mask)


CHUNKED_CONTRACT = [
    Term("mask=None (the default): every key may be attended to", "no mask", _indexes_mask, "mask is optional"),
    Term("a causal mask of shape (n_q, n_k), broadcast over batch and heads", "a causal mask",
         _chunked_only(lambda *a: a[4] is not None and a[4].ndim == 2, _ignores_mask), "causal mask"),
    Term("a padding mask (B, 1, 1, n_k), padding at the end of a row", "padding at the end",
         _chunked_only(lambda *a: a[4] is not None and a[4].shape[-2] == 1, _ignores_mask), "padding mask"),
    Term("padding at the start of a row: the first key block fully masked", "padding at the start",
         _chunked_variant, "fully masked"),
    Term("a full mask (B, h, n_q, n_k): causal and padding together", "causal and padding",
         _chunked_only(lambda *a: a[4] is not None and a[4].ndim == 4 and a[4].shape[-2] > 1, _ignores_mask),
         "causal and padding"),
    Term("block_size that does not divide n_k: a shorter last block", "the last block holds",
         lambda *a, **kw: _chunked_variant(*a, **kw, blocks="floor"), "the last keys are missing"),
    Term("block_size ≥ n_k: one block, shorter than block_size", "a single, shorter block",
         _chunked_only(lambda q, k, v, b, mask: b > k.shape[-2],
                       lambda *a: _chunked_variant(*a, blocks="floor")), "the last keys are missing"),
    Term("scores that fall from block to block", "fall from block to block",
         lambda *a, **kw: _chunked_variant(*a, **kw, carry_max=False), "did not carry the running maximum"),
    Term("no batch dimension: q (n_q, d_k)", "one head, no batch",
         _chunked_only(lambda q, *rest: q.ndim == 2, lambda q, k, v, b, mask: _reference_chunked(q, k, v[None], b)),
         "no batch dimension"),
    Term("float64 inputs", "float64",
         _chunked_only(lambda q, *rest: q.dtype == torch.float64,
                       lambda q, k, v, b, mask: _reference_chunked(q.float(), k, v, b, mask)), "not on float64"),
]


def _padding(g: torch.Generator, lengths: tuple[int, int], n_k: int, at_start: bool) -> Tensor:
    """A (B, 1, 1, n_k) padding mask, True = a real token: row b has `lengths[b]` real tokens, padded at one end."""
    real = torch.arange(n_k) >= n_k - torch.tensor(lengths)[:, None] if at_start \
        else torch.arange(n_k) < torch.tensor(lengths)[:, None]
    return real[:, None, None, :]


@check(reference=_reference_chunked, mistakes=_mistakes(_chunked_variant, CHUNKED_MISTAKES),
       clues=[MASK_OPTIONAL, NO_BATCH, FLOAT64], contract=CHUNKED_CONTRACT,
       passed="{cases} generated cases: batched heads and no batch, a ragged last block, block_size 1 and ≥ n_k, "
              "float64, scores that fall from block to block, no mask, a causal mask, padding at the end and at the "
              "start of a row (a fully masked first block), causal and padding together, all equal to torch's "
              "attention.")
def check_chunked_attention() -> Iterator[Case]:
    """Check `chunked_attention(q, k, v, block_size, mask=None)`: `(..., n_q, d_k), (..., n_k, d_k),
    (..., n_k, d_v) -> (..., n_q, d_v)`, compared with `torch.nn.functional.scaled_dot_product_attention`.

    The mask is boolean, True = may attend, of shape (n_q, n_k), (B, 1, 1, n_k) or (B, h, n_q, n_k); every
    query may attend to at least one key. Values and padding lengths come from seeded generators.
    """
    f64 = torch.float64
    # Every case has n_q != n_k and d_k != d_v (except where causal needs n_q = n_k), so that a
    # transposed product or a wrong dimension changes a shape.
    for seed, (name, batch, n_q, n_k, d_k, d_v, block, dtype) in enumerate([
        # Divisible first: it tells "one block short" apart from "the ragged last block dropped".
        ("no mask, a (2, 3)-head batch: 5 queries, 12 keys in 3 blocks of 4, d_k = 6, d_v = 7", (2, 3), 5, 12, 6, 7,
         4, torch.float32),
        ("13 keys in blocks of 4 (the last block holds 1 key), a batch of 2", (2,), 3, 13, 4, 5, 4, torch.float32),
        ("block_size = 1 (one key per block), one head, no batch", (), 4, 6, 3, 2, 1, torch.float32),
        ("block_size = 8 with only 5 keys (a single, shorter block)", (2,), 3, 5, 4, 3, 8, torch.float32),
        ("10 keys in blocks of 3, float64", (3,), 4, 10, 5, 2, 3, f64),
    ]):
        g = generator(140 + seed)
        q, k, v = randn(g, *batch, n_q, d_k, dtype=dtype) * 2, randn(g, *batch, n_k, d_k, dtype=dtype), \
            randn(g, *batch, n_k, d_v, dtype=dtype)
        yield Case(name, (q, k, v, block), expected=_sdpa(q, k, v))
    q, k, v = _falling_scores(generator(150))
    yield Case("scores that fall from block to block: near +100 in the first block, -100 in the second, 0 in the "
               "third (float32)",
               (q, k, v, 4), expected=_sdpa(q, k, v),
               hint="with large scores every exp must be of a score minus the running maximum, or it overflows.")
    g = generator(151)
    q, k, v = randn(g, 2, 2, 9, 4), randn(g, 2, 2, 9, 4), randn(g, 2, 2, 9, 3)
    mask = causal_mask(9)
    yield Case("a causal mask (9 × 9, True = may attend) with blocks of 4", (q, k, v, 4), {"mask": mask},
               expected=_sdpa(q, k, v, mask),
               hint="the causal mask (n_q, n_k) was not applied: each block's scores must be -inf where that "
                    "block's columns of the mask are False.")
    # Padding masks (B, 1, 1, n_k): real lengths drawn from the generator; 11 keys in blocks of 3.
    g = generator(152)
    lengths = (int(torch.randint(4, 8, (1,), generator=g)), 11)
    q, k, v = randn(g, 2, 2, 5, 4), randn(g, 2, 2, 11, 4), randn(g, 2, 2, 11, 3)
    mask = _padding(g, lengths, 11, at_start=False)
    yield Case(f"a padding mask (2, 1, 1, 11), padding at the end of a row ({11 - lengths[0]} padding keys), "
               "blocks of 3", (q, k, v, 3), {"mask": mask}, expected=_sdpa(q, k, v, mask),
               hint="the padding mask (B, 1, 1, n_k) was not applied: it broadcasts over heads and queries; "
                    "slice its last dimension like the keys.")
    g = generator(153)
    lengths = (int(torch.randint(3, 6, (1,), generator=g)), 11)
    q, k, v = randn(g, 2, 2, 5, 4), randn(g, 2, 2, 11, 4), randn(g, 2, 2, 11, 3)
    mask = _padding(g, lengths, 11, at_start=True)
    yield Case(f"padding at the start of a row ({11 - lengths[0]} padding keys, so its first block of 3 is "
               "fully masked)", (q, k, v, 3), {"mask": mask}, expected=_sdpa(q, k, v, mask),
               hint="the first block of keys is fully masked for one sequence (padding at the start): after it, "
                    "that row's running maximum is still -inf and exp(-inf - (-inf)) is NaN. Let the update keep "
                    "the empty state there (online_softmax_update does).")
    g = generator(154)
    lengths = (int(torch.randint(5, 9, (1,), generator=g)), 9)
    q, k, v = randn(g, 2, 2, 9, 4), randn(g, 2, 2, 9, 4), randn(g, 2, 2, 9, 3)
    mask = (causal_mask(9) & _padding(g, lengths, 9, at_start=False)).expand(2, 2, 9, 9)
    yield Case("causal and padding together, a full mask (2, 2, 9, 9), blocks of 4", (q, k, v, 4), {"mask": mask},
               expected=_sdpa(q, k, v, mask),
               hint="the full mask (B, h, n_q, n_k), causal and padding together, was not applied: mask each "
                    "block's scores where its columns of the mask are False.")
