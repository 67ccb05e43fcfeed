"""helpers.efficient: chunked attention equals exact attention (and torch's), the n × n matrix never
exists, and greedy decoding with a KV cache gives exactly the tokens of the uncached decoder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from helpers.attention import causal_mask, padding_mask, scaled_dot_product_attention
from helpers.data import BOS, EOS, PAD, VOCAB, encode_pairs, reversal_pairs
from helpers.efficient import (
    cached_attention_step,
    chunked_attention,
    chunked_attention_bytes,
    greedy_decode_cached,
    naive_attention_bytes,
    online_softmax_update,
)
from helpers.transformer import Transformer

pytestmark = pytest.mark.usefixtures("one_thread")


TOLERANCE = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}


def qkv(batch, n_q, n_k, d_k, d_v, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*batch, n_q, d_k, generator=g, dtype=dtype),
            torch.randn(*batch, n_k, d_k, generator=g, dtype=dtype),
            torch.randn(*batch, n_k, d_v, generator=g, dtype=dtype))


# ---- online softmax and chunked attention ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("block_size", [1, 3, 16, 64, 128, 1000])
@pytest.mark.parametrize("n_k", [37, 64, 129])
def test_chunked_attention_equals_exact_attention(dtype, block_size, n_k):
    q, k, v = qkv((2, 3), 19, n_k, 8, 5, dtype, seed=n_k)
    expected = scaled_dot_product_attention(q, k, v)[0]
    out = chunked_attention(q, k, v, block_size=block_size)
    assert out.dtype == dtype and out.shape == (2, 3, 19, 5)
    torch.testing.assert_close(out, expected, **TOLERANCE[dtype])


@pytest.mark.parametrize("block_size", [7, 32, 100])
def test_chunked_attention_equals_torch_sdpa_with_causal_and_padding_masks(block_size):
    q, k, v = qkv((2, 4), 50, 50, 16, 16, seed=1)
    causal = causal_mask(50)
    torch.testing.assert_close(chunked_attention(q, k, v, causal, block_size),
                               F.scaled_dot_product_attention(q, k, v, is_causal=True), rtol=1e-5, atol=1e-5)
    tokens = torch.randint(1, 9, (2, 50), generator=torch.Generator().manual_seed(2))
    tokens[0, 41:] = 0
    tokens[1, 13:] = 0
    padding = padding_mask(tokens, 0).unsqueeze(1)  # (B, 1, 1, n_k)
    both = padding & causal
    for mask in (padding, both):
        torch.testing.assert_close(chunked_attention(q, k, v, mask, block_size),
                                   F.scaled_dot_product_attention(q, k, v, attn_mask=mask), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(chunked_attention(q, k, v, mask, block_size),
                                   scaled_dot_product_attention(q, k, v, mask)[0], rtol=1e-5, atol=1e-5)


def test_chunked_attention_with_large_scores_and_float64_causal_mask():
    q, k, v = qkv((3,), 33, 33, 4, 6, torch.float64, seed=3)
    q = q * 40  # scores in the hundreds: exp without the running maximum would overflow
    expected = scaled_dot_product_attention(q, k, v, causal_mask(33))[0]
    torch.testing.assert_close(chunked_attention(q, k, v, causal_mask(33), block_size=5), expected,
                               rtol=1e-12, atol=1e-12)


def test_fully_masked_rows_give_zeros_like_the_helpers():
    q, k, v = qkv((2,), 6, 10, 4, 3, seed=4)
    mask = torch.ones(2, 6, 10, dtype=torch.bool)
    mask[0, 2] = False  # query 2 of the first sequence may attend to nothing
    mask[1, :, 4:] = False  # keys 4.. masked: a whole later block is empty
    out = chunked_attention(q, k, v, mask, block_size=4)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0, 2], torch.zeros(3))
    torch.testing.assert_close(out, scaled_dot_product_attention(q, k, v, mask)[0], rtol=1e-5, atol=1e-5)


def test_masks_broadcast_like_the_helpers():
    q, k, v = qkv((2, 3), 5, 9, 4, 4, seed=5)
    for mask in (torch.ones(5, 1, dtype=torch.bool), torch.rand(1, 9, generator=torch.Generator().manual_seed(0)) > 0.3,
                 causal_mask(9)[:5]):
        torch.testing.assert_close(chunked_attention(q, k, v, mask, block_size=4),
                                   scaled_dot_product_attention(q, k, v, mask)[0], rtol=1e-5, atol=1e-5)


def test_batch_dimensions_broadcast():
    q, _, _ = qkv((2, 3), 7, 7, 4, 4, seed=6)
    _, k, v = qkv((1, 3), 7, 11, 4, 2, seed=7)
    torch.testing.assert_close(chunked_attention(q, k, v, block_size=4), scaled_dot_product_attention(q, k, v)[0],
                               rtol=1e-5, atol=1e-5)


class _ShapeRecorder(TorchDispatchMode):
    """Records the shape of every tensor that any aten operation creates."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.shapes.append(tuple(t.shape))
        return out


