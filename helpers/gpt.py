"""A GPT from scratch, in GPT-2's layout (notebook 11).

A GPT is the Transformer's decoder alone: no encoder, so no cross-attention, only masked
self-attention and a feed-forward network per block. GPT-2's layout:

    tokens (B, n) -> token embedding + learned position embedding -> dropout
                  -> num_layers × [ x = x + attention(LN(x)),  x = x + MLP(LN(x)) ]    (pre-LN)
                  -> final LN -> logits = x Eᵀ (B, n, vocab)                          (tied: E is the token embedding)

The MLP is `linear2(gelu_tanh(linear1(x)))` with d_ff = 4 d_model, GELU in the tanh
approximation GPT-2 was trained with. Attention is the course's `MultiHeadAttention` with
the causal mask; generation reuses notebook 10's KV cache (`helpers.efficient.cached_attention_step`).

The model learns by the causal language-model objective: at every position, predict the next
token, so the targets are the inputs shifted left by one (`causal_lm_loss`).

`GPT.from_hf(transformers.GPT2LMHeadModel)` copies Hugging Face's weights; the logits are then
equal to float64 rounding. Hugging Face's `Conv1D` layers store their weight as `(in, out)`, the
transpose of `nn.Linear`'s `(out, in)`, and GPT-2 fuses W_Q, W_K, W_V into one `(d, 3d)` matrix.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from helpers.attention import MultiHeadAttention, causal_mask, merge_heads, split_heads
from helpers.efficient import cached_attention_step
from helpers.tensors import format_shape, require_tensor
from helpers.training import warmup_linear_decay
from helpers.transformer import LayerNorm

if TYPE_CHECKING:  # transformers is imported only where a Hugging Face model is built: it is slow to import
    from transformers import GPT2Config, GPT2LMHeadModel

#: A KV cache: per layer, the keys and values `(B, h, t, d_head)` of the t tokens seen so far.
KVCache = list[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class GPTConfig:
    """The sizes of a GPT. `d_ff=None` means 4 · d_model, as GPT-2."""

    vocab_size: int
    max_len: int = 128
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    d_ff: int | None = None
    dropout: float = 0.0
    eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_len", "d_model", "num_layers", "num_heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model = {self.d_model} is not divisible by num_heads = {self.num_heads}")

    @property
    def hidden(self) -> int:
        return self.d_ff if self.d_ff is not None else 4 * self.d_model

    @classmethod
    def gpt2_small(cls) -> GPTConfig:
        """GPT-2 small (the 124M model): 50,257 tokens, 1,024 positions, 12 layers of width 768, 12 heads."""
        return cls(vocab_size=50257, max_len=1024, d_model=768, num_layers=12, num_heads=12, dropout=0.1)

    def to_hf(self, **overrides: object) -> GPT2Config:
        """The `transformers.GPT2Config` of these sizes, attention in "eager" mode (plain softmax, exact in float64)."""
        from transformers import GPT2Config

        settings: dict[str, object] = dict(
            vocab_size=self.vocab_size, n_positions=self.max_len, n_embd=self.d_model, n_layer=self.num_layers,
            n_head=self.num_heads, n_inner=self.d_ff, resid_pdrop=self.dropout, embd_pdrop=self.dropout,
            attn_pdrop=self.dropout, layer_norm_epsilon=self.eps, attn_implementation="eager",
            # GPT-2's defaults (50256) lie outside a small vocabulary; the course's models have no such tokens.
            bos_token_id=None, eos_token_id=None)
        settings.update(overrides)
        return GPT2Config(**settings)


class MLP(nn.Module):
    """GPT-2's feed-forward network: `linear2(gelu_tanh(linear1(x)))`, `(..., d_model) -> (..., d_model)`."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        # GELU weighs x by the normal CDF Φ(x); GPT-2 used the tanh approximation of Φ, so must we
        # to be equal to its weights (the exact erf form differs by up to ~1e-3).
        return self.linear2(F.gelu(self.linear1(x), approximate="tanh"))


