"""Reading attention: what trained heads do, found by scores and proven by intervention (notebook 14).

Three tools, for any model built from the course's `MultiHeadAttention` (notebook 11's GPT, the
attention-only model below):

- `attention_maps(model, tokens)`: every head's weights `(layers, B, h, n, n)`, read by forward hooks;
- pattern scores of a map `(..., n, n) -> (...)`: `previous_token_score`, `first_position_score`,
  `self_score`, `same_token_score`, `induction_score`;
- `ablate_head(attention, head)` and `ablated(model, heads)`: zero chosen heads' outputs **before** the
  output projection W_O (a forward pre-hook on W_O), so the loss without a head is measured, not guessed.

The induction task: rows `[BOS, s, s]`, a random segment s of L tokens written twice. The first copy
is unpredictable (loss log V); in the second, a model that looks up "what followed this token last
time" predicts every token but the first. A two-layer attention-only model (`AttentionOnly`) learns
that with two heads: a previous-token head in layer 0 and an induction head in layer 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from helpers.attention import MultiHeadAttention, causal_mask
from helpers.corpus import Corpus
from helpers.gpt import GPT, GPTConfig, train_lm
from helpers.tensors import format_shape, require_tensor
from helpers.transformer import LayerNorm

# ---- the repeated-segment task -------------------------------------------------------------------------------


def repeated_segments(num_rows: int, segment_length: int, vocab_size: int, seed: int = 0) -> Tensor:
    """Rows `[BOS, s, s]` `(num_rows, 2 L + 1)`: id 0 is BOS, the segment s draws L ids from 1 … vocab_size − 1."""
    if segment_length < 2 or vocab_size < 3:
        raise ValueError(f"need segment_length >= 2 and vocab_size >= 3, got {segment_length} and {vocab_size}")
    g = torch.Generator().manual_seed(seed)
    segment = torch.randint(1, vocab_size, (num_rows, segment_length), generator=g)
    bos = torch.zeros(num_rows, 1, dtype=torch.long)
    return torch.cat([bos, segment, segment], dim=1)


def periodic_segments(num_rows: int, length: int, vocab_size: int, periods: tuple[int, int], seed: int = 0) -> Tensor:
    """Training rows `(num_rows, length)`: BOS, then a random segment repeated (cut at the end) to fill the row.

    Each row draws its own period L in `periods` (inclusive), so a position alone never says where the
    earlier copy of its token is: only the tokens do, and only an induction mechanism can use them.
    """
    low, high = periods
    if not 2 <= low <= high < length - 1 or vocab_size < 3:
        raise ValueError(f"need 2 <= periods[0] <= periods[1] < length - 1 and vocab_size >= 3, got "
                         f"periods {periods}, length {length}, vocab_size {vocab_size}")
    g = torch.Generator().manual_seed(seed)
    L = torch.randint(low, high + 1, (num_rows, 1), generator=g)
    segment = torch.randint(1, vocab_size, (num_rows, high), generator=g)
    where = torch.arange(length - 1)[None, :] % L  # (num_rows, length - 1): position in the segment
    rows = segment.gather(1, where)
    return torch.cat([torch.zeros(num_rows, 1, dtype=torch.long), rows], dim=1)


def copy_losses(model: nn.Module, tokens: Tensor) -> tuple[float, float]:
    """Mean next-token loss (nats) on the first copy and on the second copy (its first token excluded).

    tokens `(B, 2 L + 1)` from `repeated_segments`. First copy: the targets at positions 1 … L.
    Second copy: positions L + 2 … 2 L, every token that has been seen before with its successor.
    """
    require_tensor("tokens", tokens)
    n = tokens.shape[-1]
    if tokens.ndim != 2 or n % 2 == 0 or n < 5:
        raise ValueError(f"tokens: expected rows [BOS, s, s] of shape (B, 2 L + 1), got {format_shape(tokens.shape)}")
    L = (n - 1) // 2
    with torch.no_grad():
        logits = model(tokens)
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")  # (B, n - 1)
    # losses[:, t] scores the token at position t + 1.
    return losses[:, 0:L].mean().item(), losses[:, L + 1 :].mean().item()


# ---- a two-layer attention-only model ------------------------------------------------------------------------


class AttentionOnly(nn.Module):
    """A GPT without MLPs: token + position embedding, `num_layers × [x = x + attention(LN(x))]`, LN, unembedding.

    `forward(tokens (B, n)) -> logits (B, n, vocab_size)`. Everything it computes passes through
    attention heads, so what it learns must be done by them.
    """

    def __init__(self, vocab_size: int, max_len: int, d_model: int = 64, num_layers: int = 2,
                 num_heads: int = 4) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(max_len, d_model)
        self.norms = nn.ModuleList(LayerNorm(d_model) for _ in range(num_layers))
        self.attentions = nn.ModuleList(MultiHeadAttention(d_model, num_heads) for _ in range(num_layers))
        self.norm = LayerNorm(d_model)
        self.unembed = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, tokens: Tensor) -> Tensor:
        n = tokens.shape[1]
        x = self.token_embedding(tokens) + self.position_embedding(torch.arange(n, device=tokens.device))
        mask = causal_mask(n, device=tokens.device)
        for norm, attention in zip(self.norms, self.attentions):
            h = norm(x)
            x = x + attention(h, h, h, mask)[0]
        return self.unembed(self.norm(x))


@dataclass
class InductionRun:
    """A trained `AttentionOnly` model, its copy losses `(first, second)` at `steps`, and the seconds it took."""

    model: AttentionOnly
    steps: list[int]
    first_copy: list[float]
    second_copy: list[float]
    seconds: float

    def drop_step(self) -> int:
        """The first measured step where the second copy's loss is below half the first copy's."""
        for step, first, second in zip(self.steps, self.first_copy, self.second_copy):
            if second < first / 2:
                return step
        raise ValueError("the second copy's loss never fell below half the first copy's")


def train_induction(seed: int = 0, steps: int = 300, vocab_size: int = 64,
                    batch_size: int = 32, lr: float = 1e-2, eval_every: int = 10, length: int = 33,
                    periods: tuple[int, int] = (4, 16)) -> InductionRun:
    """Train a two-layer, four-heads-per-layer `AttentionOnly` model on fresh `periodic_segments` rows.

    Each row is `length` tokens long with its own period in `periods`; its layers keep torch's default
    initialisation. The copy losses are measured on rows `[BOS, s, s]` with a segment of 12 tokens.
    AdamW (betas 0.9, 0.95), a linear warm-up over the first 10 % of the steps then a linear decay to 0,
    gradients clipped to norm 1; the loss is the causal LM loss over the whole row. The copy losses on
    256 fixed validation rows (seed 10,000 + seed) are measured before training and every `eval_every` steps.
    """
    torch.manual_seed(seed)
    model = AttentionOnly(vocab_size, length)
    val = repeated_segments(256, 12, vocab_size, seed=10_000 + seed)
    run = InductionRun(model, [], [], [], 0.0)

    def measure(step: int) -> None:
        first, second = copy_losses(model.eval(), val)
        run.steps.append(step)
        run.first_copy.append(first)
        run.second_copy.append(second)

    # Step k (from 1) trains on the rows of seed seed · 100,000 + k − 1: fresh rows every step.
    log = train_lm(model, lambda step: periodic_segments(batch_size, length, vocab_size, periods,
                                                         seed=seed * 100_000 + step - 1),
                   None, steps, lr=lr, warmup_steps=max(1, steps // 10), eval_every=eval_every, callback=measure)
    run.seconds = log.seconds
    return run


# ---- reading the maps ------------------------------------------------------------------------------------------


def attention_modules(model: nn.Module) -> list[MultiHeadAttention]:
    """The model's `MultiHeadAttention` modules (any class with W_o and num_heads), in the order they run."""
    found = [m for m in model.modules() if hasattr(m, "W_o") and hasattr(m, "num_heads")]
    if not found:
        raise ValueError(f"{type(model).__name__} has no attention module with W_o and num_heads")
    return found


