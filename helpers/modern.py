"""The attention of today's models (notebook 12): RoPE, RMSNorm, SwiGLU, grouped-query attention.

Llama's decoder differs from notebook 11's GPT-2 in a few places, each small (it also drops every
bias and, in Llama itself, unties the output layer from the embedding):

- **RoPE**: no position vectors are added; queries and keys are *rotated* by an angle that
  grows with the position (notebook 06's 2 × 2 rotations), so q·k depends on the offset only;
- **RMSNorm**: LayerNorm without the mean subtraction and without the shift β (its `bias`);
- **SwiGLU**: a gated feed-forward, `down(silu(gate(x)) * up(x))`, no biases;
- **grouped-query attention**: fewer key/value heads than query heads, each key/value head
  shared by a group of query heads, which shrinks the KV cache.

`LlamaStyleLM.from_hf(transformers.LlamaForCausalLM)` copies a Hugging Face model's weights,
and the logits agree to float64 rounding. To make that possible this module keeps the three
float32 islands of Hugging Face's reference code (its eager attention path): RMSNorm's whole
normalisation x·rsqrt(mean(x²) + eps) (the gain is applied in the model's dtype), the rotary
angles with their cos and sin, and the attention softmax are computed in float32 whatever the
model's dtype. In bfloat16 that is what keeps training stable; in float32 it changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from helpers.tensors import format_shape, require_tensor

#: The dtype of Hugging Face's float32 islands (see the module docstring).
ISLAND_DTYPE = torch.float32


# --- RoPE ----------------------------------------------------------------------------------------


def rope_frequencies(head_dim: int, base: float = 10000.0) -> Tensor:
    """`(head_dim / 2,)` angular frequencies θ_i = base^(-2i / head_dim), as notebook 06's code.

    Computed in float32, as Hugging Face does, so that the angles round the same way.
    """
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < 2 or head_dim % 2:
        raise ValueError(f"head_dim must be a positive even int, got {head_dim!r}")
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=ISLAND_DTYPE) / head_dim))


def rope_cos_sin(positions: Tensor, head_dim: int, base: float = 10000.0,
                 dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """cos and sin of the rotary angles, `(n, head_dim)` each, in the rotate-half layout.

    Angle `positions[t] · θ_i` for pair i; the halves are repeated (`cat(angles, angles)`)
    because dimension i is paired with dimension i + head_dim / 2 (see `rotate_half`).
    """
    require_tensor("positions", positions)
    if positions.ndim != 1:
        raise ValueError(f"positions: expected shape (n,), got {format_shape(positions.shape)}")
    angles = positions.to(ISLAND_DTYPE)[:, None] * rope_frequencies(head_dim, base).to(positions.device)
    both = torch.cat([angles, angles], dim=-1)  # (n, head_dim)
    return both.cos().to(dtype), both.sin().to(dtype)


def rotate_half(x: Tensor) -> Tensor:
    """`(..., d) -> (..., d)`: (x1, x2) -> (-x2, x1) over the two halves of the last dimension.

    It is the 90° turn of every pair (x_i, x_{i + d/2}), so x·cos + rotate_half(x)·sin turns
    each pair by its angle.
    """
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def _require_rope_input(x: Tensor, positions: Tensor) -> None:
    """x `(..., n, head_dim)` with head_dim even, positions `(n,)`: else a ValueError naming both shapes."""
    require_tensor("x", x)
    require_tensor("positions", positions)
    if x.ndim < 2 or x.shape[-1] % 2:
        raise ValueError(f"x: expected shape (..., n, head_dim) with head_dim even, got {format_shape(x.shape)}")
    if positions.shape != (x.shape[-2],):
        raise ValueError(f"positions: expected shape ({x.shape[-2]},) to match x {format_shape(x.shape)}, "
                         f"got {format_shape(positions.shape)}")


def apply_rope(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Rotate queries or keys by their positions, in Hugging Face Llama's rotate-half convention.

    Args:
        x: `(..., n, head_dim)` with head_dim even and any number of leading dimensions (none,
            `(B,)`, `(B, h)`): the tokens are the second-to-last dimension.
        positions: `(n,)` integer positions of the n tokens, any values: they need not start at 0
            (with a KV cache the new token sits at position t), nor be consecutive.

    Returns:
        `(..., n, head_dim)`: pair (i, i + head_dim/2) of token t turned by the angle
        positions[t] · θ_i, the paper's direction (a row times notebook 06's M transposed).
    """
    _require_rope_input(x, positions)
    cos, sin = rope_cos_sin(positions, x.shape[-1], base, x.dtype)
    return x * cos + rotate_half(x) * sin


