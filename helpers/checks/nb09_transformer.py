"""Checks of notebook 09's exercises: the Transformer assembly (a class), the label-smoothed loss, the warm-up
schedule, one training step, and greedy decoding with a trained-or-not Transformer."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

# Stop ends a case with a Failure, as core.unpack_or_stop does: a class whose weights do not fit cannot be run.
from helpers.checks.core import Case, Failure, Kind, Mistake, Stop, check, generator, key_mismatch, randn, seeded
from helpers.training import train_step, warmup_schedule
from helpers.transformer import Transformer

BOS_ID, EOS_ID, PAD_ID = 1, 2, 0


def _sequences(tokens: Tensor) -> list[list[int]]:
    """Each row up to and including its first EOS, without trailing padding."""
    rows = []
    for row in tokens.tolist():
        out = []
        for token in row:
            out.append(token)
            if token == EOS_ID:
                break
        while out and out[-1] == PAD_ID:
            out.pop()
        rows.append(out)
    return rows


def _compare_decoded(actual: object, expected: object, what: str, tolerance: tuple[float, float]) -> Failure | None:
    """Token ids compare as sentences: what follows a sentence's EOS does not count."""
    assert isinstance(expected, Tensor)
    if not isinstance(actual, Tensor):
        return Failure(Kind.WRONG_TYPE, f"your function returned a {type(actual).__name__}, expected a tensor of "
                       "token ids (B, n)")
    if actual.ndim != 2 or actual.shape[0] != expected.shape[0]:
        return Failure(Kind.WRONG_SHAPE, f"the output has shape {tuple(actual.shape)}, "
                       f"expected ({expected.shape[0]}, n)")
    got, want = _sequences(actual), _sequences(expected)
    wrong = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
    return None if wrong is None else Failure(Kind.WRONG_VALUES, f"sentence {wrong} decodes to {got[wrong]}, "
                                              f"expected {want[wrong]}")


@torch.no_grad()
def _greedy_variant(model: Transformer, src: Tensor, max_len: int, *, position: int = -1, argmax_dim: int = -1,
                    feed_back: bool = True, with_bos: bool = True) -> Tensor:
    """Greedy decoding with switches that reproduce the typical mistakes."""
    src_mask, _ = model.masks(src)
    memory = model.encode(src, src_mask)
    out = torch.full((src.shape[0], 1), BOS_ID, dtype=torch.long)
    for _ in range(max_len):
        _, tgt_mask = model.masks(src, out)
        logits = model.decode(out, memory, tgt_mask, src_mask)
        next_token = logits[:, position].argmax(dim=-1) if argmax_dim == -1 else logits.argmax(dim=1)[:, 0]
        out = torch.cat([out, next_token.unsqueeze(1)], dim=1)
    return out if with_bos else out[:, 1:]


def _mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, lambda model, src, bos, eos, max_len: _greedy_variant(model, src, max_len, **switches))


MISTAKES = [
    _mistake("every step used only the prediction made right after BOS: feed all tokens generated so far "
             "(BOS + previous tokens) and take the prediction at the last position, logits[:, -1].", position=0),
    _mistake("argmax over the wrong dimension: pick the most likely token over the vocabulary (dim=-1) "
             "at the last position.", argmax_dim=1),
    _mistake("the output should start with the BOS token, as the decoder's input does.", with_bos=False),
]


@check(reference=lambda model, src, bos, eos, max_len: model.greedy_decode(src, bos, eos, max_len),
       mistakes=MISTAKES, compare=_compare_decoded,
       hints={Kind.WRONG_TYPE: "return the tensor of generated token ids, BOS first.",
              Kind.WRONG_SHAPE: "one row of token ids per source sentence."},
       passed="{cases} batches of a random model, with source padding: the same tokens as the reference.")