def attention_maps(model: nn.Module, tokens: Tensor) -> Tensor:
    """Every head's attention weights on `tokens (B, n)`: `(num_layers, B, h, n, n)`, read by forward hooks."""
    maps: list[Tensor] = []
    handles = [m.register_forward_hook(lambda _m, _args, out: maps.append(out[1].detach()))
               for m in attention_modules(model)]
    try:
        with torch.no_grad():
            model(tokens)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(maps)


def _require_maps(weights: Tensor) -> int:
    require_tensor("weights", weights)
    if weights.ndim < 2 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"weights: expected attention maps (..., n, n), got {format_shape(weights.shape)}")
    return weights.shape[-1]


def previous_token_score(weights: Tensor) -> Tensor:
    """Mean weight a query puts on the token just before it: `(..., n, n) -> (...)`, over queries 1 … n − 1."""
    _require_maps(weights)
    return weights.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=-1)


def self_score(weights: Tensor) -> Tensor:
    """Mean weight a query puts on itself (the diagonal), over queries 1 … n − 1: `(..., n, n) -> (...)`.

    Query 0 is left out, as in the other scores: under the causal mask it can look only at itself (weight 1).
    """
    _require_maps(weights)
    return weights.diagonal(dim1=-2, dim2=-1)[..., 1:].mean(dim=-1)


def first_position_score(weights: Tensor) -> Tensor:
    """Mean weight on position 0, over queries 1 … n − 1 (query 0 can look nowhere else): `(..., n, n) -> (...)`."""
    _require_maps(weights)
    return weights[..., 1:, 0].mean(dim=-1)


