"""Efficient attention (notebook 10): online softmax over key blocks, and a KV cache for decoding.

Two ideas remove work or memory that exact attention does not need:

- **Online softmax** (the idea behind FlashAttention). `softmax(S) V` for one query row needs
  the row's maximum and the sum of its exponentials, but both can be built up block by block:
  keep a running maximum `m`, a running sum `z = Σ exp(s_j - m)` and an unnormalised
  accumulator `acc = Σ exp(s_j - m) v_j`; when a new block raises the maximum from `m` to `m'`,
  everything seen so far is rescaled by `exp(m - m')`. After the last block, `acc / z` is the
  exact attention output, and the `n_q × n_k` matrix never existed: only `n_q × block_size`.
- **KV cache**. In a causal decoder, the keys and values of past positions never change when a
  token is appended, so greedy decoding can keep them (per layer) and process only the newest
  token at each step; the cross-attention's keys and values of the encoder output are computed
  once. The tokens are exactly those of `Transformer.greedy_decode`.

Masks are boolean with True = may attend, as everywhere in the course.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from helpers.attention import (
    MultiHeadAttention,
    attention_weights,
    merge_heads,
    require_mask,
    require_qkv,
    split_heads,
)
from helpers.tensors import format_shape, require_int, require_ndim, require_same_size, require_tensor
from helpers.transformer import DecoderLayer, Transformer, greedy_tokens

# ---- online softmax and chunked attention ---------------------------------------------------------------


def online_softmax_update(
    m: Tensor, z: Tensor, acc: Tensor, scores: Tensor, v: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Fold one block of keys into the running softmax state of every query.

    Args:
        m: `(..., n_q, 1)` running maximum of the scores seen so far (`-inf` before the first block).
        z: `(..., n_q, 1)` running sum `Σ exp(s_j - m)`, the softmax's normaliser (0 before the first block).
        acc: `(..., n_q, d_v)` running unnormalised output `Σ exp(s_j - m) v_j` (0 before the first block).
        scores: `(..., n_q, b)` this block's scaled scores `q kᵀ / √d_k`, `-inf` where masked.
        v: `(..., b, d_v)` this block's values.

    Returns:
        `(m_new, z_new, acc_new)` with the shapes of `(m, z, acc)`; `acc_new / z_new` is the
        attention output over every block seen so far.

    The new maximum is `m_new = max(m, max_j s_j)`. The old sum and accumulator were computed
    relative to `m`, so they are multiplied by `exp(m - m_new)` (≤ 1) before the block's own
    terms `exp(s_j - m_new)` are added. A row that has seen only masked keys keeps
    `m = -inf, z = 0, acc = 0` (no NaN from `-inf - (-inf)`).
    """
    m_new = torch.maximum(m, scores.amax(dim=-1, keepdim=True))
    # Where every score so far is -inf, subtract 0 instead of -inf so exp gives 0, not NaN.
    reference = m_new.masked_fill(m_new == float("-inf"), 0.0)
    p = torch.exp(scores - reference)  # (..., n_q, b)
    rescale = torch.exp(m - reference)  # (..., n_q, 1): exp(m_old - m_new)
    z_new = z * rescale + p.sum(dim=-1, keepdim=True)
    acc_new = acc * rescale + p @ v
    return m_new, z_new, acc_new