def check_greedy_decode() -> Iterator[Case]:
    """Check `greedy_decode(model, src, bos_id, eos_id, max_len) -> (B, n)` token ids starting with BOS."""
    for seed, (batch, n_src, max_len) in enumerate([(3, 6, 7), (2, 9, 5)]):
        with seeded(100 + seed), torch.no_grad():
            model = Transformer(12, 12, d_model=16, num_heads=2, num_layers=1, d_ff=32, dropout=0.0).eval()
            # Sharpen a random model so that each next token depends on what came before.
            model.output.weight.mul_(6.0)
            model.output.bias[EOS_ID] = -3.0  # it rarely stops: the whole loop gets exercised
            model.output.bias[[PAD_ID, BOS_ID]] = -100.0  # and never predicts PAD or BOS
        src = torch.randint(3, 12, (batch, n_src), generator=generator(110 + seed))
        src[0, -2:] = PAD_ID
        yield Case(f"a random model, {batch} source sentences of {n_src} tokens, max_len={max_len}",
                   (model, src, BOS_ID, EOS_ID, max_len))


# ---- the Transformer assembly (a class) ------------------------------------------------------------

VOCAB_SIZE = 11


class _TransformerVariant(Transformer):
    """The reference assembly with switches that reproduce the typical mistakes (same parameter names)."""

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, d_model: int, num_heads: int, num_layers: int,
                 d_ff: int, dropout: float, share_embeddings: bool = False, *, scale: bool = True,
                 positions: bool = True, tie: bool = True, causal: bool = True, padding: bool = True) -> None:
        super().__init__(src_vocab_size, tgt_vocab_size, d_model, num_heads, num_layers, d_ff, dropout,
                         share_embeddings and tie, causal=causal)
        self.scale, self.positions, self.padding = scale, positions, padding

    def embed(self, embedding: torch.nn.Embedding, tokens: Tensor, start: int = 0) -> Tensor:
        x = embedding(tokens) * (self.d_model**0.5 if self.scale else 1.0)
        return self.positional(x, start) if self.positions else self.positional.dropout(x)

    def masks(self, src: Tensor, tgt: Tensor | None = None) -> tuple[Tensor | None, Tensor | None]:
        src_mask, tgt_mask = super().masks(src, tgt)
        return (src_mask if self.padding else None), tgt_mask


def _variant(**switches: bool) -> type:
    def build(*args: object, **kwargs: object) -> Transformer:
        return _TransformerVariant(*args, **kwargs, **switches)  # type: ignore[arg-type]

    return build  # type: ignore[return-value]


TRANSFORMER_MISTAKES = [
    Mistake("the embeddings are not multiplied by √d_model before the positional code is added.",
            _variant(scale=False)),
    Mistake("the positions are missing: add the positional encoding to the scaled embeddings "
            "(self.positional), on the source and on the target side.", _variant(positions=False)),
    Mistake("weight tying is missing: with share_embeddings=True the target embedding and the output layer "
            "must be the source embedding's very Parameter, so the model has fewer parameters.", _variant(tie=False)),
    Mistake("the decoder's causal mask is missing: each target position may attend only to itself and earlier "
            "positions (causal_mask), besides ignoring padding.", _variant(causal=False)),
    Mistake("the source padding mask is missing: build it with padding_mask(src, PAD) and pass it to every "
            "encoder layer and to every decoder layer's cross-attention.", _variant(padding=False)),
]


def _state_dict_fits(model: torch.nn.Module, reference: torch.nn.Module) -> None:
    """Load the reference's weights into `model`, or stop the case naming the keys that do not fit."""
    buffers = {name for name, _ in model.named_buffers()}  # a learner's table kept as a persistent buffer may stay
    words = key_mismatch([k for k in model.state_dict() if k not in buffers], reference.state_dict())
    if words:
        raise Stop(Failure(Kind.WRONG_TYPE, f"your model's weights are not named like the reference's: {words}",
                            "name the parts src_embedding, tgt_embedding, positional, encoder.layers, "
                            "decoder.layers and output, as the exercise's text lists them."))
    model.load_state_dict(reference.state_dict(), strict=False)


