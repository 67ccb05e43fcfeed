"""The Transformer of "Attention Is All You Need", built from the course's pieces (notebooks 07-09).

    LayerNorm, FeedForward                       (07)
    EncoderLayer, Encoder                         (07)
    DecoderLayer, Decoder                         (08)
    Transformer, greedy decoding                  (09)

Batch-first throughout: tokens `(B, n)`, activations `(B, n, d_model)`. Masks are boolean
with True = may attend. `norm_first=False` is the paper's post-LN block,
`x = norm(x + sublayer(x))`; `norm_first=True` is pre-LN, `x = x + sublayer(norm(x))`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from helpers.attention import MultiHeadAttention, causal_mask, padding_mask
from helpers.data import PAD
from helpers.positional import PositionalEncoding
from helpers.tensors import format_shape, require_activations, require_tensor


class LayerNorm(nn.Module):
    """Normalise each token's vector over its d_model features, then scale and shift.

    `y = (x - mean) / sqrt(var + eps) * gamma + beta`, with the biased variance (divide by
    d_model), exactly as `nn.LayerNorm(d_model)`.
    """

    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))  # gamma
        self.bias = nn.Parameter(torch.zeros(d_model))  # beta

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = (x - mean).square().mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class FeedForward(nn.Module):
    """The position-wise network: `linear2(dropout(relu(linear1(x))))`, the same for every token.

    `(..., d_model) -> (..., d_model)`, any number of leading dimensions (a single token too); any `d_ff`;
    dropout on the hidden activations, in `train()` only.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(torch.relu(self.linear1(x))))


def _check_torch_layer(layer: nn.Module, kind: type) -> None:
    if not isinstance(layer, kind):
        raise TypeError(f"expected torch.nn.{kind.__name__}, got {type(layer).__name__}")
    attention = layer.self_attn
    if not attention.batch_first:
        raise ValueError(f"from_torch copies {kind.__name__}(..., batch_first=True)")
    if not (layer.activation is torch.nn.functional.relu or isinstance(layer.activation, nn.ReLU)):
        raise ValueError(f"from_torch copies {kind.__name__} with activation='relu' (the paper's)")


def _copy_linear_and_norms(ours: nn.Module, theirs: nn.Module, norms: list[str]) -> None:
    with torch.no_grad():
        for name in ("linear1", "linear2"):
            getattr(ours.feed_forward, name).weight.copy_(getattr(theirs, name).weight)
            getattr(ours.feed_forward, name).bias.copy_(getattr(theirs, name).bias)
        for name in norms:
            getattr(ours, name).weight.copy_(getattr(theirs, name).weight)
            getattr(ours, name).bias.copy_(getattr(theirs, name).bias)
            getattr(ours, name).eps = getattr(theirs, name).eps


def _layer_from_torch(cls: type, layer: nn.Module, kind: type, norms: list[str]) -> nn.Module:
    """Build `cls` with `layer`'s sizes, dtype, device and mode, and copy its self-attention,
    feed-forward network and norms (the decoder adds its cross-attention)."""
    _check_torch_layer(layer, kind)
    attention = layer.self_attn
    ours = cls(attention.embed_dim, attention.num_heads, layer.linear1.out_features, layer.dropout.p,
               layer.norm_first)
    # Match dtype and device before copying, or float64 weights would pass through float32.
    ours = ours.to(device=layer.linear1.weight.device, dtype=layer.linear1.weight.dtype)
    ours.self_attention = MultiHeadAttention.from_torch(attention)
    _copy_linear_and_norms(ours, layer, norms)
    return ours.train(layer.training)


