"""Checks of notebook 09's new exercises: the Transformer class, the label-smoothed loss, the warm-up rate and
one training step. Correct variants pass, each mistake gets exactly its own hint, stubs are ⏳."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.attention import causal_mask, padding_mask
from helpers.checks import Status, check_label_smoothed_loss, check_train_step, check_Transformer, check_warmup_rate
from helpers.checks.nb09_transformer import LOSS_MISTAKES, RATE_MISTAKES, STEP_MISTAKES, TRANSFORMER_MISTAKES
from helpers.data import PAD
from helpers.positional import PositionalEncoding
from helpers.training import train_step
from helpers.transformer import DecoderLayer, EncoderLayer, Transformer


class LearnersTransformer(nn.Module):
    """Written as a learner would: plain containers, masks from helpers.attention, einsum-free loops."""

    def __init__(self, src_vocab_size, tgt_vocab_size, d_model, num_heads, num_layers, d_ff, dropout,
                 share_embeddings=False):
        super().__init__()
        self.d_model = d_model
        self.encoder, self.decoder = nn.Module(), nn.Module()
        self.src_embedding = nn.Embedding(src_vocab_size, d_model)
        self.tgt_embedding = self.src_embedding if share_embeddings else nn.Embedding(tgt_vocab_size, d_model)
        self.positional = PositionalEncoding(d_model, dropout=dropout)
        self.encoder.layers = nn.ModuleList(EncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers))
        self.decoder.layers = nn.ModuleList(DecoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers))
        self.output = nn.Linear(d_model, tgt_vocab_size)
        if share_embeddings:
            self.output.weight = self.src_embedding.weight

    def forward(self, src, tgt):
        src_mask = padding_mask(src, PAD)
        tgt_mask = causal_mask(tgt.shape[1])  # without target padding: only pad positions change, never compared
        x = self.positional(self.src_embedding(src) * math.sqrt(self.d_model))
        for layer in self.encoder.layers:
            x = layer(x, src_mask)
        y = self.positional(self.tgt_embedding(tgt) * self.d_model**0.5)
        for layer in self.decoder.layers:
            y = layer(y, x, tgt_mask, src_mask)
        return self.output(y)



@pytest.mark.parametrize("candidate", [Transformer, LearnersTransformer])
def test_transformer_correct_variants_pass(candidate):
    result = check_Transformer(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize("mistake", TRANSFORMER_MISTAKES, ids=lambda m: m.hint[:30])
def test_transformer_mistakes_get_their_own_hint(mistake):
    result = check_Transformer(mistake.wrong)
    assert result.status is Status.FAILED and result.hint == mistake.hint, result.message


def test_transformer_stub_wrong_names_and_no_dropout():
    class Stub(nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()
            raise NotImplementedError()

    class Renamed(LearnersTransformer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.lm_head = self.output
            del self.output

        def forward(self, src, tgt):
            return self.lm_head(torch.zeros(*tgt.shape, self.d_model))

    class NoDropout(LearnersTransformer):
        def __init__(self, *args, **kwargs):
            args = list(args)
            args[6] = 0.0
            super().__init__(*args, **kwargs)

    assert check_Transformer(Stub).status is Status.NOT_ATTEMPTED
    renamed = check_Transformer(Renamed)
    assert "lm_head.weight" in renamed.summary and "output.weight" in renamed.summary, renamed.message
    no_dropout = check_Transformer(NoDropout)
    assert no_dropout.status is Status.FAILED and "pass dropout on" in no_dropout.hint, no_dropout.message


def loss_by_hand(logits, targets, smoothing, pad_id):
    logp = logits.log_softmax(-1)
    real = targets != pad_id
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    per_token = (1 - smoothing) * nll - smoothing * logp.mean(-1)
    return per_token[real].mean()


def loss_float64(logits, targets, smoothing, pad_id):
    return loss_by_hand(logits.double(), targets, smoothing, pad_id)


def loss_with_torch(logits, targets, smoothing, pad_id):
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=pad_id, label_smoothing=smoothing)


@pytest.mark.parametrize("candidate", [loss_by_hand, loss_float64, loss_with_torch])
def test_loss_correct_variants_pass(candidate):
    result = check_label_smoothed_loss(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize(("check", "mistakes"), [(check_label_smoothed_loss, LOSS_MISTAKES),
                                                 (check_warmup_rate, RATE_MISTAKES),
                                                 (check_train_step, STEP_MISTAKES)])
def test_function_mistakes_get_their_own_hint(check, mistakes):
    for mistake in mistakes:
        result = check(mistake.wrong)
        assert result.status is Status.FAILED and result.hint == mistake.hint, result.message


@pytest.mark.parametrize("candidate", [
    lambda step, d_model, warmup: d_model**-0.5 * min(step**-0.5, step * warmup**-1.5),
    lambda step, d_model, warmup: torch.tensor(step * warmup**-1.5 if step < warmup else step**-0.5)
    / math.sqrt(d_model),
])
def test_rate_correct_variants_pass(candidate):
    result = check_warmup_rate(candidate)
    assert result.passed, result.message


def step_by_hand(model, optimizer, scheduler, src, tgt_in, tgt_out):
    for p in model.parameters():
        p.grad = None
    logits = model(src, tgt_in)
    loss = loss_by_hand(logits, tgt_out, 0.1, PAD)
    loss.backward()
    optimizer.step()
    if scheduler:
        scheduler.step()
    return loss  # a tensor: the check reads it as a number


@pytest.mark.parametrize("candidate", [train_step, step_by_hand])
def test_step_correct_variants_pass(candidate):
    result = check_train_step(candidate)
    assert result.passed, result.message


def test_function_stubs_are_not_attempted():
    def stub(*args):
        raise NotImplementedError()

    for check in (check_label_smoothed_loss, check_warmup_rate, check_train_step):
        assert check(stub).status is Status.NOT_ATTEMPTED