def chunked_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, block_size: int = 128) -> Tensor:
    """Exact `softmax(Q Kᵀ / √d_k) V`, computed over blocks of `block_size` keys by online softmax.

    Args:
        q: `(..., n_q, d_k)`.  k: `(..., n_k, d_k)`.  v: `(..., n_k, d_v)`; `...` may be empty.
        mask: optional; None lets every query attend to every key. Otherwise boolean, True = may
            attend, broadcastable to `(..., n_q, n_k)` with `n_k` as its last dimension: a causal
            `(n_q, n_k)`, a padding `(B, 1, 1, n_k)` (padding at the end or at the start of a row,
            so a whole first block may be masked: such rows keep the empty state until a key is
            allowed), or a full `(B, h, n_q, n_k)`. (A last dimension of 1, broadcast over the
            keys, is accepted too.)
        block_size: keys per block (the last block may be shorter; one block if it is ≥ n_k); the
            largest score tensor held is `(..., n_q, block_size)`.

    Returns:
        `(..., n_q, d_v)`, equal to `helpers.attention.scaled_dot_product_attention(q, k, v, mask)[0]`;
        a query whose keys are all masked gets zeros (the exercise's statement rules such a query
        out). The weights are never materialised.
    """
    require_qkv(q, k, v)
    require_int("block_size", block_size)
    n_q, n_k = q.shape[-2], k.shape[-2]
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    scores_shape = torch.Size((*batch, n_q, n_k))
    if mask is not None:
        require_mask(mask, scores_shape)
    q = q * (1.0 / math.sqrt(q.shape[-1]))  # scale the n_q × d_k queries once, not every n_q × b block
    dtype = torch.promote_types(q.dtype, v.dtype)
    m = torch.full((*batch, n_q, 1), float("-inf"), dtype=dtype, device=q.device)
    z = torch.zeros((*batch, n_q, 1), dtype=dtype, device=q.device)
    acc = torch.zeros((*batch, n_q, v.shape[-1]), dtype=dtype, device=q.device)
    for start in range(0, n_k, block_size):
        stop = min(start + block_size, n_k)
        scores = q @ k[..., start:stop, :].transpose(-2, -1)  # (..., n_q, b): the only score block alive
        if mask is not None:
            block_mask = mask if mask.shape[-1] == 1 else mask[..., start:stop]
            scores = scores.masked_fill(~block_mask, float("-inf"))
        m, z, acc = online_softmax_update(m, z, acc, scores, v[..., start:stop, :])
    # Divide once, at the end; rows with nothing to attend to have z = 0 and acc = 0: output 0.
    return acc / z.masked_fill(z == 0, 1.0)


# ---- KV cache ---------------------------------------------------------------------------------------------


def cached_attention_step(
    q: Tensor,
    k_new: Tensor,
    v_new: Tensor,
    k_cache: Tensor | None = None,
    v_cache: Tensor | None = None,
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One decoding step of self-attention with a KV cache.

    Args:
        q: `(..., 1, d_k)` the newest token's query. (Several new tokens at once also work, with a
            mask that keeps them causal among themselves.)
        k_new: `(..., 1, d_k)`, v_new: `(..., 1, d_v)`: its key and value.
        k_cache: `(..., t, d_k)`, v_cache: `(..., t, d_v)`: keys and values of the t earlier
            tokens (None or t = 0 at the first step).
        mask: boolean, broadcastable to `(..., 1, t + 1)`; True = may attend (e.g. not padding).

    Returns:
        `(output (..., 1, d_v), k_cache (..., t + 1, d_k), v_cache (..., t + 1, d_v))`: the new
        token attends to every cached key and to itself, and the returned caches have its key
        and value appended at the end, ready for the next step.
    """
    for name, x in (("q", q), ("k_new", k_new), ("v_new", v_new)):
        require_tensor(name, x)
        require_ndim(name, x, 2, "(..., n_new, d)")
    if k_cache is None:
        k_cache = k_new.new_zeros((*k_new.shape[:-2], 0, k_new.shape[-1]))
    if v_cache is None:
        v_cache = v_new.new_zeros((*v_new.shape[:-2], 0, v_new.shape[-1]))
    require_same_size("k_new", k_new, -1, "k_cache", k_cache, -1, "d_k (their last dimension)")
    require_same_size("v_new", v_new, -1, "v_cache", v_cache, -1, "d_v (their last dimension)")
    require_same_size("k_cache", k_cache, -2, "v_cache", v_cache, -2, "t (one cached value per cached key)")
    k_cache = torch.cat([k_cache, k_new], dim=-2)  # (..., t + 1, d_k)
    v_cache = torch.cat([v_cache, v_new], dim=-2)  # (..., t + 1, d_v)
    weights = attention_weights(q, k_cache, mask)  # (..., 1, t + 1): softmax(q Kᵀ / √d_k)
    return weights @ v_cache, k_cache, v_cache


def _heads(attention: MultiHeadAttention, projection: nn.Linear, x: Tensor) -> Tensor:
    """`x (B, n, d_model)` through one of the attention's projections, split: `(B, h, n, d_k)`."""
    return split_heads(projection(x), attention.num_heads)


@dataclass
class _LayerCache:
    """What one decoder layer keeps between steps, each `(B, h, ·, d_k)`: the keys and values of the
    encoder output (computed once) and of the tokens generated so far (None before the first)."""

    memory_k: Tensor
    memory_v: Tensor
    k: Tensor | None = None
    v: Tensor | None = None

    @classmethod
    def for_memory(cls, attention: MultiHeadAttention, memory: Tensor) -> _LayerCache:
        return cls(_heads(attention, attention.W_k, memory), _heads(attention, attention.W_v, memory))