def _transformer_run(seed: int, share: bool, dropout: float) -> Callable[[Callable[..., object]], object]:
    def run(cls: Callable[..., object]) -> object:
        args = (VOCAB_SIZE, VOCAB_SIZE, 16, 2, 2, 32, dropout)
        with seeded(seed):
            reference = Transformer(*args, share_embeddings=share)
            model = cls(*args, share_embeddings=share)
        if not isinstance(model, torch.nn.Module):
            raise Stop(Failure(Kind.WRONG_TYPE, f"the class built a {type(model).__name__}, expected an nn.Module"))
        _state_dict_fits(model, reference)
        count = torch.tensor(sum(p.numel() for p in model.parameters()))
        g = generator(seed + 1)
        src = torch.randint(3, VOCAB_SIZE, (2, 6), generator=g)
        tgt = torch.randint(3, VOCAB_SIZE, (2, 5), generator=g)
        src[0, -2:], tgt[1, -2:] = PAD_ID, PAD_ID
        tgt[:, 0] = BOS_ID
        real = tgt != PAD_ID  # logits at target padding are never used: only real positions are compared
        weights = torch.randn(int(real.sum()), VOCAB_SIZE, generator=g)
        model.eval()
        logits = model(src, tgt)
        if not isinstance(logits, Tensor) or logits.shape != (2, 5, VOCAB_SIZE):
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise Stop(Failure(Kind.WRONG_SHAPE, f"forward returned {shape}, expected logits (2, 5, {VOCAB_SIZE})",
                                "forward(src, tgt) returns the output layer's logits (B, n_t, n_vocab)."))
        (logits[real] * weights).sum().backward()
        grads = torch.cat([(model.get_parameter(name).grad if model.get_parameter(name).grad is not None
                            else torch.zeros_like(model.get_parameter(name))).flatten()
                           for name, _ in reference.named_parameters(remove_duplicate=False)])
        with torch.no_grad():
            model.train()  # with dropout > 0, train() must change the output: dropout reached the modules
            differs = torch.tensor(not torch.allclose(model(src, tgt)[real], logits[real]))
        return count, logits[real].detach(), grads, differs

    return run


@check(reference=Transformer, mistakes=TRANSFORMER_MISTAKES,
       returns=("parameter count", "logits", "gradients", "dropout in train()"),
       compare_first=("parameter count",),
       passed="{cases} models (untied, tied, with dropout): the reference's weights fit, logits, gradients and "
              "parameter counts equal.")
def check_Transformer() -> Iterator[Case]:  # noqa: N802  # named after the class, as every class exercise
    """Check the class `Transformer(src_vocab_size, tgt_vocab_size, d_model, num_heads, num_layers, d_ff, dropout,
    share_embeddings=False)`: `forward(src (B, n_s), tgt (B, n_t)) -> logits (B, n_t, n_vocab)`."""
    yield Case("2 layers, d_model 16, separate embeddings, padded source and target",
               run=_transformer_run(120, share=False, dropout=0.0))
    yield Case("the same with share_embeddings=True", run=_transformer_run(121, share=True, dropout=0.0))
    yield Case("dropout 0.2: eval() output, and train() must differ from it",
               run=_transformer_run(122, share=True, dropout=0.2),
               hint="pass dropout on to the positional encoding and to every layer.")


# ---- the label-smoothed loss, the warm-up schedule, one training step (functions) ----------------


def _loss_variant(logits: Tensor, targets: Tensor, smoothing: float, pad_id: int, *, smooth: bool = True,
                  ignore_pad: bool = True, others_only: bool = False, uniform_term: bool = True,
                  mean: bool = True) -> Tensor:
    logp = torch.log_softmax(logits, dim=-1).reshape(-1, logits.shape[-1])
    flat = targets.reshape(-1)
    keep = flat != pad_id if ignore_pad else torch.ones_like(flat, dtype=torch.bool)
    nll = -logp.gather(1, flat[:, None])[:, 0]
    eps = smoothing if smooth else 0.0
    if others_only:
        uniform = (-logp.sum(dim=1) - nll) / (logp.shape[1] - 1)  # the mean of -log p over the other tokens
        per_token = (1 - eps) * nll + eps * uniform
    else:
        per_token = (1 - eps) * nll + (eps * -logp.mean(dim=1) if uniform_term else 0.0)
    total = per_token[keep].sum()
    return total / keep.sum() if mean else total