class EncoderLayer(nn.Module):
    """Self-attention and a feed-forward network, each wrapped in a residual connection and LayerNorm.

    `forward(x (B, n, d_model), mask=None) -> (B, n, d_model)`; `mask` (True = may attend) is the
    source padding mask `(B, 1, n)`, whose padding may sit at the end or at the start of a row, or
    one row per query `(B, n, n)`, or None (no padding). Dropout (0.1 by default) acts on each
    sub-layer's output and, inside the attention, on its weights.
    """

    def __init__(
        self, d_model: int = 512, num_heads: int = 8, d_ff: int = 2048, dropout: float = 0.1, norm_first: bool = False
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.norm_first = norm_first
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def _attend(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return self.dropout1(self.self_attention(x, x, x, mask)[0])

    def _feed_forward(self, x: Tensor) -> Tensor:
        return self.dropout2(self.feed_forward(x))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        require_activations("x", x, self.d_model)
        if self.norm_first:
            x = x + self._attend(self.norm1(x), mask)
            return x + self._feed_forward(self.norm2(x))
        x = self.norm1(x + self._attend(x, mask))
        return self.norm2(x + self._feed_forward(x))

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> EncoderLayer:
        """A copy of `nn.TransformerEncoderLayer(batch_first=True)` with the same weights."""
        return _layer_from_torch(cls, layer, nn.TransformerEncoderLayer, ["norm1", "norm2"])


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention on the encoder's output, and a feed-forward network.

    `forward(y (B, n_t, d_model), memory (B, n_s, d_model), tgt_mask=None, src_mask=None)`.
    `tgt_mask` is causal, `(n_t, n_t)`, or causal and the target padding, `(B, n_t, n_t)`; `src_mask`
    is the source padding `(B, 1, n_s)` (at the end or the start of a row): the mask the encoder's
    self-attention used, now keeping the queries off the padding in `memory`. Either may be None.
    The last cross-attention weights `(B, h, n_t, n_s)` are kept in `cross_weights` for plots.
    """

    def __init__(
        self, d_model: int = 512, num_heads: int = 8, d_ff: int = 2048, dropout: float = 0.1, norm_first: bool = False
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.norm_first = norm_first
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.cross_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.norm3 = LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.cross_weights: Tensor | None = None

    def _cross_attend(self, y: Tensor, memory: Tensor, src_mask: Tensor | None) -> Tensor:
        # Queries from the decoder, keys and values from the encoder.
        out, weights = self.cross_attention(y, memory, memory, src_mask)
        self.cross_weights = weights.detach()
        return out

    def forward(
        self,
        y: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        src_mask: Tensor | None = None,
        *,
        memory_mask: Tensor | None = None,
    ) -> Tensor:
        """`memory_mask` is the former name of `src_mask`, still accepted as a keyword."""
        require_activations("y", y, self.d_model)
        require_activations("memory", memory, self.d_model)
        if memory_mask is not None:
            if src_mask is not None:
                raise ValueError("pass the source padding mask once, as src_mask (memory_mask is its former name)")
            src_mask = memory_mask
        return self.sublayers(
            y, lambda x: self.self_attention(x, x, x, tgt_mask)[0], lambda x: self._cross_attend(x, memory, src_mask)
        )

    def sublayers(self, y: Tensor, self_attend: Callable[[Tensor], Tensor],
                  cross_attend: Callable[[Tensor], Tensor]) -> Tensor:
        """The layer's wiring: its three sublayers, each with dropout, a residual connection and a norm.

        `self_attend` and `cross_attend` map `(B, n_t, d_model)` to `(B, n_t, d_model)`. `forward`
        passes the layer's two attentions; the KV-cache decoder (`helpers.efficient`) passes
        cached versions of them for the newest token, and so runs exactly this wiring.
        """
        if self.norm_first:
            y = y + self.dropout1(self_attend(self.norm1(y)))
            y = y + self.dropout2(cross_attend(self.norm2(y)))
            return y + self.dropout3(self.feed_forward(self.norm3(y)))
        y = self.norm1(y + self.dropout1(self_attend(y)))
        y = self.norm2(y + self.dropout2(cross_attend(y)))
        return self.norm3(y + self.dropout3(self.feed_forward(y)))

    @classmethod
    def from_torch(cls, layer: nn.TransformerDecoderLayer) -> DecoderLayer:
        """A copy of `nn.TransformerDecoderLayer(batch_first=True)` with the same weights."""
        ours = _layer_from_torch(cls, layer, nn.TransformerDecoderLayer, ["norm1", "norm2", "norm3"])
        ours.cross_attention = MultiHeadAttention.from_torch(layer.multihead_attn)
        return ours


class Encoder(nn.Module):
    """A stack of encoder layers (pre-LN stacks end with a final LayerNorm, as their outputs are unnormalised)."""

    def __init__(self, num_layers: int, d_model: int, num_heads: int, d_ff: int, dropout: float,
                 norm_first: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, num_heads, d_ff, dropout, norm_first) for _ in range(num_layers)
        )
        self.norm = LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class Decoder(nn.Module):
    """A stack of decoder layers, each attending to the same encoder output (memory)."""

    def __init__(self, num_layers: int, d_model: int, num_heads: int, d_ff: int, dropout: float,
                 norm_first: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, num_heads, d_ff, dropout, norm_first) for _ in range(num_layers)
        )
        self.norm = LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, y: Tensor, memory: Tensor, tgt_mask: Tensor | None = None,
                src_mask: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            y = layer(y, memory, tgt_mask, src_mask)
        return self.norm(y)


class Transformer(nn.Module):
    """The encoder-decoder Transformer; the defaults are the paper's base model.

    `forward(src (B, n_s), tgt (B, n_t)) -> logits (B, n_t, tgt_vocab_size)`: the decoder reads
    `tgt` (teacher forcing: the target shifted right, starting with BOS) and predicts, at each
    position, the next token. `share_embeddings=True` ties the source embedding, the target
    embedding and the output projection to one matrix, as the paper does (this needs one
    shared vocabulary); the output layer keeps its own bias, tied or not. Padding is the token
    `pad_id` (any id), anywhere in a source row, at its start too; a target row starts with BOS
    and its padding follows its real tokens. The embedding table starts at N(0, 1/d_model), not
    `nn.Embedding`'s N(0, 1), so that × √d_model brings it to the positional code's size.
    `causal=False` drops the decoder's causal mask: a deliberate bug that notebook 09 studies.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        d_model: int = 512,
        num_heads: int = 8,
        num_layers: int = 6,
        d_ff: int = 2048,
        dropout: float = 0.1,
        share_embeddings: bool = False,
        *,
        norm_first: bool = False,
        pad_id: int = PAD,
        max_len: int = 512,
        causal: bool = True,
    ) -> None:
        super().__init__()
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError(
                f"share_embeddings=True needs one shared vocabulary, got src_vocab_size={src_vocab_size} "
                f"and tgt_vocab_size={tgt_vocab_size}"
            )
        self.d_model = d_model
        self.pad_id = pad_id
        self.causal = causal
        self.src_embedding = nn.Embedding(src_vocab_size, d_model)
        self.tgt_embedding = self.src_embedding if share_embeddings else nn.Embedding(tgt_vocab_size, d_model)
        self.positional = PositionalEncoding(d_model, max_len, dropout)
        self.encoder = Encoder(num_layers, d_model, num_heads, d_ff, dropout, norm_first)
        self.decoder = Decoder(num_layers, d_model, num_heads, d_ff, dropout, norm_first)
        self.output = nn.Linear(d_model, tgt_vocab_size)
        for name, p in self.named_parameters():
            if p.dim() > 1 and "embedding" not in name:
                nn.init.xavier_uniform_(p)
        # Embeddings are multiplied by √d_model, so they start with standard deviation 1/√d_model.
        nn.init.normal_(self.src_embedding.weight, std=d_model**-0.5)
        if not share_embeddings:
            nn.init.normal_(self.tgt_embedding.weight, std=d_model**-0.5)
        if share_embeddings:
            self.output.weight = self.src_embedding.weight

    def embed(self, embedding: nn.Embedding, tokens: Tensor, start: int = 0) -> Tensor:
        """Token ids `(B, n)` -> `(B, n, d_model)`: embeddings × √d_model plus the positional code of
        positions `start ... start + n - 1` (`start > 0` when a decoder feeds one new token at a time)."""
        return self.positional(embedding(tokens) * math.sqrt(self.d_model), start)

    def target_mask(self, tgt: Tensor) -> Tensor:
        """`(B, n_t, n_t)`: no attention to target padding, nor (if `causal`) to later positions."""
        tgt_mask = padding_mask(tgt, self.pad_id)
        if self.causal:
            tgt_mask = tgt_mask & causal_mask(tgt.shape[1], device=tgt.device)
        return tgt_mask

    def masks(self, src: Tensor, tgt: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """`src_mask (B, 1, n_s)` (no attention to padding), `tgt_mask (B, n_t, n_t)` (causal and no padding)."""
        return padding_mask(src, self.pad_id), None if tgt is None else self.target_mask(tgt)

    def encode(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        if src_mask is None:
            src_mask = self.masks(src)[0]
        return self.encoder(self.embed(self.src_embedding, src), src_mask)

    def decode(self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None, src_mask: Tensor | None) -> Tensor:
        """Decoder states -> logits `(B, n_t, tgt_vocab_size)`."""
        y = self.decoder(self.embed(self.tgt_embedding, tgt), memory, tgt_mask, src_mask)
        return self.output(y)

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        for name, tokens in (("src", src), ("tgt", tgt)):
            require_tensor(name, tokens)
            if tokens.ndim != 2:
                raise ValueError(f"{name}: expected token ids of shape (B, n), got {format_shape(tokens.shape)}")
        src_mask, tgt_mask = self.masks(src, tgt)
        memory = self.encode(src, src_mask)
        return self.decode(tgt, memory, tgt_mask, src_mask)

    @torch.no_grad()
    def greedy_decode(self, src: Tensor, bos_id: int, eos_id: int, max_len: int) -> Tensor:
        """Generate up to `max_len` tokens per source sentence, one at a time, always taking the most
        likely next token. Returns `(B, n)` starting with BOS; after EOS a row is padded."""
        src_mask, _ = self.masks(src)
        memory = self.encode(src, src_mask)

        def next_logits(out: Tensor) -> Tensor:
            return self.decode(out, memory, self.target_mask(out), src_mask)[:, -1]

        return greedy_tokens(next_logits, src, bos_id, eos_id, self.pad_id, max_len)


def greedy_tokens(
    next_logits: Callable[[Tensor], Tensor], src: Tensor, bos_id: int, eos_id: int, pad_id: int, max_len: int
) -> Tensor:
    """Greedy decoding's loop, shared by the decoders with and without a KV cache.

    `next_logits(out (B, t)) -> (B, vocab)` scores the token that follows `out`. Starting from
    BOS, the most likely token is appended, PAD for rows that already ended with EOS, until
    every row has ended or `max_len` tokens were generated. Returns `(B, n)`, BOS first.
    """
    out = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
    finished = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        next_token = next_logits(out).argmax(dim=-1).masked_fill(finished, pad_id)
        out = torch.cat([out, next_token.unsqueeze(1)], dim=1)
        finished = finished | (next_token == eos_id)
        if finished.all():
            break
    return out
