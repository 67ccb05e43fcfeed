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

from helpers.tensors import format_shape, require_tensor


def sinusoidal_positional_encoding(
    n: int, d_model: int, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> Tensor:
    """`(n, d_model)`: row `pos` is the code of position `pos`; sin in even, cos in odd columns.

    Column pair (2i, 2i + 1) oscillates with wavelength 2π · base^(2i / d_model), from 2π
    (fast) to 2π · base (slow), so every position gets a distinct code and nearby positions
    get similar ones.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if isinstance(d_model, bool) or not isinstance(d_model, int) or d_model < 2 or d_model % 2:
        raise ValueError(f"d_model must be a positive even int, got {d_model!r}")
    position = torch.arange(n, dtype=torch.float64).unsqueeze(1)  # (n, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (d_model / 2,)
    angle = position / base ** (two_i / d_model)  # (n, d_model / 2)
    pe = torch.empty(n, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.to(dtype)


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal code to embeddings `(B, n, d_model)`, then dropout (as in the paper)."""

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.1) -> None:
        super().__init__()
        self.d_model = d_model
        self.dropout = nn.Dropout(dropout)
        # A buffer: saved with the model and moved with .to(device), but not trained.
        self.register_buffer("pe", sinusoidal_positional_encoding(max_len, d_model), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        require_tensor("x", x)
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x: expected shape (B, n, d_model={self.d_model}), got {format_shape(x.shape)}")
        if x.shape[1] > self.pe.shape[0]:
            raise ValueError(f"sequence of {x.shape[1]} tokens is longer than max_len = {self.pe.shape[0]}")
        return self.dropout(x + self.pe[: x.shape[1]].to(x.dtype))


class LearnedPositionalEmbedding(nn.Module):
    """The alternative: one trained vector per position (BERT, GPT-2), added like the sinusoidal code.

    It can fit whatever the task needs, but knows nothing about positions beyond `max_len`.
    """

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.1) -> None:
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=1 / math.sqrt(d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        require_tensor("x", x)
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x: expected shape (B, n, d_model={self.d_model}), got {format_shape(x.shape)}")
        if x.shape[1] > self.embedding.num_embeddings:
            raise ValueError(
                f"sequence of {x.shape[1]} tokens is longer than max_len = {self.embedding.num_embeddings}"
            )
        positions = torch.arange(x.shape[1], device=x.device)
        return self.dropout(x + self.embedding(positions))