def _cached_self_attention(attention: MultiHeadAttention, x: Tensor, cache: _LayerCache, mask: Tensor) -> Tensor:
    """`x (B, 1, d_model)` -> `(B, 1, d_model)`: the newest token's self-attention; its key and value join the cache."""
    q, k_new, v_new = (_heads(attention, projection, x) for projection in (attention.W_q, attention.W_k, attention.W_v))
    out, cache.k, cache.v = cached_attention_step(q, k_new, v_new, cache.k, cache.v, mask)  # out (B, h, 1, d_k)
    return attention.W_o(merge_heads(out))


def _decoder_layer_step(layer: DecoderLayer, y: Tensor, cache: _LayerCache, mask: Tensor, src_mask: Tensor) -> Tensor:
    """The newest token `y (B, 1, d_model)` through `layer`'s own wiring, with its cached keys and values."""
    cross = layer.cross_attention
    return layer.sublayers(
        y,
        lambda x: _cached_self_attention(layer.self_attention, x, cache, mask),
        lambda x: cross.attend(_heads(cross, cross.W_q, x), cache.memory_k, cache.memory_v, src_mask)[0],
    )


@torch.no_grad()
def greedy_decode_cached(model: Transformer, src: Tensor, bos_id: int, eos_id: int, max_len: int) -> Tensor:
    """`model.greedy_decode(src, bos_id, eos_id, max_len)`, with a KV cache: the same tokens, less work.

    Each step embeds only the newest token (at its position), runs it through every decoder
    layer's own wiring (`DecoderLayer.sublayers`), where it attends to the cached keys and values
    of all earlier tokens (padding keys masked out, as the uncached decoder's target mask does),
    and appends its own. The cross-attention keys and values of the encoder output are computed
    once per layer. Put the model in `eval()` mode first (as for `greedy_decode`), or dropout
    makes both random.

    Returns:
        `(B, n)` token ids starting with BOS, at most `max_len` generated tokens; after EOS a row
        is padded with `model.pad_id`.
    """
    if not isinstance(model, Transformer):
        raise TypeError(f"model must be a helpers.transformer.Transformer, got {type(model).__name__}")
    if not model.causal:
        raise ValueError("a KV cache needs a causal decoder: without the causal mask, every new token changes "
                         "the states of the earlier ones, so nothing can be reused (model.causal is False)")
    require_tensor("src", src)
    if src.ndim != 2 or src.is_floating_point():
        raise ValueError(f"src: expected integer token ids of shape (B, n_s), got {format_shape(src.shape)}")
    src_mask, _ = model.masks(src)  # (B, 1, n_s)
    memory = model.encode(src, src_mask)  # (B, n_s, d_model)
    layers = list(model.decoder.layers)
    caches = [_LayerCache.for_memory(layer.cross_attention, memory) for layer in layers]

    def next_logits(out: Tensor) -> Tensor:
        mask = (out != model.pad_id)[:, None, None, :]  # (B, 1, 1, t + 1): no attention to padding keys
        y = model.embed(model.tgt_embedding, out[:, -1:], start=out.shape[1] - 1)  # (B, 1, d_model)
        for layer, cache in zip(layers, caches):
            y = _decoder_layer_step(layer, y, cache, mask, src_mask)
        return model.output(model.decoder.norm(y))[:, -1]  # (B, vocab)

    return greedy_tokens(next_logits, src, bos_id, eos_id, model.pad_id, max_len)


# ---- what attention costs ------------------------------------------------------------------------------


def naive_attention_bytes(n_q: int, n_k: int, batch: int = 1, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of the two `(batch, n_q, n_k)` matrices exact attention holds at once: scores and weights."""
    return 2 * batch * n_q * n_k * torch.empty((), dtype=dtype).element_size()


def chunked_attention_bytes(n_q: int, block_size: int, d_v: int, batch: int = 1,
                            dtype: torch.dtype = torch.float32) -> int:
    """Bytes of chunked attention's working set: two `(batch, n_q, block)` blocks, the accumulator and m, z."""
    size = torch.empty((), dtype=dtype).element_size()
    return batch * n_q * (2 * block_size + d_v + 2) * size
