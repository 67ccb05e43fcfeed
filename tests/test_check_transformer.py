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
                 share_embeddings=False, pad_id=PAD):
        super().__init__()
        self.d_model, self.pad_id = d_model, pad_id
        self.encoder, self.decoder = nn.Module(), nn.Module()
        self.src_embedding = nn.Embedding(src_vocab_size, d_model)
        self.tgt_embedding = self.src_embedding if share_embeddings else nn.Embedding(tgt_vocab_size, d_model)
        for table in {id(t): t for t in (self.src_embedding, self.tgt_embedding)}.values():
            with torch.no_grad():
                table.weight.normal_().div_(math.sqrt(d_model))
        self.positional = PositionalEncoding(d_model, dropout=dropout)
        self.encoder.layers = nn.ModuleList(EncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers))
        self.decoder.layers = nn.ModuleList(DecoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers))
        self.output = nn.Linear(d_model, tgt_vocab_size)
        if share_embeddings:
            self.output.weight = self.src_embedding.weight

    def forward(self, src, tgt):
        src_mask = padding_mask(src, self.pad_id)
        tgt_mask = causal_mask(tgt.shape[1])  # without target padding: only pad positions change, never compared
        x = self.positional(self.src_embedding(src) * math.sqrt(self.d_model))
        for layer in self.encoder.layers:
            x = layer(x, src_mask)
        y = self.positional(self.tgt_embedding(tgt) * self.d_model**0.5)
        for layer in self.decoder.layers:
            y = layer(y, x, tgt_mask, src_mask)
        return self.output(y)



class EinsumHeadTransformer(LearnersTransformer):
    """The output layer applied by hand (einsum with its weight and bias), in float64, xavier elsewhere."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, p in self.named_parameters():
            if p.dim() > 1 and "embedding" not in name:
                nn.init.xavier_uniform_(p)

    def forward(self, src, tgt):
        keep = self.output
        try:
            self.output = nn.Identity()
            y = super().forward(src, tgt)
        finally:
            self.output = keep
        return torch.einsum("btd,vd->btv", y.double(), keep.weight.double()) + keep.bias.double()


@pytest.mark.parametrize("candidate", [Transformer, LearnersTransformer, EinsumHeadTransformer])
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


# ---- the contract's entries and a stub the class depends on ---------------------------------------------


def test_a_bias_free_tied_head_is_named():
    class NoBias(LearnersTransformer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            weight = self.output.weight
            self.output = nn.Linear(self.d_model, weight.shape[0], bias=False)
            self.output.weight = weight

    result = check_Transformer(NoBias)
    assert result.status is Status.FAILED and "has a bias" in result.hint, result.message


def test_nn_embedding_initialisation_is_named():
    class UnitInit(LearnersTransformer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            for table in {id(t): t for t in (self.src_embedding, self.tgt_embedding)}.values():
                nn.init.normal_(table.weight)

    result = check_Transformer(UnitInit)
    assert result.status is Status.FAILED and "1/√d_model" in result.hint, result.message


def test_a_fixed_pad_id_fails_on_the_generated_pad_id():
    class FixedPad(LearnersTransformer):
        def forward(self, src, tgt):
            self.pad_id = PAD
            return super().forward(src, tgt)

    result = check_Transformer(FixedPad)
    assert result.status is Status.FAILED and "pad_id=4" in result.summary and "pad_id argument" in result.hint


def test_a_stub_the_class_calls_is_named():
    class PositionalEncoding(nn.Module):  # the learner's notebook-06 exercise, still the stub
        def __init__(self, d_model, max_len=5000, dropout=0.1):
            super().__init__()
            raise NotImplementedError()

    class UsesStub(LearnersTransformer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.positional = PositionalEncoding(self.d_model)

    result = check_Transformer(UsesStub)
    assert result.status is Status.FAILED and "`PositionalEncoding`, which is still the stub" in result.summary, \
        result.message


def test_train_step_names_a_stub_loss():
    def label_smoothed_loss(logits, targets, smoothing, pad_id):
        raise NotImplementedError()

    def step(model, optimizer, scheduler, src, tgt_in, tgt_out):
        optimizer.zero_grad()
        loss = label_smoothed_loss(model(src, tgt_in), tgt_out, 0.1, PAD)
        loss.backward()
        optimizer.step()
        return loss.item()

    result = check_train_step(step)
    assert result.status is Status.FAILED and "`label_smoothed_loss`" in result.summary, result.message


def test_cases_are_generated_from_a_seed():
    from helpers.checks.nb09_transformer import loss_cases, rate_cases

    first, again, other = (list(loss_cases(s)) for s in (7, 7, 8))
    assert [c.name for c in first] == [c.name for c in again]
    assert all(torch.equal(a.args[0], b.args[0]) for a, b in zip(first, again))
    assert any(not torch.equal(a.args[0], b.args[0]) for a, b in zip(first, other))
    assert [c.name for c in rate_cases(1)][2:] != [c.name for c in rate_cases(2)][2:]


def per_row_mean_is_not_the_loss(logits, targets, smoothing, pad_id):
    per_token = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=pad_id, label_smoothing=smoothing,
                                reduction="none")
    real = targets != pad_id
    return ((per_token * real).sum(1) / real.sum(1)).mean()


def test_loss_averaged_per_row_is_named():
    result = check_label_smoothed_loss(per_row_mean_is_not_the_loss)
    assert result.status is Status.FAILED and "every real target token" in result.hint, result.message
