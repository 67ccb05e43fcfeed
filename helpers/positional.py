"""Positional information (notebook 06).

Attention is permutation-equivariant: shuffle the tokens and the outputs shuffle the same
way, so without help a Transformer cannot tell "dog bites man" from "man bites dog". The
paper adds a fixed sinusoidal code to each token's embedding:

    PE[pos, 2i]     = sin(pos / 10000^(2i / d_model))
    PE[pos, 2i + 1] = cos(pos / 10000^(2i / d_model))
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from helpers.tensors import require_activations, require_int


def sinusoidal_positional_encoding(
    n: int, d_model: int, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> Tensor:
    """`(n, d_model)`: row `pos` is the code of position `pos`; sin in even, cos in odd columns.

    Column pair (2i, 2i + 1) oscillates with wavelength 2π · base^(2i / d_model), from 2π
    (fast) to 2π · base (slow), so every position gets a distinct code and nearby positions
    get similar ones.
    """
    require_int("n", n)
    if require_int("d_model", d_model) % 2:
        raise ValueError(f"d_model must be a positive even int, got {d_model!r}")
    position = torch.arange(n, dtype=torch.float64).unsqueeze(1)  # (n, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (d_model / 2,)
    angle = position / base ** (two_i / d_model)  # (n, d_model / 2)
    pe = torch.empty(n, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.to(dtype)


def _positions(x: object, d_model: int, start: int, max_len: int) -> slice:
    """The positions `start ... start + n - 1` of the n tokens in `x (B, n, d_model)`, all below `max_len`."""
    n = require_activations("x", x, d_model).shape[1]
    require_int("start", start, minimum=0)
    if start + n > max_len:
        raise ValueError(f"sequence of {start + n} tokens is longer than max_len = {max_len}")
    return slice(start, start + n)


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal code to embeddings `(B, n, d_model)`, then dropout (as in the paper).

    `forward(x, start=0)`: the tokens of `x` sit at positions `start, start + 1, ...`, so a
    decoder that feeds one new token at a time (the KV cache of notebook 10) passes its position.
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.1) -> None:
        super().__init__()
        self.d_model = d_model
        self.dropout = nn.Dropout(dropout)
        # A buffer: saved with the model and moved with .to(device), but not trained.
        self.register_buffer("pe", sinusoidal_positional_encoding(max_len, d_model), persistent=False)

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        positions = _positions(x, self.d_model, start, self.pe.shape[0])
        return self.dropout(x + self.pe[positions].to(x.dtype))


class LearnedPositionalEmbedding(nn.Module):
    """The alternative: one trained vector per position (BERT, GPT-2), added like the sinusoidal code.

    It can fit whatever the task needs, but knows nothing about positions beyond `max_len`.
    `forward(x, start=0)` as for `PositionalEncoding`.
    """

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.1) -> None:
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=1 / math.sqrt(d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        positions = _positions(x, self.d_model, start, self.embedding.num_embeddings)
        return self.dropout(x + self.embedding(torch.arange(positions.start, positions.stop, device=x.device)))
