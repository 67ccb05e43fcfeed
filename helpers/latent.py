"""Multi-head latent attention (notebook 12): DeepSeek-V2's and V3's attention, and its small KV cache.

Every head's keys and values are rebuilt from one small *latent* vector per token (DeepSeek-V2,
DeepSeek-AI, 2024a; kept by DeepSeek-V3, DeepSeek-AI, 2024b):

- the input x `(B, n, d_model)` goes **down** to the latent c_KV `(B, n, d_c)` (then an RMSNorm), and
  each head's key part k_C and value v come back **up** from it: `c_KV W_UK_h`, `c_KV W_UV_h`, with
  W_UK_h `(d_c, d_nope)` and W_UV_h `(d_c, d_v)` in notebook 12's notation (`kv_b_proj` stores their
  transposes, as `nn.Linear` does);
- queries take a low-rank path of their own: down to c_Q `(B, n, d_c')`, RMSNorm, up to every head;
- RoPE cannot act on the latent (a rotation after W_UK would sit between W_UK and the query and depend
  on the key's position, so W_UK could no longer be folded into the query), so each head's query gets
  a *separate* rotary part q_R `(d_R)` and all heads share one rotary key k_R `(B, n, d_R)`, made from x
  and rotated;
- the score of head h is `[q_C, q_R] · [k_C, k_R] / √(d_nope + d_R)`, the value part is v.

The cache keeps c_KV and k_R: `d_c + d_R` numbers per token and layer, whatever the number of heads.
At inference the key up-projection can be folded into the query (`q_C W_UK_hᵀ` is a query *in the
latent space*) and the value up-projection into the output layer: the **absorbed form**, which never
builds per-head keys or values (`MultiHeadLatentAttention.forward(..., absorbed=True)`).

The parameter names are Hugging Face's (`transformers` DeepseekV3Attention): `q_a_proj` is W_DQ,
`q_a_layernorm` the RMSNorm of c_Q, `q_b_proj` stacks every head's W_UQ and W_QR, `kv_a_proj_with_mqa`
stacks W_DKV and W_KR, `kv_a_layernorm` is the RMSNorm of c_KV, `kv_b_proj` stacks every head's W_UK
and W_UV, `o_proj` is W_O. `MultiHeadLatentAttention.from_hf` copies such a layer; like
`helpers.modern`, it keeps Hugging Face's float32 islands (RMSNorm, rotary angles, softmax).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from helpers import modern
from helpers.modern import RMSNorm, apply_rope, interleaved_to_halves, sliding_window_mask
from helpers.tensors import format_shape, require_tensor


@dataclass(frozen=True)
class LatentConfig:
    """The sizes of one multi-head latent attention layer (Hugging Face's DeepseekV3Config names in brackets).

    d_model [hidden_size], num_heads [num_attention_heads], kv_lora_rank d_c, q_lora_rank d_c' (None: a
    full-rank query projection), qk_nope_head_dim (the per-head key/query part from the latent),
    qk_rope_head_dim d_R (the rotary part), v_head_dim; rope_interleave: DeepSeek's interleaved pairs.
    """

    d_model: int = 256
    num_heads: int = 8
    kv_lora_rank: int = 128
    q_lora_rank: int | None = 64
    qk_nope_head_dim: int = 32
    qk_rope_head_dim: int = 16
    v_head_dim: int = 32
    rope_base: float = 10000.0
    rope_interleave: bool = True
    eps: float = 1e-6

    @classmethod
    def from_hf(cls, config: object) -> LatentConfig:
        """The sizes of a `transformers.DeepseekV3Config`."""
        rope = getattr(config, "rope_parameters", None) or {}
        if rope.get("rope_type", "default") != "default":
            raise ValueError(f"only the default RoPE is supported, got rope_type={rope.get('rope_type')!r}")
        return cls(d_model=config.hidden_size, num_heads=config.num_attention_heads,  # type: ignore[attr-defined]
                   kv_lora_rank=config.kv_lora_rank, q_lora_rank=config.q_lora_rank,  # type: ignore[attr-defined]
                   qk_nope_head_dim=config.qk_nope_head_dim,  # type: ignore[attr-defined]
                   qk_rope_head_dim=config.qk_rope_head_dim,  # type: ignore[attr-defined]
                   v_head_dim=config.v_head_dim, rope_base=float(rope.get("rope_theta", 10000.0)),  # type: ignore[attr-defined]
                   rope_interleave=bool(config.rope_interleave),  # type: ignore[attr-defined]
                   eps=1e-6)  # the layer builds its two RMSNorms with their default eps, not rms_norm_eps


@dataclass
class LatentCache:
    """What multi-head latent attention caches: `latents[l]` `(B, t, d_c)` and `rope_keys[l]` `(B, t, d_R)`."""

    latents: list[Tensor] = field(default_factory=list)
    rope_keys: list[Tensor] = field(default_factory=list)

    def length_of(self, layer: int) -> int:
        """Positions cached for `layer` so far."""
        return self.latents[layer].shape[-2] if layer < len(self.latents) else 0

    def update(self, layer: int, latent: Tensor, rope_key: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new positions of `layer` and return all of its latents and rotary keys."""
        if layer == len(self.latents):
            self.latents.append(latent)
            self.rope_keys.append(rope_key)
        else:
            self.latents[layer] = torch.cat([self.latents[layer], latent], dim=-2)
            self.rope_keys[layer] = torch.cat([self.rope_keys[layer], rope_key], dim=-2)
        return self.latents[layer], self.rope_keys[layer]

    def nbytes(self) -> int:
        """Bytes held by the cache tensors, measured from the tensors themselves."""
        return sum(t.numel() * t.element_size() for t in [*self.latents, *self.rope_keys])

    def bytes_per_token(self) -> float:
        """Bytes per cached position and sequence of the batch."""
        if not self.latents:
            return 0.0
        batch, length = self.latents[0].shape[0], self.latents[0].shape[-2]
        return self.nbytes() / (length * batch)