class GPTBlock(nn.Module):
    """A pre-LN decoder block without cross-attention: `x + attn(LN(x))`, then `x + mlp(LN(x))`.

    `forward(x (B, n, d_model), mask (n, n)) -> (B, n, d_model)`.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm1 = LayerNorm(config.d_model, config.eps)
        self.attention = MultiHeadAttention(config.d_model, config.num_heads, dropout=config.dropout)
        self.norm2 = LayerNorm(config.d_model, config.eps)
        self.mlp = MLP(config.d_model, config.hidden)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.dropout(self.attention(h, h, h, mask)[0])
        return x + self.dropout(self.mlp(self.norm2(x)))

    def step(
        self, x: Tensor, cache: tuple[Tensor, Tensor] | None, mask: Tensor
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """`forward` for m new tokens `x (B, m, d_model)` whose earlier keys and values are in `cache`."""
        attention = self.attention
        h = self.norm1(x)
        q, k, v = (split_heads(W(h), attention.num_heads) for W in (attention.W_q, attention.W_k, attention.W_v))
        k_cache, v_cache = cache if cache is not None else (None, None)
        out, k_cache, v_cache = cached_attention_step(q, k, v, k_cache, v_cache, mask)
        x = x + self.dropout(attention.W_o(merge_heads(out)))
        return x + self.dropout(self.mlp(self.norm2(x))), (k_cache, v_cache)


class GPT(nn.Module):
    """A decoder-only language model in GPT-2's layout (see the module docstring).

    `forward(tokens (B, n)) -> logits (B, n, vocab_size)`: the logits at position i score the
    token at position i + 1, having seen tokens 0..i only (the causal mask).
    `step(tokens (B, m), cache) -> (logits (B, m, vocab_size), cache)` does the same for m new
    tokens after the ones whose keys and values are cached (None: no tokens yet).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = nn.Embedding(config.max_len, config.d_model)  # learned, one row per position
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(GPTBlock(config) for _ in range(config.num_layers))
        self.norm = LayerNorm(config.d_model, config.eps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's initialisation: weights ~ N(0, 0.02²), biases 0, LayerNorms 1 and 0, and the
        projections that write into the residual stream scaled by 1/√(2 · num_layers), because
        each layer adds two of them to the stream and the sum's variance would grow with depth."""
        residual_std = 0.02 / math.sqrt(2 * self.config.num_layers)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif "norm" in name:
                nn.init.ones_(p)
            elif name.endswith(("W_o.weight", "linear2.weight")):
                nn.init.normal_(p, std=residual_std)
            else:
                nn.init.normal_(p, std=0.02)

    def _check_tokens(self, tokens: Tensor, start: int) -> None:
        require_tensor("tokens", tokens)
        if tokens.ndim != 2 or tokens.is_floating_point():
            raise ValueError(f"tokens: expected integer token ids of shape (B, n), got {format_shape(tokens.shape)} "
                             f"of dtype {tokens.dtype}")
        if start + tokens.shape[1] > self.config.max_len:
            raise ValueError(f"{start + tokens.shape[1]} tokens do not fit the model's max_len = {self.config.max_len}")

    def _embed(self, tokens: Tensor, start: int) -> Tensor:
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        return self.dropout(self.token_embedding(tokens) + self.position_embedding(positions))

    def logits(self, x: Tensor) -> Tensor:
        """Final LayerNorm, then the tied output layer: `x Eᵀ`, one score per vocabulary entry."""
        return F.linear(self.norm(x), self.token_embedding.weight)

    def forward(self, tokens: Tensor) -> Tensor:
        self._check_tokens(tokens, 0)
        x = self._embed(tokens, 0)
        mask = causal_mask(tokens.shape[1], device=tokens.device)
        for block in self.blocks:
            x = block(x, mask)
        return self.logits(x)

    def step(self, tokens: Tensor, cache: KVCache | None = None) -> tuple[Tensor, KVCache]:
        """Logits for m new tokens `(B, m)` that follow the t tokens in `cache`, and the extended cache.

        The new tokens sit at positions t..t+m-1; new token i may attend to every cached token and
        to new tokens 0..i, so a prompt can be fed at once and then one token per step.
        """
        start = 0 if cache is None else cache[0][0].shape[-2]
        self._check_tokens(tokens, start)
        m = tokens.shape[1]
        x = self._embed(tokens, start)
        # (m, t + m): key j is visible to new query i when j ≤ t + i.
        mask = torch.ones(m, start + m, dtype=torch.bool, device=tokens.device).tril(diagonal=start)
        new_cache: KVCache = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block.step(x, None if cache is None else cache[i], mask)
            new_cache.append(layer_cache)
        return self.logits(x), new_cache

    def num_parameters(self) -> int:
        """Number of parameters; the tied output layer is the token embedding, counted once."""
        return sum(p.numel() for p in self.parameters())

    @classmethod
    def from_hf(cls, model: GPT2LMHeadModel) -> GPT:
        """A copy of a Hugging Face `transformers.GPT2LMHeadModel` with the same weights, dtype, device and mode."""
        from transformers import GPT2LMHeadModel

        if not isinstance(model, GPT2LMHeadModel):
            raise TypeError(f"expected transformers.GPT2LMHeadModel, got {type(model).__name__}")
        hf = model.config
        unsupported = {
            "activation_function in ('gelu_new', 'gelu_pytorch_tanh')": hf.activation_function in ("gelu_new",
                                                                                              "gelu_pytorch_tanh"),
            "scale_attn_weights=True": hf.scale_attn_weights,
            "scale_attn_by_inverse_layer_idx=False": not hf.scale_attn_by_inverse_layer_idx,
            "tied embeddings": model.lm_head.weight is model.transformer.wte.weight,
            "lm_head without bias": model.lm_head.bias is None,
        }
        missing = [name for name, ok in unsupported.items() if not ok]
        if missing:
            raise ValueError(f"from_hf copies GPT-2 as published; this model lacks: {', '.join(missing)}")
        config = GPTConfig(vocab_size=hf.vocab_size, max_len=hf.n_positions, d_model=hf.n_embd,
                           num_layers=hf.n_layer, num_heads=hf.n_head, d_ff=hf.n_inner,
                           dropout=hf.resid_pdrop, eps=hf.layer_norm_epsilon)
        weight = model.transformer.wte.weight
        ours = cls(config).to(device=weight.device, dtype=weight.dtype)
        d = config.d_model
        with torch.no_grad():
            ours.token_embedding.weight.copy_(model.transformer.wte.weight)
            ours.position_embedding.weight.copy_(model.transformer.wpe.weight)
            for block, theirs in zip(ours.blocks, model.transformer.h):
                _copy_norm(block.norm1, theirs.ln_1)
                _copy_norm(block.norm2, theirs.ln_2)
                # c_attn: (d, 3d), columns [W_Q | W_K | W_V]; nn.Linear wants each as (out, in).
                w_q, w_k, w_v = theirs.attn.c_attn.weight.split(d, dim=1)
                b_q, b_k, b_v = theirs.attn.c_attn.bias.split(d)
                attention = block.attention
                for linear, w, b in ((attention.W_q, w_q, b_q), (attention.W_k, w_k, b_k), (attention.W_v, w_v, b_v),
                                     (attention.W_o, theirs.attn.c_proj.weight, theirs.attn.c_proj.bias),
                                     (block.mlp.linear1, theirs.mlp.c_fc.weight, theirs.mlp.c_fc.bias),
                                     (block.mlp.linear2, theirs.mlp.c_proj.weight, theirs.mlp.c_proj.bias)):
                    linear.weight.copy_(w.T)
                    linear.bias.copy_(b)
            _copy_norm(ours.norm, model.transformer.ln_f)
        return ours.train(model.training)


def _copy_norm(ours: LayerNorm, theirs: nn.LayerNorm) -> None:
    ours.weight.copy_(theirs.weight)
    ours.bias.copy_(theirs.bias)
    ours.eps = theirs.eps


def gpt2_small_parameter_count() -> int:
    """GPT-2 small's parameter count, computed on the `meta` device: shapes only, no memory, no download."""
    with torch.device("meta"):
        return GPT(GPTConfig.gpt2_small()).num_parameters()


# ---- the causal language-model objective, and training -----------------------------------------------------


def causal_lm_loss(logits: Tensor, tokens: Tensor) -> Tensor:
    """Mean cross-entropy of predicting each next token: logits `(B, n, n_vocab)` of `model(tokens)`, tokens `(B, n)`.

    The logits at position i predict token i + 1, so the last position has no target and the first
    token is never a target: the loss pairs `logits[:, :-1]` with `tokens[:, 1:]`.
    """
    require_tensor("logits", logits)
    require_tensor("tokens", tokens)
    if logits.ndim != 3 or tokens.shape != logits.shape[:2]:
        raise ValueError(f"expected logits (B, n, n_vocab) and tokens (B, n), got logits {format_shape(logits.shape)} "
                         f"and tokens {format_shape(tokens.shape)}")
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


@torch.no_grad()
def evaluate_lm(model: nn.Module, tokens: Tensor, batch_size: int = 256) -> float:
    """Mean next-token loss (nats) of `model` over the rows of `tokens (N, n)`, in eval mode."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, tokens.shape[0], batch_size):
        batch = tokens[start : start + batch_size]
        total += float(causal_lm_loss(model(batch), batch)) * batch.shape[0]
        count += batch.shape[0]
    model.train(was_training)
    return total / count


@dataclass
class TrainingLog:
    """What `train_lm` measured: validation losses at `steps`, and the wall-clock seconds it took."""

    steps: list[int]
    val_losses: list[float]
    seconds: float


def train_lm(
    model: nn.Module,
    sample_batch: Callable[[int], Tensor],
    val_tokens: Tensor | None,
    steps: int,
    lr: float = 3e-3,
    warmup_steps: int = 50,
    eval_every: int = 50,
    weight_decay: float = 0.0,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = causal_lm_loss,
    callback: Callable[[int], None] | None = None,
) -> TrainingLog:
    """Train a language model `model(tokens (B, n)) -> logits (B, n, n_vocab)` with AdamW for `steps` steps.

    `sample_batch(step)` returns the step's `(B, n)` token rows (for example fresh rows of the
    corpus, so the model never sees the same text twice and cannot overfit). The learning rate
    rises linearly for `warmup_steps`, then decays linearly to 0. The optimizer is AdamW with betas
    0.9 and 0.95 (torch's default second beta is 0.999) and, unless asked, no weight decay; before
    each update the gradients are clipped to a total norm of 1. The validation loss over
    `val_tokens` (None: not measured) is measured before training, every `eval_every` steps and
    after the last; `callback(step)` runs at the same steps (0 first) for other measurements, the
    model put back in train mode after it.
    """
    # foreach: all the parameters at once, the CPU's default per-tensor arithmetic in less time (same weights).
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay,
                                  foreach=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear_decay(warmup_steps, steps))
    log = TrainingLog(steps=[], val_losses=[], seconds=0.0)

    def validate(step: int) -> None:
        log.steps.append(step)
        if val_tokens is not None:
            log.val_losses.append(evaluate_lm(model, val_tokens))
        if callback is not None:
            callback(step)
        model.train()

    validate(0)
    began = time.perf_counter()
    for step in range(1, steps + 1):
        batch = sample_batch(step)
        loss = loss_fn(model(batch), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if step % eval_every == 0 or step == steps:
            validate(step)
    log.seconds = time.perf_counter() - began
    model.eval()
    return log