def test_chunked_attention_never_materialises_the_n_by_n_matrix():
    n, block = 96, 16
    q, k, v = qkv((2,), n, n, 8, 8, seed=8)
    mask = causal_mask(n)  # an input (n × n booleans); inside, only blocks of it are used
    recorder = _ShapeRecorder()
    with recorder:
        chunked_attention(q, k, v, mask, block_size=block)
    assert recorder.shapes, "the recorder saw the operations"
    largest = max(torch.Size(s).numel() for s in recorder.shapes)
    assert largest <= 2 * n * max(block, 8), f"a tensor of {largest} elements was created"
    assert not any(s[-2:] == (n, n) for s in recorder.shapes if len(s) >= 2)
    with recorder:
        scaled_dot_product_attention(q, k, v)
    assert any(s[-2:] == (n, n) for s in recorder.shapes if len(s) >= 2), "exact attention does make (n, n)"


def test_online_softmax_update_folds_blocks_into_the_softmax():
    g = torch.Generator().manual_seed(9)
    scores, v = torch.randn(3, 4, 10, generator=g, dtype=torch.float64), torch.randn(3, 10, 2, generator=g,
                                                                                       dtype=torch.float64)
    m = torch.full((3, 4, 1), float("-inf"), dtype=torch.float64)
    z = torch.zeros(3, 4, 1, dtype=torch.float64)
    acc = torch.zeros(3, 4, 2, dtype=torch.float64)
    for start in (0, 3, 6, 9):
        m, z, acc = online_softmax_update(m, z, acc, scores[..., start : start + 3], v[..., start : start + 3, :])
    torch.testing.assert_close(m, scores.amax(dim=-1, keepdim=True))
    torch.testing.assert_close(z, torch.exp(scores - m).sum(dim=-1, keepdim=True))
    torch.testing.assert_close(acc / z, torch.softmax(scores, dim=-1) @ v)


def test_online_softmax_update_keeps_fully_masked_rows_at_zero():
    m = torch.full((2, 1), float("-inf"))
    z, acc = torch.zeros(2, 1), torch.zeros(2, 3)
    scores = torch.full((2, 4), float("-inf"))
    scores[1, 2] = 0.5
    m, z, acc = online_softmax_update(m, z, acc, scores, torch.ones(4, 3))
    assert torch.isfinite(z).all() and torch.isfinite(acc).all()
    assert m[0, 0] == float("-inf") and z[0, 0] == 0 and torch.equal(acc[0], torch.zeros(3))
    assert m[1, 0] == 0.5 and z[1, 0] == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((torch.ones(2, 4, 3), torch.ones(2, 5, 2), torch.ones(2, 5, 3)), "d_k"),
        ((torch.ones(2, 4, 3), torch.ones(2, 5, 3), torch.ones(2, 6, 3)), "n_k"),
        ((torch.ones(4), torch.ones(5, 4), torch.ones(5, 3)), "(..., n_q, d_k)"),
        ((torch.ones(2, 4, 3), torch.ones(3, 5, 3), torch.ones(3, 5, 3)), "cannot be broadcast"),
    ],
)
def test_chunked_attention_names_wrong_shapes(args, words):
    with pytest.raises(ValueError, match="shape|broadcast") as info:
        chunked_attention(*args)
    assert words in str(info.value)


def test_chunked_attention_validates_mask_and_block_size():
    q, k, v = qkv((2,), 4, 6, 3, 3)
    with pytest.raises(ValueError, match="boolean"):
        chunked_attention(q, k, v, torch.ones(4, 6))
    with pytest.raises(ValueError, match=r"\(4, 5\) does not broadcast.*\(2, 4, 6\)"):
        chunked_attention(q, k, v, torch.ones(4, 5, dtype=torch.bool))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="block_size"):
            chunked_attention(q, k, v, block_size=bad)


def test_theoretical_memory():
    assert naive_attention_bytes(1024, 1024) == 2 * 1024 * 1024 * 4
    assert naive_attention_bytes(8, 8, batch=2, dtype=torch.float64) == 2 * 2 * 64 * 8
    assert chunked_attention_bytes(1024, 128, 64) == 1024 * (2 * 128 + 64 + 2) * 4
    assert chunked_attention_bytes(8192, 128, 64) * 8 < naive_attention_bytes(8192, 8192)


# ---- the KV cache -----------------------------------------------------------------------------------------

def test_cached_steps_equal_causal_attention():
    Q, K, V = qkv((2, 3), 9, 9, 4, 6, seed=10)
    k_cache = v_cache = None
    outputs = []
    for i in range(9):
        out, k_cache, v_cache = cached_attention_step(Q[..., i : i + 1, :], K[..., i : i + 1, :], V[..., i : i + 1, :],
                                                      k_cache, v_cache)
        assert k_cache.shape == (2, 3, i + 1, 4) and v_cache.shape == (2, 3, i + 1, 6)
        outputs.append(out)
    expected = scaled_dot_product_attention(Q, K, V, causal_mask(9))[0]
    torch.testing.assert_close(torch.cat(outputs, dim=-2), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k_cache, K)
    torch.testing.assert_close(v_cache, V)