def same_token_score(weights: Tensor, tokens: Tensor) -> Tensor:
    """Weight on EARLIER positions holding the query's own token, averaged over the queries that have one.

    weights `(B, ..., n, n)`, tokens `(B, n)` -> `(...)` (averaged over the batch too).
    """
    n = _require_maps(weights)
    same = tokens[:, :, None] == tokens[:, None, :]  # (B, n, n)
    same &= torch.ones(n, n, dtype=torch.bool, device=tokens.device).tril(diagonal=-1)
    same = same.view(same.shape[0], *([1] * (weights.ndim - 3)), n, n)
    mass = (weights * same).sum(dim=-1)  # (B, ..., n)
    has = same.any(dim=-1).expand_as(mass)
    mass = mass.movedim(0, -2)  # (..., B, n)
    has = has.movedim(0, -2)
    return (mass * has).sum(dim=(-2, -1)) / has.sum(dim=(-2, -1)).clamp(min=1)


def induction_score(weights: Tensor, segment_length: int) -> Tensor:
    """Mean weight on "the token after the previous occurrence" in rows `[BOS, s, s]`: `(..., n, n) -> (...)`.

    n = 2 L + 1 with L = `segment_length`. Query p = L + 1 + j holds s_j, seen before at position
    1 + j = p − L; the induction target is the token after it, position p − L + 1. The queries are
    the second copy, p = L + 1 … 2 L.
    """
    n = _require_maps(weights)
    L = segment_length
    if n != 2 * L + 1:
        raise ValueError(f"weights: expected n = 2 · segment_length + 1 = {2 * L + 1}, got n = {n}")
    p = torch.arange(L + 1, 2 * L + 1, device=weights.device)
    return weights[..., p, p - L + 1].mean(dim=-1)


# ---- ablation by intervention ----------------------------------------------------------------------------------


def ablate_head(attention: MultiHeadAttention, head: int) -> RemovableHandle:
    """Make head `head` of `attention` output zeros, until the returned handle's `remove()`.

    A forward pre-hook on W_O sees the merged heads `(B, n, h · d_head)` before the output projection
    mixes them; zeroing head k's columns `k · d_head … (k + 1) · d_head − 1` removes exactly its
    contribution (W_O's bias stays: it belongs to no head).
    """
    if not 0 <= head < attention.num_heads:
        raise ValueError(f"head must be in 0 … {attention.num_heads - 1}, got {head}")
    d_head = attention.W_o.in_features // attention.num_heads  # W_O's input: the h heads side by side

    def zero_head(_module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        merged = args[0].clone()
        merged[..., head * d_head : (head + 1) * d_head] = 0
        return (merged, *args[1:])

    return attention.W_o.register_forward_pre_hook(zero_head)


@contextlib.contextmanager
def ablated(model: nn.Module, heads: Iterable[tuple[int, int]]) -> Iterator[None]:
    """Within the block, the heads `(layer, head)` of `model` output zeros (`ablate_head` on each).

    The hooks are removed on exit, even after an error.
    """
    modules = attention_modules(model)
    chosen = list(heads)
    for layer, head in chosen:
        if not (0 <= layer < len(modules) and 0 <= head < modules[layer].num_heads):
            raise ValueError(f"no head ({layer}, {head}): {len(modules)} layers of {modules[0].num_heads} heads")
    handles = [ablate_head(modules[layer], head) for layer, head in chosen]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def ablation_table(model: nn.Module, tokens: Tensor) -> Tensor:
    """Second-copy loss change (nats) when each head alone is zeroed: `(num_layers, h)`."""
    modules = attention_modules(model)
    _, base = copy_losses(model, tokens)
    table = torch.zeros(len(modules), modules[0].num_heads)
    for layer, module in enumerate(modules):
        for head in range(module.num_heads):
            with ablated(model, [(layer, head)]):
                table[layer, head] = copy_losses(model, tokens)[1] - base
    return table


# ---- notebook 11's GPT, trained again ---------------------------------------------------------------------------


def train_grammar_gpt(corpus: Corpus, attention: type | None = None, seq_len: int = 32, steps: int = 300,
                      seed: int = 0) -> tuple[GPT, float]:
    """Notebook 11's GPT (2 blocks, width 64, 4 heads) trained with its seed and budget; returns it and its loss.

    300 steps of 32 fresh rows, lr 4e-3 with 30 warm-up steps; the loss is measured on notebook 11's 256
    validation rows (seed 1). `attention`: a class to use instead of `MultiHeadAttention` with the same
    signature and parameter names (the learner's own, from notebook 05); it starts from the same weights.
    """
    config = GPTConfig(vocab_size=corpus.vocab_size, max_len=seq_len + 1, d_model=64, num_layers=2, num_heads=4)
    torch.manual_seed(seed)
    model = GPT(config)
    if attention is not None:
        weights = model.state_dict()
        for block in model.blocks:
            block.attention = attention(config.d_model, config.num_heads)
        model.load_state_dict(weights)
    val = corpus.sample_tokens(256, seq_len, seed=1)
    log = train_lm(model, lambda step: corpus.sample_tokens(32, seq_len, seed=10_000 + step), val,
                   steps=steps, lr=4e-3, warmup_steps=30, eval_every=steps)
    return model.eval(), log.val_losses[-1]