def _loss_mistake(hint: str, **switches: bool) -> Mistake:
    return Mistake(hint, lambda logits, targets, smoothing, pad_id: _loss_variant(logits, targets, smoothing,
                                                                                  pad_id, **switches))


LOSS_MISTAKES = [
    _loss_mistake("no label smoothing: the target gives 1 − ε to the right token and spreads ε over the "
                  "vocabulary.", smooth=False),
    _loss_mistake("the padding counts: positions whose target is PAD must be left out of the loss and of the "
                  "mean.", ignore_pad=False),
    _loss_mistake("ε is spread over the other n_vocab − 1 tokens only; torch (and the course) spread it over all "
                  "n_vocab tokens, the right one included.", others_only=True),
    _loss_mistake("the uniform part is missing: besides (1 − ε) times the right token's loss, add ε times the "
                  "mean of −log p over the vocabulary.", uniform_term=False),
    _loss_mistake("you summed over the tokens: take the mean over the real (non-padding) target tokens.",
                  mean=False),
]


def _reference_loss(logits: Tensor, targets: Tensor, smoothing: float, pad_id: int) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=pad_id,
                           label_smoothing=smoothing)


@check(reference=_reference_loss, mistakes=LOSS_MISTAKES,
       passed="{cases} cases against F.cross_entropy(label_smoothing=..., ignore_index=PAD), float64 included.")
def check_label_smoothed_loss() -> Iterator[Case]:
    """Check `label_smoothed_loss(logits (B, n_t, n_vocab), targets (B, n_t), smoothing, pad_id) -> scalar`."""
    for seed, (batch, n, vocab, eps, dtype) in enumerate([(3, 5, 7, 0.1, torch.float32), (2, 4, 9, 0.3, torch.float64),
                                                          (1, 6, 5, 0.0, torch.float32)]):
        g = generator(130 + seed)
        targets = torch.randint(3, vocab, (batch, n), generator=g)
        targets[0, -2:] = PAD_ID
        yield Case(f"B={batch}, n_t={n}, n_vocab={vocab}, smoothing={eps}, padded targets",
                   (3 * randn(g, batch, n, vocab, dtype=dtype), targets, eps, PAD_ID))