def absorb_query(q_nope: Tensor, w_uk: Tensor) -> Tensor:
    """The absorbed query: each head's q_C times its own W_UKᵀ, a query in the latent space.

    Args:
        q_nope: `(..., h, n, d_nope)`, the non-rotary query part of every head (leading dims optional).
        w_uk: `(h, d_nope, d_c)`: w_uk[h] = W_UK_hᵀ, head h's key up-projection as `nn.Linear` stores it
            (k_C = c_KV W_UK_h = c_KV @ w_uk[h]ᵀ).

    Returns:
        `(..., h, n, d_c)`: `q_nope[..., i, :, :] @ w_uk[i]`, so that `absorbed @ c_KVᵀ = q_C @ k_Cᵀ`.
    """
    require_tensor("q_nope", q_nope)
    require_tensor("w_uk", w_uk)
    if q_nope.ndim < 3 or w_uk.ndim != 3 or w_uk.shape[:2] != (q_nope.shape[-3], q_nope.shape[-1]):
        raise ValueError(f"expected q_nope (..., h, n, d_nope) and w_uk (h, d_nope, d_c) with the same h and "
                         f"d_nope, got q_nope {format_shape(q_nope.shape)} and w_uk {format_shape(w_uk.shape)}")
    return q_nope @ w_uk


