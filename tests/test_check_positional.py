"""Check of notebook 06: correct variants pass, the stub is ⏳, each typical mistake gets its own hint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers.checks import Status
from helpers.checks.nb06_positional import _variant, check_sinusoidal_positional_encoding


def with_loops(n, d_model):
    pe = torch.zeros(n, d_model)
    for pos in range(n):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            pe[pos, 2 * i] = math.sin(angle)
            pe[pos, 2 * i + 1] = math.cos(angle)
    return pe


def with_exp_log(n, d_model):
    position = torch.arange(n).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    return torch.stack([torch.sin(position * div), torch.cos(position * div)], dim=-1).flatten(1)


def with_numpy_in_float64(n, d_model):
    pos = np.arange(n)[:, None]
    i = np.arange(d_model // 2)[None, :]
    angle = pos / 10000 ** (2 * i / d_model)
    pe = np.zeros((n, d_model))
    pe[:, 0::2], pe[:, 1::2] = np.sin(angle), np.cos(angle)
    return torch.from_numpy(pe)


@pytest.mark.parametrize("candidate", [with_loops, with_exp_log, with_numpy_in_float64])
def test_correct_variants_pass(candidate):
    result = check_sinusoidal_positional_encoding(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize(
    ("switches", "words"),
    [
        (dict(swap=True), "swapped"),
        (dict(concat=True), "not interleaved"),
        (dict(exponent="i/d"), "the exponent is i / d_model"),
        (dict(exponent="column/d"), "column index"),
        (dict(exponent="i"), "divide by d_model"),
        (dict(start=1), "start at 1"),
    ],
)
def test_typical_mistakes_are_named(switches, words):
    result = check_sinusoidal_positional_encoding(lambda n, d: _variant(n, d, **switches).float())
    assert result.status is Status.FAILED and words in result.hint, result.message


def test_transposed_result_is_named():
    result = check_sinusoidal_positional_encoding(lambda n, d: with_loops(n, d).T)
    assert result.status is Status.FAILED and "transposed" in result.hint


def test_stub_and_broken_candidates():
    def stub(n, d_model):
        raise NotImplementedError()

    assert check_sinusoidal_positional_encoding(stub).status is Status.NOT_ATTEMPTED
    assert check_sinusoidal_positional_encoding(lambda n, d: None).status is Status.FAILED
    assert check_sinusoidal_positional_encoding(lambda n, d: torch.full((n, d), math.nan)).status is Status.FAILED


def test_a_single_position_and_a_single_pair_are_cases():
    sizes = [case.args for case in check_sinusoidal_positional_encoding.spec.cases()]
    assert any(n == 1 for n, _ in sizes) and any(d == 2 for _, d in sizes)
    assert all(n != d for n, d in sizes)  # a transposed table changes the shape


def test_a_squeezed_single_position_is_named():
    result = check_sinusoidal_positional_encoding(lambda n, d: with_loops(n, d).squeeze())
    assert result.status is Status.FAILED and "n = 1" in result.hint, result.message
