"""Tiny tasks that one layer learns in seconds (notebooks 07 and 08): the learner sees their own layer train.

    counting_task, train_counter      07  an encoder layer counts how often each token occurs in its sentence
    reversal_task, train_reverser     08  a decoder layer writes its source backwards, through cross-attention

Both tasks need attention: a token's count depends on every other token; the i-th output token of the
reversal sits at position n - 1 - i of the source, which only cross-attention can fetch. A layer class
that fails its check is swapped for helpers' reference (`choose`), so a blank workbook still runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from helpers.attention import causal_mask, padding_mask
from helpers.positional import PositionalEncoding
from helpers.transformer import EncoderLayer


def choose(candidate: object, check: Callable[[object], object], reference: type[nn.Module]) -> tuple[type, str]:
    """The learner's class if it passes `check`, else `reference`; and one line that says which it is."""
    name = reference.__name__
    try:
        passed = bool(getattr(check(candidate), "passed", False))
    except Exception:  # a check that raises (nbgrader's validate mode) counts as not passed
        passed = False
    if passed and isinstance(candidate, type):
        return candidate, f"Training your own {name} (it passed its check)."
    return reference, (f"Your {name} does not pass its check yet, so this trains helpers.transformer.{name}, "
                       "the course's reference, instead.")


@dataclass(frozen=True)
class Trained:
    """What a toy training run reached: the loss before and after, and the accuracy on new sentences."""

    first_loss: float
    last_loss: float
    accuracy: float
    steps: int


def _classify(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Cross-entropy of `(B, n, classes)` logits against `(B, n)` labels, and which predictions are right."""
    return nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten()), logits.argmax(-1) == target


def _fit(build: Callable[[], nn.Module], batch: Callable[[torch.Generator], tuple[Tensor, ...]],
         loss_and_hits: Callable[[nn.Module, tuple[Tensor, ...]], tuple[Tensor, Tensor]], steps: int, lr: float,
         seed: int) -> Trained:
    """Build the model from `seed` and train it with Adam on fresh random batches; then the accuracy on
    4 new batches in eval(). The caller's random streams are left alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)  # as helpers.training: same weights, faster
    losses = []
    model.train()
    for _ in range(steps):
        loss, _ = loss_and_hits(model, batch(g))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    hits = total = 0
    with torch.no_grad():
        for _ in range(4):
            _, correct = loss_and_hits(model, batch(g))
            hits, total = hits + int(correct.sum()), total + correct.numel()
    return Trained(sum(losses[:10]) / 10, sum(losses[-10:]) / 10, hits / total, steps)


# ---- 07: counting ------------------------------------------------------------------------------------


def counting_task(g: torch.Generator, batch: int = 64, n: int = 6, vocab: int = 4) -> tuple[Tensor, Tensor]:
    """Token ids `(batch, n)` in 0..vocab-1, and for each token how often it occurs in its sentence `(batch, n)`."""
    tokens = torch.randint(0, vocab, (batch, n), generator=g)
    counts = (tokens[:, :, None] == tokens[:, None, :]).sum(dim=-1)  # (batch, n), 1..n
    return tokens, counts


class Counter(nn.Module):
    """Embedding -> one encoder layer (any class with EncoderLayer's interface) -> a classifier over counts."""

    def __init__(self, layer_class: type, vocab: int = 4, n: int = 6, d_model: int = 32, num_heads: int = 4) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, d_model)
        self.layer = layer_class(d_model, num_heads, 2 * d_model, dropout=0.0)
        self.output = nn.Linear(d_model, n + 1)

    def forward(self, tokens: Tensor) -> Tensor:
        """`(B, n)` token ids -> `(B, n, n + 1)` logits of each token's count. No positions: counting needs none."""
        return self.output(self.layer(self.embedding(tokens)))


def train_counter(layer_class: type, steps: int = 200, lr: float = 1e-2, seed: int = 0) -> Trained:
    """Train a `Counter` built on `layer_class` from `seed`; the accuracy is per token, on new sentences."""
    return _fit(lambda: Counter(layer_class), counting_task, lambda model, b: _classify(model(b[0]), b[1]),
                steps, lr, seed)


# ---- 08: reversal ------------------------------------------------------------------------------------

BOS = 1  # ids: 0 padding, 1 begin-of-sentence, 2.. the words


def reversal_task(g: torch.Generator, batch: int = 64, n: int = 6, words: int = 8) -> tuple[Tensor, Tensor]:
    """Source ids `(batch, n)` in 2..words+1, and the target: the source backwards `(batch, n)`."""
    src = torch.randint(2, 2 + words, (batch, n), generator=g)
    return src, src.flip(1)


class Reverser(nn.Module):
    """helpers' encoder layer reads the source; one decoder layer (any class with DecoderLayer's interface)
    writes the target, with teacher forcing: its input is the target shifted right, starting with BOS."""

    def __init__(self, layer_class: type, words: int = 8, d_model: int = 32, num_heads: int = 4) -> None:
        super().__init__()
        # Unscaled embeddings (std 1) next to the positional code (amplitude 1): both must be readable.
        self.embedding = nn.Embedding(words + 2, d_model)  # shared by source and target
        self.positional = PositionalEncoding(d_model, max_len=32, dropout=0.0)
        self.encoder = EncoderLayer(d_model, num_heads, 2 * d_model, dropout=0.0)
        self.decoder = layer_class(d_model, num_heads, 2 * d_model, dropout=0.0)
        self.output = nn.Linear(d_model, words + 2)

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """`src (B, n_s)`, `tgt (B, n_t)` decoder input -> logits `(B, n_t, words + 2)`."""
        src_mask = padding_mask(src, 0)
        memory = self.encoder(self.positional(self.embedding(src)), src_mask)
        y = self.positional(self.embedding(tgt))
        return self.output(self.decoder(y, memory, causal_mask(tgt.shape[1]), src_mask))


def _reverse_loss(model: nn.Module, batch: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
    src, target = batch
    decoder_input = torch.cat([torch.full_like(target[:, :1], BOS), target[:, :-1]], dim=1)
    return _classify(model(src, decoder_input), target)


def train_reverser(layer_class: type, steps: int = 80, lr: float = 1e-2, seed: int = 0) -> Trained:
    """Train a `Reverser` with `layer_class` as its decoder layer; accuracy per token (teacher forcing)."""
    return _fit(lambda: Reverser(layer_class), reversal_task, _reverse_loss, steps, lr, seed)