def _rates(rate: Callable[[int, int, int], object], d_model: int, warmup: int) -> Tensor:
    steps = [*range(1, 3 * warmup, max(1, warmup // 7)), warmup, warmup + 1, 10 * warmup]
    return torch.tensor([float(rate(s, d_model, warmup)) for s in steps], dtype=torch.float64)  # type: ignore[arg-type]


def _reference_rate(step: int, d_model: int, warmup: int) -> float:
    return warmup_schedule(d_model, warmup)(step - 1)  # the helper counts steps from 0


RATE_MISTAKES = [
    Mistake("the factor d_model^-0.5 is missing in front of the min(...).",
            lambda s, d, w: min(s**-0.5, s * w**-1.5)),
    Mistake("max instead of min: the rate is the smaller of the rising and the falling curve.",
            lambda s, d, w: d**-0.5 * max(s**-0.5, s * w**-1.5)),
    Mistake("the rising part is step · warmup^-1.5 (it meets step^-0.5 exactly at step = warmup).",
            lambda s, d, w: d**-0.5 * min(s**-0.5, s * w**-0.5)),
    Mistake("steps count from 1 here (the formula's step); do not add 1 to it.",
            lambda s, d, w: d**-0.5 * min((s + 1) ** -0.5, (s + 1) * w**-1.5)),
]


@check(reference=_reference_rate, mistakes=RATE_MISTAKES,
       passed="{cases} schedules, each at about 25 steps around and after the warm-up: the paper's rate.")
def check_warmup_rate() -> Iterator[Case]:
    """Check `warmup_rate(step, d_model, warmup_steps) -> float` (step ≥ 1): the paper's learning rate."""
    for d_model, warmup in [(512, 4000), (64, 100), (16, 7)]:
        yield Case(f"d_model={d_model}, warmup={warmup}",
                   run=lambda f, d=d_model, w=warmup: _rates(f, d, w), what="the rates")


def _step_variant(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: object, src: Tensor,
                  tgt_in: Tensor, tgt_out: Tensor, *, zero: bool = True, order: str = "right",
                  schedule: bool = True, smoothing: float = 0.1, pad: int | None = PAD_ID) -> float:
    if zero and order != "zero_late":
        optimizer.zero_grad()
    logits = model(src, tgt_in)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), label_smoothing=smoothing,
                           ignore_index=-100 if pad is None else pad)
    if order == "step_first":
        optimizer.step()
        loss.backward()
    else:
        loss.backward()
        if order == "zero_late":
            optimizer.zero_grad()
        optimizer.step()
    if schedule and scheduler is not None:
        scheduler.step()  # type: ignore[attr-defined]
    return loss.item()


def _step_mistake(hint: str, **switches: object) -> Mistake:
    return Mistake(hint, lambda *args: _step_variant(*args, **switches))  # type: ignore[arg-type]


STEP_MISTAKES = [
    _step_mistake("the gradients are never zeroed: PyTorch adds each backward's gradients to the old ones, so "
                  "zero them at the start of every step.", zero=False),
    # Zeroing after backward and stepping before it do the same here: the weights never move.
    _step_mistake("the weights never change: the optimizer stepped without gradients. The order is zero the "
                  "gradients, forward, loss, backward, then the optimizer's step.", order="zero_late"),
    _step_mistake("the learning-rate scheduler never steps: after the optimizer's step, step the scheduler "
                  "(when there is one).", schedule=False),
    _step_mistake("no label smoothing: use smoothing 0.1, as label_smoothed_loss does.", smoothing=0.0),
    _step_mistake("the padding counts in the loss: leave out the positions whose target is PAD.", pad=None),
]


def _step_run(seed: int, with_scheduler: bool) -> Callable[[Callable[..., object]], object]:
    def run(step: Callable[..., object]) -> object:
        with seeded(seed):
            model = Transformer(VOCAB_SIZE, VOCAB_SIZE, 16, 2, 1, 32, 0.0, share_embeddings=True)
        # SGD, not Adam: Adam turns float noise in a zero gradient (W_k's bias has one) into a full step.
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_schedule(16, 3, factor=0.5)) \
            if with_scheduler else None
        g = generator(seed + 1)
        losses = []
        for _ in range(3):
            src = torch.randint(3, VOCAB_SIZE, (4, 6), generator=g)
            tgt = torch.randint(3, VOCAB_SIZE, (4, 6), generator=g)
            src[0, -2:], tgt[1, -2:] = PAD_ID, PAD_ID
            tgt_in, tgt_out = torch.cat([torch.full((4, 1), BOS_ID), tgt[:, :-1]], 1), tgt
            loss = step(model, optimizer, scheduler, src, tgt_in, tgt_out)
            losses.append(float(loss))  # type: ignore[arg-type]
        params = torch.cat([p.detach().flatten() for p in model.parameters()])
        return torch.tensor(losses), params, torch.tensor(optimizer.param_groups[0]["lr"])

    return run


@check(reference=train_step, mistakes=STEP_MISTAKES, returns=("losses", "parameters", "learning rate"),
       compare_first=("learning rate",),
       passed="{cases} runs of three steps on a small Transformer: the same losses, weights and learning rate.")
def check_train_step() -> Iterator[Case]:
    """Check `train_step(model, optimizer, scheduler, src, tgt_in, tgt_out) -> float`: one step of training."""
    yield Case("three steps of SGD with the warm-up scheduler", run=_step_run(140, with_scheduler=True))
    yield Case("three steps without a scheduler (scheduler=None)", run=_step_run(141, with_scheduler=False))
