"""Training and evaluation for the sequence-to-sequence tasks (notebook 09).

The recipe of "Attention Is All You Need", scaled down: Adam with β = (0.9, 0.98), the
warm-up learning-rate schedule, label smoothing, teacher forcing; evaluation by exact match
of greedy decodings.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from helpers.data import BOS, EOS, PAD, VOCAB, Batch, CharVocab, batches, encode_pairs
from helpers.transformer import greedy_tokens


def warmup_schedule(d_model: int, warmup_steps: int, factor: float = 1.0) -> Callable[[int], float]:
    """The paper's learning rate: `factor · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5)`.

    It rises linearly for `warmup_steps` steps, then decays as 1/√step. `step` counts from 0
    (torch's LambdaLR convention); the formula uses step + 1.
    """

    def rate(step: int) -> float:
        step += 1
        return factor * d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)

    return rate


def warmup_linear_decay(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """A multiplier for a short, fixed budget: linear warm-up to 1, then linear decay to 0 at `total_steps`.

    The paper's 1/√step tail never reaches zero; when the number of steps is known in
    advance, decaying to zero lets the last steps settle instead of bouncing around.
    """
    if not 0 < warmup_steps < total_steps:
        raise ValueError(f"need 0 < warmup_steps < total_steps, got {warmup_steps} and {total_steps}")

    def rate(step: int) -> float:
        return min((step + 1) / warmup_steps, max(0.0, (total_steps - step) / (total_steps - warmup_steps)))

    return rate


def label_smoothed_loss(logits: Tensor, targets: Tensor, smoothing: float = 0.1, pad_id: int = PAD) -> Tensor:
    """The mean label-smoothed cross-entropy over the real (non-padding) target tokens.

    One mean over every real token of the batch (not a mean per row); padding is the token
    `pad_id`, any id, and may sit anywhere in a row, at its start too.

    `logits (B, n_t, n_vocab)`, `targets (B, n_t)` -> a scalar. The target distribution gives
    `1 - smoothing` to the right token and spreads `smoothing` evenly over all `n_vocab` tokens
    (the right one included), exactly as `F.cross_entropy(..., label_smoothing=smoothing)`.
    """
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=pad_id, label_smoothing=smoothing)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    src: Tensor,
    tgt_in: Tensor,
    tgt_out: Tensor,
    smoothing: float = 0.1,
) -> float:
    """One step of teacher-forced training; returns the step's loss (before the update).

    Zero the gradients (PyTorch adds new ones to the old), forward, label-smoothed loss,
    backward, the optimizer's step, then the scheduler's (it sets the next step's rate).
    """
    optimizer.zero_grad(set_to_none=True)
    loss = label_smoothed_loss(model(src, tgt_in), tgt_out, smoothing)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return loss.item()


def sequence_loss(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> torch.Tensor:
    """`loss_fn` of the logits `model(src, tgt_in) (B, n_t, vocab)` against `tgt_out (B, n_t)`, flattened."""
    logits = model(batch.src, batch.tgt_in)
    return loss_fn(logits.reshape(-1, logits.shape[-1]), batch.tgt_out.reshape(-1))


def train(
    model: nn.Module,
    data: Batch,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    schedule: Callable[[int], float] | None = None,
    label_smoothing: float = 0.1,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    bucket: bool = False,
    every: int = 0,
    callback: Callable[[int], bool] | None = None,
) -> list[float]:
    """Train `model` with teacher forcing for `steps` mini-batches; return the loss of every step.

    `model(src, tgt_in)` must return logits `(B, n_t, vocab)`; the loss compares them with
    `tgt_out` (the target shifted left), ignoring padding. The learning rate is
    `lr · schedule(step)`; by default a 10% warm-up, then linear decay to zero. For the
    paper's schedule pass `lr=1.0, schedule=warmup_schedule(d_model, warmup_steps)`. With
    `bucket`, each batch holds rows of similar length, trimmed to its longest (`data.batches`).
    With `callback`, `callback(step)` runs after every `every` steps and after the last (it may
    evaluate: the model is put back in train mode after it), and stops the training early by
    returning True.
    """
    from tqdm import tqdm

    if callback is not None and every < 1:
        raise ValueError(f"a callback needs every >= 1 (steps between its calls), got every={every}")
    model.to(device).train()
    # foreach: each update over all the parameters at once, the same arithmetic as the per-tensor loop
    # PyTorch runs on a CPU by default (the same weights, to the bit) in a third less time.
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-9, foreach=True)
    if schedule is None:
        schedule = warmup_linear_decay(max(1, steps // 10), steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    epoch: list[Batch] = []
    bar = tqdm(range(steps), desc="training", disable=not progress, file=sys.stderr, mininterval=1.0)
    for _ in bar:
        if not epoch:
            epoch = batches(data, batch_size, generator, bucket=bucket)
        batch = epoch.pop().to(device)
        losses.append(train_step(model, optimizer, scheduler, batch.src, batch.tgt_in, batch.tgt_out, label_smoothing))
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / 50:.3f}")
        if callback is not None and (len(losses) % every == 0 or len(losses) == steps):
            stop = callback(len(losses))
            model.train()
            if stop:
                break
    bar.close()
    model.eval()
    return losses


@torch.no_grad()
def teacher_forced_loss(model: nn.Module, data: Batch, batch_size: int = 500) -> float:
    """Mean cross-entropy (no smoothing) of the next token given the TRUE previous tokens."""
    model.eval()
    device = next(model.parameters()).device
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD, reduction="sum")
    total, count = 0.0, 0
    for i in range(0, len(data), batch_size):
        batch = data[i : i + batch_size].to(device)
        total += sequence_loss(model, batch, loss_fn).item()
        count += int((batch.tgt_out != PAD).sum())
    return total / count


@torch.no_grad()
def greedy_decode_any(model: nn.Module, src: Tensor, max_len: int) -> Tensor:
    """Greedy decoding with the model's own `greedy_decode`, or, for a model that has only
    `forward(src, tgt)` (the learner's Transformer), by running the whole model once per new token."""
    if hasattr(model, "greedy_decode"):
        return model.greedy_decode(src, bos_id=BOS, eos_id=EOS, max_len=max_len)
    return greedy_tokens(lambda out: model(src, out)[:, -1], src, BOS, EOS, PAD, max_len)


@torch.no_grad()
def predict(model: nn.Module, sources: Sequence[str], max_len: int, vocab: CharVocab = VOCAB,
            batch_size: int = 500) -> list[str]:
    """Greedy decodings of `sources`, as text."""
    model.eval()
    device = next(model.parameters()).device
    outputs: list[str] = []
    for i in range(0, len(sources), batch_size):
        chunk = sources[i : i + batch_size]
        src = encode_pairs([(s, "") for s in chunk], vocab).src.to(device)
        tokens = greedy_decode_any(model, src, max_len)
        outputs.extend(vocab.decode(row[1:]) for row in tokens.cpu())
    return outputs


def exact_match(model: nn.Module, pairs: Sequence[tuple[str, str]], max_len: int, vocab: CharVocab = VOCAB) -> float:
    """Fraction of sources whose greedy decoding equals the target exactly."""
    predictions = predict(model, [s for s, _ in pairs], max_len, vocab)
    return sum(p == t for p, (_, t) in zip(predictions, pairs)) / len(pairs)
