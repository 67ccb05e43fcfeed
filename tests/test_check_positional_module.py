"""Check of notebook 06's class exercise `PositionalEncoding`: correct modules pass, each mistake is named."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from helpers import positional
from helpers.checks import Status
from helpers.checks.nb06_positional import MODULE_MISTAKES, check_PositionalEncoding


class FromTheCourse(nn.Module):
    def __init__(self, d_model, max_len=5000, dropout=0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", positional.sinusoidal_positional_encoding(max_len, d_model))

    def forward(self, x):
        return self.dropout(x + self.pe[: x.shape[1]])


class Float32ExpLog(nn.Module):
    """Built in float32 with exp/log (the common tutorial form), stored (1, max_len, d_model), F.dropout."""

    def __init__(self, d_model, max_len=5000, dropout=0.1):
        super().__init__()
        self.p = dropout
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(1, max_len, d_model)
        pe[0, :, 0::2] = torch.sin(position * div)
        pe[0, :, 1::2] = torch.cos(position * div)
        self.register_buffer("table", pe, persistent=False)

    def forward(self, x):
        return nn.functional.dropout(x + self.table[:, : x.size(1)], self.p, self.training)


class Float64Loops(nn.Module):
    def __init__(self, d_model, max_len=5000, dropout=0.1):
        super().__init__()
        pe = torch.zeros(max_len, d_model, dtype=torch.float64)
        angles = torch.tensor([1 / 10000 ** (2 * i / d_model) for i in range(d_model // 2)], dtype=torch.float64)
        for i, w in enumerate(angles):
            pe[:, 2 * i] = torch.sin(torch.arange(max_len) * w)
            pe[:, 2 * i + 1] = torch.cos(torch.arange(max_len) * w)
        self.register_buffer("pe", pe)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(x.double() + self.pe[: x.shape[1]])


@pytest.mark.parametrize("candidate", [positional.PositionalEncoding, FromTheCourse, Float32ExpLog, Float64Loops])
def test_correct_modules_pass(candidate):
    result = check_PositionalEncoding(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize("mistake", MODULE_MISTAKES, ids=lambda m: m.hint[:40])
def test_each_listed_mistake_gets_exactly_its_hint(mistake):
    result = check_PositionalEncoding(mistake.wrong)
    assert result.status is Status.FAILED and result.hint == mistake.hint, result.message


class TableAsParameter(FromTheCourse):
    def __init__(self, d_model, max_len=5000, dropout=0.1):
        super().__init__(d_model, max_len, dropout)
        table = self.pe
        del self.pe
        self.pe = nn.Parameter(table, requires_grad=False)  # frozen, but still a parameter


class NoBuffer(nn.Module):
    def __init__(self, d_model, max_len=5000, dropout=0.1):
        super().__init__()
        self.d_model, self.dropout = d_model, nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(x + positional.sinusoidal_positional_encoding(x.shape[1], self.d_model))


class ForgotDropout(FromTheCourse):
    def forward(self, x):
        return x + self.pe[: x.shape[1]]


class Concatenated(FromTheCourse):
    def forward(self, x):
        return self.dropout(torch.cat([x, self.pe[: x.shape[1]].expand(x.shape[0], -1, -1)], dim=-1))


class SinCosSwapped(FromTheCourse):
    def __init__(self, d_model, max_len=5000, dropout=0.1):
        super().__init__(d_model, max_len, dropout)
        self.pe = self.pe.view(max_len, -1, 2).flip(-1).reshape(max_len, d_model)


class ExponentWithoutTwo(FromTheCourse):
    def __init__(self, d_model, max_len=5000, dropout=0.1):
        super().__init__(d_model, max_len, dropout)
        angle = torch.arange(max_len).unsqueeze(1) / 10000 ** (torch.arange(d_model // 2) / d_model)
        self.pe = torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1).float()


@pytest.mark.parametrize(("candidate", "words"), [
    (TableAsParameter, "register_buffer"),
    (NoBuffer, "register_buffer"),
    (ForgotDropout, "dropout is missing"),
    (Concatenated, "concatenated"),
    (SinCosSwapped, "swapped"),
    (ExponentWithoutTwo, "2i / d_model"),
])
def test_mistakes_written_independently_are_named(candidate, words):
    result = check_PositionalEncoding(candidate)
    assert result.status is Status.FAILED and words in result.hint, result.message


def test_a_parameter_table_is_named_in_the_summary():
    result = check_PositionalEncoding(TableAsParameter)
    assert "trained parameters (pe)" in result.summary


def test_stub_and_broken_candidates():
    class Stub(nn.Module):
        def __init__(self, d_model, max_len=5000, dropout=0.1):
            super().__init__()
            raise NotImplementedError()

    assert check_PositionalEncoding(Stub).status is Status.NOT_ATTEMPTED
    not_a_module = check_PositionalEncoding(lambda *a, **k: "nonsense")
    assert not_a_module.status is Status.FAILED and "nn.Module" in not_a_module.hint
    assert check_PositionalEncoding(lambda *a, **k: 1 / 0).status is Status.FAILED


# ---- issue 20: dropout with 0 < p < 1, the default max_len, an earlier stub named ------------------------------

def test_the_train_case_has_a_dropout_strictly_between_0_and_1():
    ps = [c.run.keywords["dropout"] for c in check_PositionalEncoding.spec.cases() if c.run.keywords["train"]]
    assert ps and all(0 < p < 1 for p in ps)


class DropoutOnTheCode(FromTheCourse):
    def forward(self, x):
        return x + self.dropout(self.pe[: x.shape[1]])


def test_dropout_on_the_code_alone_is_named():
    result = check_PositionalEncoding(DropoutOnTheCode)
    assert result.status is Status.FAILED and "not on the code alone" in result.hint, result.message


def sinusoidal_positional_encoding(n, d_model):  # the learner's earlier exercise, still the stub
    raise NotImplementedError()


class CallsTheStub(nn.Module):
    def __init__(self, d_model, max_len=5000, dropout=0.1):
        super().__init__()
        self.register_buffer("pe", sinusoidal_positional_encoding(max_len, d_model))


def test_a_stub_encoding_is_named():
    result = check_PositionalEncoding(CallsTheStub)
    assert result.status is Status.FAILED, result.message
    assert "calls your `sinusoidal_positional_encoding`" in result.summary, result.message