def test_cached_step_with_a_padding_mask_and_validation():
    q, k_new, v_new = qkv((2,), 1, 1, 4, 3, seed=11)
    _, k_cache, v_cache = qkv((2,), 1, 3, 4, 3, seed=12)
    mask = torch.tensor([[True, False, True, True], [True, True, True, False]]).unsqueeze(1)  # (B, 1, t + 1)
    out, k_all, _ = cached_attention_step(q, k_new, v_new, k_cache, v_cache, mask)
    expected = scaled_dot_product_attention(q, k_all, torch.cat([v_cache, v_new], dim=-2), mask)[0]
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="d_k"):
        cached_attention_step(q, k_new, v_new, k_cache[..., :2], v_cache)
    with pytest.raises(ValueError, match=r"t \(one cached value per cached key\)"):
        cached_attention_step(q, k_new, v_new, k_cache, v_cache[:, :2])


def _model(norm_first: bool, seed: int, dtype=torch.float32, d_model=32, layers=2) -> Transformer:
    torch.manual_seed(seed)
    model = Transformer(len(VOCAB), len(VOCAB), d_model=d_model, num_heads=4, num_layers=layers, d_ff=2 * d_model,
                        dropout=0.1, norm_first=norm_first, max_len=80)
    return model.to(dtype).eval()


def _sources(count: int, seed: int) -> torch.Tensor:
    return encode_pairs(reversal_pairs(count, seed=seed, min_len=3, max_len=11)).src  # padded: lengths differ


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cached_greedy_decoding_equals_uncached_on_random_models(norm_first, seed):
    model = _model(norm_first, seed)
    src = _sources(6, seed)
    assert (src == 0).any(), "the batch has padding"
    for eos in (EOS, -1):  # -1 never occurs: every row runs max_len steps
        expected = model.greedy_decode(src, bos_id=BOS, eos_id=eos, max_len=30)
        assert torch.equal(greedy_decode_cached(model, src, bos_id=BOS, eos_id=eos, max_len=30), expected)


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_greedy_decoding_equals_uncached_in_float64_with_generated_padding(norm_first):
    model = _model(norm_first, 5, torch.float64)
    with torch.no_grad():  # make the decoder love PAD (id 0) so that padding keys appear mid-sequence
        model.output.bias[0] += 3.0
    src = _sources(5, 7)
    expected = model.greedy_decode(src, bos_id=BOS, eos_id=-1, max_len=25)
    assert (expected[:, 1:] == 0).any(), "the decoder generated PAD tokens"
    assert torch.equal(greedy_decode_cached(model, src, bos_id=BOS, eos_id=-1, max_len=25), expected)


@pytest.fixture(scope="module")
def trained_model() -> Transformer:
    """A small model trained for 100 steps on reversal: it has learned to stop (EOS) on many inputs."""
    data = encode_pairs(reversal_pairs(600, seed=3, min_len=3, max_len=6))
    torch.manual_seed(0)
    model = Transformer(len(VOCAB), len(VOCAB), d_model=32, num_heads=4, num_layers=1, d_ff=64, dropout=0.0,
                        share_embeddings=True, norm_first=True, max_len=40)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        batch = data[torch.randint(len(data), (32,), generator=generator)]
        logits = model(batch.src, batch.tgt_in)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_cached_greedy_decoding_equals_uncached_on_a_trained_model(trained_model):
    src = encode_pairs(reversal_pairs(40, seed=99, min_len=3, max_len=6)).src
    expected = trained_model.greedy_decode(src, bos_id=BOS, eos_id=EOS, max_len=10)
    assert (expected == EOS).any(dim=1).float().mean() > 0.25, "the model has learned to stop"
    assert torch.equal(greedy_decode_cached(trained_model, src, bos_id=BOS, eos_id=EOS, max_len=10), expected)


def test_cached_decoding_refuses_what_it_cannot_do():
    model = _model(False, 0)
    src = _sources(2, 0)
    with pytest.raises(TypeError, match="Transformer"):
        greedy_decode_cached(torch.nn.Linear(2, 2), src, BOS, EOS, 5)
    with pytest.raises(ValueError, match="shape"):
        greedy_decode_cached(model, src[0], BOS, EOS, 5)
    model.causal = False
    with pytest.raises(ValueError, match="causal"):
        greedy_decode_cached(model, src, BOS, EOS, 5)
    model.causal = True
    with pytest.raises(ValueError, match="max_len"):
        greedy_decode_cached(model, src, BOS, -1, 100)  # the positional table holds 80 positions