def apply_rope_interleaved(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """The paper's convention (RoFormer, Meta's Llama code): pairs are (2i, 2i + 1), as in notebook 06.

    Same shapes as `apply_rope`. It equals `apply_rope` on dimensions reordered as
    (0, 2, 4, ..., 1, 3, 5, ...): the two conventions differ by a fixed permutation.
    """
    _require_rope_input(x, positions)
    angles = positions.to(ISLAND_DTYPE)[:, None] * rope_frequencies(x.shape[-1], base).to(positions.device)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


def rotation_matrix(position: int, head_dim: int, base: float = 10000.0) -> Tensor:
    """`(head_dim, head_dim)` float64: notebook 06's block-diagonal M_position, block i = [[c, -s], [s, c]].

    c, s = cos, sin of position · θ_i. In the course's row-vector notation the interleaved
    RoPE of a row q is `q @ rotation_matrix(m, d).T` (each pair turned by +m·θ_i).
    """
    angles = position * rope_frequencies(head_dim, base).to(torch.float64)
    c, s = angles.cos(), angles.sin()
    blocks = torch.stack([torch.stack([c, -s], dim=-1), torch.stack([s, c], dim=-1)], dim=-2)  # (d/2, 2, 2)
    return torch.block_diag(*blocks)


def interleaved_to_halves(head_dim: int) -> Tensor:
    """The permutation (0, 2, 4, ..., 1, 3, 5, ...): `x[..., perm]` takes paper pairs to rotate-half pairs."""
    return torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)])


# --- RMSNorm and SwiGLU --------------------------------------------------------------------------


def rms_norm(x: Tensor, weight: Tensor, eps: float = 1e-6) -> Tensor:
    """`(..., d) -> (..., d)`: x / sqrt(mean(x²) + eps) · weight; no mean subtracted, no shift.

    Any number of leading dimensions, a single vector `(d,)` included; eps is the caller's (1e-6 by default).

    The statistics are taken in float32 (Hugging Face's island), the scale in x's dtype.
    """
    require_tensor("x", x)
    if weight.shape != (x.shape[-1],):
        raise ValueError(f"weight: expected shape ({x.shape[-1]},) for x {format_shape(x.shape)}, "
                         f"got {format_shape(weight.shape)}")
    wide = x.to(ISLAND_DTYPE)
    normalised = wide * torch.rsqrt(wide.pow(2).mean(dim=-1, keepdim=True) + eps)
    return weight * normalised.to(x.dtype)


class RMSNorm(nn.Module):
    """Root-mean-square normalisation over the last dimension, with a learned gain (init 1)."""

    def __init__(self, d_model: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.weight, self.eps)


class SwiGLU(nn.Module):
    """The gated feed-forward: `down(silu(gate(x)) * up(x))`, `(..., d_model) -> (..., d_model)`.

    Three matrices instead of two, so at the same parameter budget as a 4·d_model ReLU/GELU
    feed-forward the hidden width is 2/3 of it: 8/3 · d_model (Llama rounds it up).
    """

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_model, d_ff, bias=False)
        self.up_proj = nn.Linear(d_model, d_ff, bias=False)
        self.down_proj = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


# --- grouped-query attention with a KV cache -----------------------------------------------------


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """`(B, h_kv, n, d) -> (B, h_kv · n_rep, n, d)`: each key/value head serves n_rep query heads.

    Query heads g·n_rep ... (g+1)·n_rep - 1 share key/value head g (consecutive heads form a
    group), as `torch.repeat_interleave(x, n_rep, dim=1)`; `expand` makes no copy until the reshape,
    which (unlike `view`) also takes a non-contiguous x. h_kv = 1 is multi-query attention; n_rep = 1 returns x.
    """
    require_tensor("x", x)
    if x.ndim != 4:
        raise ValueError(f"x: expected shape (B, h_kv, n, d), got {format_shape(x.shape)}")
    if isinstance(n_rep, bool) or not isinstance(n_rep, int) or n_rep < 1:
        raise ValueError(f"n_rep must be a positive int, got {n_rep!r}")
    if n_rep == 1:
        return x
    batch, h_kv, n, d = x.shape
    return x[:, :, None].expand(batch, h_kv, n_rep, n, d).reshape(batch, h_kv * n_rep, n, d)


def sliding_window_mask(n_q: int, n_k: int, window: int | None = None, device: torch.device | None = None) -> Tensor:
    """Bool `(n_q, n_k)`, True = may attend: causal, and (with `window`) only the last `window` keys.

    The n_q queries are the *last* n_q of the n_k positions (with a KV cache, n_k ≥ n_q).
    """
    if n_k < n_q:
        raise ValueError(f"n_k = {n_k} keys cannot be fewer than the n_q = {n_q} queries")
    query_pos = torch.arange(n_k - n_q, n_k, device=device)[:, None]
    key_pos = torch.arange(n_k, device=device)[None, :]
    mask = key_pos <= query_pos
    if window is not None:
        if window < 1:
            raise ValueError(f"window must be a positive int, got {window!r}")
        mask &= key_pos > query_pos - window
    return mask


