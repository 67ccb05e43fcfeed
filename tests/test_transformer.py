"""helpers.transformer against torch's layers with copied weights, and the properties the blocks must have."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers.attention import causal_mask, padding_mask
from helpers.data import BOS, EOS, PAD
from helpers.transformer import DecoderLayer, EncoderLayer, LayerNorm, Transformer, greedy_tokens

# float64 throughout: anything that passes through float32 on the way shows up at these tolerances.
TIGHT = dict(rtol=1e-10, atol=1e-10)
D_MODEL, NUM_HEADS, D_FF = 16, 4, 32
F64 = torch.float64


@pytest.fixture(autouse=True)
def no_fast_path():
    # torch's inference fast path returns zeros at padded positions; compare the plain math path.
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    yield
    torch.backends.mha.set_fastpath_enabled(previous)


def randomise(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.3)


def test_layer_norm_equals_torch():
    torch.manual_seed(0)
    ours, theirs = LayerNorm(D_MODEL).double(), nn.LayerNorm(D_MODEL).double()
    randomise(theirs)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 5, D_MODEL, dtype=F64) * 3 + 1
    torch.testing.assert_close(ours(x), theirs(x), **TIGHT)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_equals_torch(norm_first):
    torch.manual_seed(0)
    theirs = nn.TransformerEncoderLayer(D_MODEL, NUM_HEADS, D_FF, batch_first=True, norm_first=norm_first,
                                        dtype=F64).eval()
    randomise(theirs)
    ours = EncoderLayer.from_torch(theirs).eval()
    x = torch.randn(2, 6, D_MODEL, dtype=F64)
    tokens = torch.tensor([[1, 2, 3, 4, 0, 0], [1, 2, 3, 4, 5, 6]])
    torch.testing.assert_close(ours(x), theirs(x), **TIGHT)
    expected = theirs(x, src_key_padding_mask=tokens == 0)
    out = ours(x, padding_mask(tokens, 0))
    real = tokens != 0
    torch.testing.assert_close(out[real], expected[real], **TIGHT)

    x2 = x.detach().clone().requires_grad_()
    x.requires_grad_()
    theirs(x).square().sum().backward()
    ours(x2).square().sum().backward()
    torch.testing.assert_close(x2.grad, x.grad, **TIGHT)
    torch.testing.assert_close(ours.feed_forward.linear1.weight.grad, theirs.linear1.weight.grad, **TIGHT)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_equals_torch(norm_first):
    torch.manual_seed(1)
    theirs = nn.TransformerDecoderLayer(D_MODEL, NUM_HEADS, D_FF, batch_first=True, norm_first=norm_first,
                                        dtype=F64).eval()
    randomise(theirs)
    ours = DecoderLayer.from_torch(theirs).eval()
    y = torch.randn(2, 5, D_MODEL, dtype=F64)
    memory = torch.randn(2, 7, D_MODEL, dtype=F64)
    src = torch.tensor([[1, 2, 3, 4, 5, 0, 0], [1, 2, 3, 4, 5, 6, 7]])
    causal = causal_mask(5)
    expected = theirs(y, memory, tgt_mask=~causal, memory_key_padding_mask=src == 0)
    out = ours(y, memory, tgt_mask=causal, src_mask=padding_mask(src, 0))
    torch.testing.assert_close(out, expected, **TIGHT)
    assert ours.cross_weights.shape == (2, NUM_HEADS, 5, 7)
    assert (ours.cross_weights[0, :, :, 5:] == 0).all()
    # The mask's former keyword still works, and giving it under both names is refused.
    assert torch.equal(ours(y, memory, causal, memory_mask=padding_mask(src, 0)), out)
    with pytest.raises(ValueError, match="src_mask"):
        ours(y, memory, causal, padding_mask(src, 0), memory_mask=padding_mask(src, 0))


def test_from_torch_rejects_what_it_cannot_copy():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="batch_first=True"):
        EncoderLayer.from_torch(nn.TransformerEncoderLayer(D_MODEL, NUM_HEADS, D_FF))
    with pytest.raises(ValueError, match="activation='relu'"):
        DecoderLayer.from_torch(
            nn.TransformerDecoderLayer(D_MODEL, NUM_HEADS, D_FF, activation="gelu", batch_first=True)
        )
    with pytest.raises(TypeError, match="TransformerDecoderLayer"):
        DecoderLayer.from_torch(nn.TransformerEncoderLayer(D_MODEL, NUM_HEADS, D_FF, batch_first=True))


def test_padding_never_changes_real_tokens():
    torch.manual_seed(2)
    layer = EncoderLayer(D_MODEL, NUM_HEADS, D_FF, dropout=0.0).double().eval()
    tokens = torch.tensor([[1, 2, 3, 0, 0]])
    x = torch.randn(1, 5, D_MODEL, dtype=F64)
    x_other = x.clone()
    x_other[0, 3:] = torch.randn(2, D_MODEL, dtype=F64) * 100
    mask = padding_mask(tokens, 0)
    torch.testing.assert_close(layer(x, mask)[0, :3], layer(x_other, mask)[0, :3], rtol=0, atol=1e-12)


def test_decoder_is_causal_bit_for_bit():
    torch.manual_seed(3)
    layer = DecoderLayer(D_MODEL, NUM_HEADS, D_FF, dropout=0.0).eval()
    y = torch.randn(2, 6, D_MODEL)
    memory = torch.randn(2, 4, D_MODEL)
    changed = y.clone()
    changed[:, 4:] = torch.randn(2, 2, D_MODEL)
    out, out_changed = layer(y, memory, causal_mask(6)), layer(changed, memory, causal_mask(6))
    assert torch.equal(out[:, :4], out_changed[:, :4])
    assert not torch.allclose(out[:, 4:], out_changed[:, 4:])


def test_parameter_counts_of_the_papers_models():
    with torch.device("meta"):
        base = Transformer(37000, 37000, share_embeddings=True)
        big = Transformer(37000, 37000, d_model=1024, num_heads=16, d_ff=4096, share_embeddings=True)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731 (shared parameters count once)
    assert abs(count(base) / 65e6 - 1) < 0.05 and abs(count(big) / 213e6 - 1) < 0.05
    assert base.output.weight is base.src_embedding.weight is base.tgt_embedding.weight


def test_transformer_forward_shapes_masks_and_greedy_decoding():
    torch.manual_seed(4)
    model = Transformer(11, 13, d_model=16, num_heads=4, num_layers=2, d_ff=32, dropout=0.0).eval()
    src = torch.tensor([[3, 4, 5, PAD], [3, 4, 5, 6]])
    tgt = torch.tensor([[BOS, 7, 8], [BOS, 9, PAD]])
    assert model(src, tgt).shape == (2, 3, 13)
    src_mask, tgt_mask = model.masks(src, tgt)
    assert src_mask.shape == (2, 1, 4) and tgt_mask.shape == (2, 3, 3)
    assert not tgt_mask[0, 0, 1] and not tgt_mask[1, 2, 2]
    out = model.greedy_decode(src, bos_id=BOS, eos_id=EOS, max_len=6)
    assert out.shape[0] == 2 and out.shape[1] <= 7 and (out[:, 0] == BOS).all()
    with pytest.raises(ValueError, match="one shared vocabulary"):
        Transformer(11, 13, share_embeddings=True)
    with pytest.raises(ValueError, match=r"src: expected token ids of shape \(B, n\)"):
        model(src[0], tgt)


def test_greedy_tokens_pads_finished_rows_and_stops():
    """Scripted logits: row 0 says EOS at its third token, row 1 never does."""
    script = torch.tensor([[5, 6, EOS, 7, 8], [4, 4, 4, 4, 4]])

    def next_logits(out: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(script[: out.shape[0], out.shape[1] - 1], num_classes=10).float()

    src = torch.zeros(2, 3, dtype=torch.long)
    out = greedy_tokens(next_logits, src, BOS, EOS, PAD, max_len=5)
    assert out.tolist() == [[BOS, 5, 6, EOS, PAD, PAD], [BOS, 4, 4, 4, 4, 4]]
    finished_early = greedy_tokens(next_logits, src[:1], BOS, EOS, PAD, max_len=5)
    assert finished_early.tolist() == [[BOS, 5, 6, EOS]], "every row ended: the loop stops"