class MultiHeadLatentAttention(nn.Module):
    """Causal multi-head latent attention: `x (B, n, d_model) -> (B, n, d_model)`.

    With `cache` (a `LatentCache`) it stores the normalised latent c_KV `(B, t, d_c)` and the rotated
    shared key k_R `(B, t, d_R)` of every position, and the new tokens sit at positions t, t + 1, ...
    With `absorbed=True` the same output comes from the latents directly (see the module docstring).
    """

    def __init__(self, config: LatentConfig, layer: int = 0) -> None:
        super().__init__()
        self.config, self.layer = config, layer
        c, h = config, config.num_heads
        self.qk_head_dim = c.qk_nope_head_dim + c.qk_rope_head_dim
        if c.q_lora_rank is None:
            self.q_proj = nn.Linear(c.d_model, h * self.qk_head_dim, bias=False)
        else:
            self.q_a_proj = nn.Linear(c.d_model, c.q_lora_rank, bias=False)  # W_DQ
            self.q_a_layernorm = RMSNorm(c.q_lora_rank, c.eps)
            self.q_b_proj = nn.Linear(c.q_lora_rank, h * self.qk_head_dim, bias=False)  # W_UQ and W_QR
        self.kv_a_proj_with_mqa = nn.Linear(c.d_model, c.kv_lora_rank + c.qk_rope_head_dim, bias=False)  # W_DKV, W_KR
        self.kv_a_layernorm = RMSNorm(c.kv_lora_rank, c.eps)
        self.kv_b_proj = nn.Linear(c.kv_lora_rank, h * (c.qk_nope_head_dim + c.v_head_dim), bias=False)  # W_UK, W_UV
        self.o_proj = nn.Linear(h * c.v_head_dim, c.d_model, bias=False)  # W_O
        self.scaling = self.qk_head_dim**-0.5

    @classmethod
    def from_hf(cls, attention: nn.Module, layer: int = 0) -> MultiHeadLatentAttention:
        """A copy of a `transformers` DeepseekV3Attention layer: same sizes, same weights, same dtype."""
        if getattr(attention.config, "attention_bias", False):
            raise ValueError("attention_bias=True is not supported: DeepSeek's projections have no bias")
        ours = cls(LatentConfig.from_hf(attention.config), layer)
        ours.to(dtype=attention.o_proj.weight.dtype)
        ours.load_state_dict(attention.state_dict())
        return ours.train(attention.training)

    def _rope(self, x: Tensor, positions: Tensor) -> Tensor:
        """RoPE on the rotary part; DeepSeek's interleaved pairs come out de-interleaved, as Hugging Face's do."""
        if self.config.rope_interleave:
            x = x[..., interleaved_to_halves(x.shape[-1]).to(x.device)]
        return apply_rope(x, positions, self.config.rope_base)

    def w_uk_uv(self) -> tuple[Tensor, Tensor]:
        """Every head's up-projections from the latent, as `nn.Linear` stores them (transposed).

        W_UKᵀ `(h, d_nope, d_c)` and W_UVᵀ `(h, d_v, d_c)`.
        """
        c = self.config
        w = self.kv_b_proj.weight.view(c.num_heads, c.qk_nope_head_dim + c.v_head_dim, c.kv_lora_rank)
        return w[:, : c.qk_nope_head_dim], w[:, c.qk_nope_head_dim:]

    def queries(self, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """q_C `(B, h, n, d_nope)` and the rotated q_R `(B, h, n, d_R)` of x `(B, n, d_model)`."""
        c = self.config
        q = self.q_proj(x) if c.q_lora_rank is None else self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        q = q.view(x.shape[0], x.shape[1], c.num_heads, self.qk_head_dim).transpose(1, 2)
        q_nope, q_rope = q.split([c.qk_nope_head_dim, c.qk_rope_head_dim], dim=-1)
        return q_nope, self._rope(q_rope, positions)

    def latents(self, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """The latent c_KV `(B, n, d_c)` (normalised) and the rotated shared key k_R `(B, n, d_R)`."""
        c_kv, k_rope = self.kv_a_proj_with_mqa(x).split([self.config.kv_lora_rank, self.config.qk_rope_head_dim],
                                                        dim=-1)
        return self.kv_a_layernorm(c_kv), self._rope(k_rope, positions)

    def forward(self, x: Tensor, cache: LatentCache | None = None, absorbed: bool = False) -> Tensor:
        require_tensor("x", x)
        c = self.config
        if x.ndim != 3 or x.shape[-1] != c.d_model:
            raise ValueError(f"x: expected shape (B, n, d_model={c.d_model}), got {format_shape(x.shape)}")
        batch, n, _ = x.shape
        start = cache.length_of(self.layer) if cache is not None else 0
        positions = torch.arange(start, start + n, device=x.device)
        q_nope, q_rope = self.queries(x, positions)  # (B, h, n, d_nope), (B, h, n, d_R)
        c_kv, k_rope = self.latents(x, positions)  # (B, n, d_c), (B, n, d_R)
        if cache is not None:
            c_kv, k_rope = cache.update(self.layer, c_kv, k_rope)  # (B, t, d_c), (B, t, d_R)
        w_uk, w_uv = self.w_uk_uv()
        if absorbed:  # never builds per-head keys or values; one shared rotary key for every head
            scores = (absorb_query(q_nope, w_uk) @ c_kv[:, None].transpose(-2, -1)
                      + q_rope @ k_rope[:, None].transpose(-2, -1))
        else:
            up = self.kv_b_proj(c_kv).view(batch, -1, c.num_heads, c.qk_nope_head_dim + c.v_head_dim).transpose(1, 2)
            k_nope, v = up.split([c.qk_nope_head_dim, c.v_head_dim], dim=-1)  # (B, h, t, d_nope), (B, h, t, d_v)
            k = torch.cat([k_nope, k_rope[:, None].expand(-1, c.num_heads, -1, -1)], dim=-1)  # (B, h, t, d_nope + d_R)
            scores = torch.cat([q_nope, q_rope], dim=-1) @ k.transpose(-2, -1)
        mask = sliding_window_mask(n, scores.shape[-1], device=x.device)
        scores = (scores * self.scaling).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1, dtype=modern.ISLAND_DTYPE).to(x.dtype)  # (B, h, n, t)
        if absorbed:  # W_UV folded into W_O: one (d_c, d_model) matrix per head
            w_o = self.o_proj.weight.view(c.d_model, c.num_heads, c.v_head_dim)
            w_ov = torch.einsum("hvc,dhv->hcd", w_uv, w_o)  # (h, d_c, d_model)
            return torch.einsum("bhnc,hcd->bnd", weights @ c_kv[:, None], w_ov)
        out = (weights @ v).transpose(1, 2).reshape(batch, n, -1)  # (B, n, h · d_v)
        return self.o_proj(out)