@dataclass
class KVCache:
    """The keys and values of every layer so far: `keys[l]`, `values[l]` are `(B, h_kv, t, head_dim)`."""

    keys: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)

    @property
    def length(self) -> int:
        """t: the number of positions cached (0 when empty)."""
        return self.keys[0].shape[-2] if self.keys else 0

    def length_of(self, layer: int) -> int:
        """Positions cached for `layer` so far (during a forward pass the layers are not yet level)."""
        return self.keys[layer].shape[-2] if layer < len(self.keys) else 0

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new positions of `layer` and return all of its keys and values."""
        if layer == len(self.keys):
            self.keys.append(k)
            self.values.append(v)
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=-2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=-2)
        return self.keys[layer], self.values[layer]

    def nbytes(self) -> int:
        """Bytes held by the cache tensors, measured from the tensors themselves."""
        return sum(t.numel() * t.element_size() for t in [*self.keys, *self.values])

    def bytes_per_token(self) -> float:
        """Bytes per cached position and sequence of the batch."""
        if not self.keys:
            return 0.0
        return self.nbytes() / (self.length * self.keys[0].shape[0])


class GroupedQueryAttention(nn.Module):
    """Causal self-attention with RoPE and `num_kv_heads` key/value heads shared by groups of queries.

    num_kv_heads = num_heads is multi-head attention, 1 is multi-query attention (MQA), anything
    in between that divides num_heads is grouped-query attention (GQA). Projections have no bias.
    Shapes: `x (B, n, d_model) -> (B, n, d_model)`.
    """

    def __init__(self, d_model: int, num_heads: int, num_kv_heads: int | None = None, head_dim: int | None = None,
                 rope_base: float = 10000.0, window: int | None = None, layer: int = 0) -> None:
        super().__init__()
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if num_heads % num_kv_heads:
            raise ValueError(f"num_kv_heads = {num_kv_heads} must divide num_heads = {num_heads}")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = head_dim or d_model // num_heads
        self.rope_base, self.window, self.layer = rope_base, window, layer
        self.q_proj = nn.Linear(d_model, num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d_model, num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d_model, num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(num_heads * self.head_dim, d_model, bias=False)

    def _heads(self, projected: Tensor, heads: int) -> Tensor:
        batch, n, _ = projected.shape
        return projected.view(batch, n, heads, self.head_dim).transpose(1, 2)  # (B, heads, n, head_dim)

    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:
        require_tensor("x", x)
        d_model = self.q_proj.in_features
        if x.ndim != 3 or x.shape[-1] != d_model:
            raise ValueError(f"x: expected shape (B, n, d_model={d_model}), got {format_shape(x.shape)}")
        start = cache.length_of(self.layer) if cache is not None else 0
        positions = torch.arange(start, start + x.shape[1], device=x.device)
        q = apply_rope(self._heads(self.q_proj(x), self.num_heads), positions, self.rope_base)
        k = apply_rope(self._heads(self.k_proj(x), self.num_kv_heads), positions, self.rope_base)
        v = self._heads(self.v_proj(x), self.num_kv_heads)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # the cache stores h_kv heads, not h
        groups = self.num_heads // self.num_kv_heads
        k, v = repeat_kv(k, groups), repeat_kv(v, groups)
        scores = q @ k.transpose(-2, -1) * self.head_dim**-0.5  # as Hugging Face: a product, not a quotient
        mask = sliding_window_mask(q.shape[-2], k.shape[-2], self.window, x.device)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1, dtype=ISLAND_DTYPE).to(q.dtype)  # a float32 island
        out = (weights @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
        return self.o_proj(out)


# --- the Llama-style block and language model ----------------------------------------------------


@dataclass(frozen=True)
class LlamaStyleConfig:
    """The sizes of a Llama-style model. `num_kv_heads` < `num_heads` gives grouped-query attention."""

    vocab_size: int = 256
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 4
    d_ff: int = 172
    rope_base: float = 10000.0
    eps: float = 1e-6
    tie_embeddings: bool = False
    window: int | None = None


class LlamaStyleBlock(nn.Module):
    """Pre-norm decoder block: x + attn(RMSNorm(x)), then + SwiGLU(RMSNorm(·)). `(B, n, d) -> (B, n, d)`."""

    def __init__(self, config: LlamaStyleConfig, layer: int = 0) -> None:
        super().__init__()
        c = config
        self.input_norm = RMSNorm(c.d_model, c.eps)
        self.attention = GroupedQueryAttention(c.d_model, c.num_heads, c.num_kv_heads, rope_base=c.rope_base,
                                               window=c.window, layer=layer)
        self.post_attention_norm = RMSNorm(c.d_model, c.eps)
        self.feed_forward = SwiGLU(c.d_model, c.d_ff)

    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:
        x = x + self.attention(self.input_norm(x), cache)
        return x + self.feed_forward(self.post_attention_norm(x))


class LlamaStyleLM(nn.Module):
    """Token embedding, blocks, a final RMSNorm and the output layer: `(B, n) ids -> (B, n, vocab)` logits.

    No position embedding: positions enter through RoPE inside every attention layer.
    """

    def __init__(self, config: LlamaStyleConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(LlamaStyleBlock(config, i) for i in range(config.num_layers))
        self.norm = RMSNorm(config.d_model, config.eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        # Llama's initialisation: every matrix N(0, 0.02²); norms start at 1 (their own init).
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, ids: Tensor, cache: KVCache | None = None) -> Tensor:
        require_tensor("ids", ids)
        if ids.ndim != 2:
            raise ValueError(f"ids: expected shape (B, n), got {format_shape(ids.shape)}")
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x, cache)
        return self.lm_head(self.norm(x))

    @torch.no_grad()
    def generate_greedy(self, ids: Tensor, steps: int, use_cache: bool = True) -> Tensor:
        """`(B, n) -> (B, n + steps)`: append the most likely token `steps` times."""
        cache = KVCache() if use_cache else None
        logits = self(ids, cache)
        out = ids
        for _ in range(steps):
            token = logits[:, -1].argmax(dim=-1, keepdim=True)
            out = torch.cat([out, token], dim=1)
            logits = self(token, cache) if use_cache else self(out)
        return out

    @classmethod
    def from_hf(cls, model: nn.Module) -> LlamaStyleLM:
        """A copy of a `transformers.LlamaForCausalLM`: same config, same weights, same dtype and mode."""
        hf = model.config
        head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
        rope = getattr(hf, "rope_parameters", None) or {}
        if rope.get("rope_type", "default") != "default":
            raise ValueError(f"only the default RoPE is supported, got rope_type={rope.get('rope_type')!r}")
        if head_dim * hf.num_attention_heads != hf.hidden_size:
            raise ValueError("head_dim · num_attention_heads must equal hidden_size")
        if getattr(hf, "attention_bias", False) or getattr(hf, "mlp_bias", False) or hf.hidden_act != "silu":
            raise ValueError("only bias-free attention and a SiLU-gated MLP (Llama's defaults) are supported")
        config = LlamaStyleConfig(
            vocab_size=hf.vocab_size, d_model=hf.hidden_size, num_layers=hf.num_hidden_layers,
            num_heads=hf.num_attention_heads, num_kv_heads=hf.num_key_value_heads, d_ff=hf.intermediate_size,
            rope_base=float(rope.get("rope_theta", getattr(hf, "rope_theta", 10000.0))), eps=hf.rms_norm_eps,
            tie_embeddings=bool(hf.tie_word_embeddings),
        )
        ours = cls(config).to(dtype=next(model.parameters()).dtype)
        with torch.no_grad():
            for mine, theirs in paired_parameters(ours, model):
                mine.copy_(theirs)
        return ours.train(model.training)


def paired_parameters(ours: LlamaStyleLM, model: nn.Module) -> list[tuple[Tensor, Tensor]]:
    """(our parameter, the `transformers.LlamaForCausalLM` parameter it copies), each tensor once."""
    theirs = model.model
    pairs = [(ours.embed.weight, theirs.embed_tokens.weight)]
    for block, layer in zip(ours.blocks, theirs.layers, strict=True):
        pairs += [(block.input_norm.weight, layer.input_layernorm.weight),
                  (block.post_attention_norm.weight, layer.post_attention_layernorm.weight)]
        pairs += [(getattr(block.attention, name).weight, getattr(layer.self_attn, name).weight)
                  for name in ("q_proj", "k_proj", "v_proj", "o_proj")]
        pairs += [(getattr(block.feed_forward, name).weight, getattr(layer.mlp, name).weight)
                  for name in ("gate_proj", "up_proj", "down_proj")]
    pairs.append((ours.norm.weight, theirs.norm.weight))
    if not ours.config.tie_embeddings:
        pairs.append((ours.lm_head.weight, model.lm_head.weight))
    return pairs


@contextlib.contextmanager
def no_network() -> Iterator[list[object]]:
    """Refuse and record every socket connection inside the block; sets HF_HUB_OFFLINE=1 for it.

    Building a Hugging Face model from a config needs no download; this proves it: the list it
    yields stays empty, and a library that did try to connect would fail loudly instead of waiting.
    """
    attempts: list[object] = []
    original = socket.socket.connect
    previous = os.environ.get("HF_HUB_OFFLINE")

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError(f"no network in this course: a connection to {address!r} was refused")

    os.environ["HF_HUB_OFFLINE"] = "1"
    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        yield attempts
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, a tied matrix counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
