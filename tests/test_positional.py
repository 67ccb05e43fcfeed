"""helpers.positional: the paper's formula, its properties, and the two modules."""

from __future__ import annotations

import math

import pytest
import torch

from helpers.positional import LearnedPositionalEmbedding, PositionalEncoding, sinusoidal_positional_encoding


def test_matches_the_paper_formula_entry_by_entry():
    n, d_model = 7, 6
    pe = sinusoidal_positional_encoding(n, d_model, dtype=torch.float64)
    for pos in range(n):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-12)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-12)


def test_shift_by_k_is_a_fixed_rotation():
    n, d_model, k = 40, 16, 5
    pe = sinusoidal_positional_encoding(n, d_model, dtype=torch.float64)
    rotation = torch.zeros(d_model, d_model, dtype=torch.float64)
    for i in range(d_model // 2):
        w = k / 10000 ** (2 * i / d_model)
        c, s = math.cos(w), math.sin(w)
        # Row vector [sin a, cos a] @ R = [sin(a + w), cos(a + w)].
        rotation[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    torch.testing.assert_close(pe[:-k] @ rotation, pe[k:])


def test_rows_are_distinct_bounded_and_similarity_decays_nearby():
    pe = sinusoidal_positional_encoding(64, 32)
    assert pe.abs().max() <= 1
    assert torch.cdist(pe, pe).add(torch.eye(64) * 10).min() > 0.1
    sim = pe @ pe[10]
    assert sim[10] > sim[11] > sim[13] > sim[16]


def test_positional_encoding_module_adds_the_code():
    torch.manual_seed(0)
    module = PositionalEncoding(d_model=8, max_len=20, dropout=0.1).eval()
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(module(x), x + sinusoidal_positional_encoding(5, 8))
    assert not list(module.parameters()), "the sinusoidal code is not trained"
    with pytest.raises(ValueError, match="longer than max_len = 20"):
        module(torch.randn(1, 21, 8))
    with pytest.raises(ValueError, match=r"expected shape \(B, n, d_model=8\), got \(5, 8\)"):
        module(torch.randn(5, 8))


def test_learned_embedding_is_trained_and_bounded_by_max_len():
    torch.manual_seed(0)
    module = LearnedPositionalEmbedding(d_model=8, max_len=10, dropout=0.0)
    x = torch.zeros(2, 4, 8)
    out = module(x)
    torch.testing.assert_close(out[0], module.embedding.weight[:4])
    assert sum(p.numel() for p in module.parameters()) == 10 * 8
    with pytest.raises(ValueError, match="longer than max_len = 10"):
        module(torch.zeros(1, 11, 8))


@pytest.mark.parametrize(("n", "d_model"), [(0, 4), (3, 5), (3, 0), (2.0, 4)])
def test_bad_sizes_are_clear_errors(n, d_model):
    with pytest.raises(ValueError):
        sinusoidal_positional_encoding(n, d_model)


@pytest.mark.parametrize("module_type", [PositionalEncoding, LearnedPositionalEmbedding])
def test_start_offsets_the_positions(module_type):
    """A decoder that feeds one token at a time passes its position: the same code as in one pass."""
    torch.manual_seed(0)
    module = module_type(d_model=8, max_len=10, dropout=0.0)
    x = torch.randn(2, 6, 8)
    whole = module(x)
    torch.testing.assert_close(module(x[:, 4:], start=4), whole[:, 4:])
    torch.testing.assert_close(torch.cat([module(x[:, t : t + 1], start=t) for t in range(6)], dim=1), whole)
    with pytest.raises(ValueError, match="sequence of 11 tokens is longer than max_len = 10"):
        module(x[:, :2], start=9)
    with pytest.raises(ValueError, match="start must be an int ≥ 0, got -1"):
        module(x, start=-1)
