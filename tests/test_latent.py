"""helpers.latent: multi-head latent attention equals Hugging Face's DeepseekV3Attention, cached or not."""

from __future__ import annotations

import pytest
import torch

from helpers import modern
from helpers.latent import LatentCache, LatentConfig, MultiHeadLatentAttention, absorb_query

F64 = torch.float64


@pytest.fixture(scope="module")
def hf_layer():
    """A tiny DeepseekV3 model's attention layer and rotary embedding, float64, random RMSNorm gains."""
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    config = DeepseekV3Config(vocab_size=32, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
                              num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=16,
                              q_lora_rank=24, qk_rope_head_dim=8, qk_nope_head_dim=12, v_head_dim=10,
                              first_k_dense_replace=1, n_routed_experts=4, n_group=1, topk_group=1,
                              num_experts_per_tok=2, max_position_embeddings=64, attn_implementation="eager",
                              bos_token_id=None, eos_token_id=None, pad_token_id=None)
    torch.manual_seed(0)
    with modern.no_network() as attempts:
        model = DeepseekV3ForCausalLM(config).double()
    assert attempts == []
    attention = model.model.layers[0].self_attn
    with torch.no_grad():
        for name, p in attention.named_parameters():
            if "layernorm" in name:
                p.uniform_(0.5, 1.5)
    return config, attention, model.model.rotary_emb


def run_hf(attention, rotary, x, start=0, cache=None):
    n = x.shape[1]
    positions = torch.arange(start, start + n)[None].expand(x.shape[0], -1)
    allowed = torch.arange(start + n)[None, :] <= torch.arange(start, start + n)[:, None]
    mask = torch.zeros(x.shape[0], 1, n, start + n, dtype=x.dtype).masked_fill(~allowed, torch.finfo(x.dtype).min)
    return attention(x, rotary(x, positions), mask, cache=cache)[0]


def test_outputs_and_gradients_equal_hugging_face(hf_layer):
    _, attention, rotary = hf_layer
    ours = MultiHeadLatentAttention.from_hf(attention)
    x = torch.randn(2, 7, 64, dtype=F64, requires_grad=True)
    theirs_out, ours_out = run_hf(attention, rotary, x), ours(x)
    assert (theirs_out - ours_out).abs().max().item() < 1e-12
    theirs_grads = torch.autograd.grad(theirs_out.square().sum(), [x, *attention.parameters()])
    ours_grads = torch.autograd.grad(ours_out.square().sum(), [x, *ours.parameters()])
    assert len(theirs_grads) == len(ours_grads) == 1 + 7
    assert max((a - b).abs().max().item() for a, b in zip(theirs_grads, ours_grads, strict=True)) < 1e-12


def test_with_the_cache_equal_hugging_face_and_bytes(hf_layer):
    from transformers.cache_utils import DynamicCache

    config, attention, rotary = hf_layer
    ours = MultiHeadLatentAttention.from_hf(attention)
    x = torch.randn(2, 7, 64, dtype=F64, requires_grad=True)
    theirs_cache, our_cache = DynamicCache(config=config), LatentCache()
    theirs = [run_hf(attention, rotary, x[:, :4], 0, theirs_cache)]
    mine = [ours(x[:, :4], our_cache)]
    for t in range(4, 7):
        theirs.append(run_hf(attention, rotary, x[:, t:t + 1], t, theirs_cache))
        mine.append(ours(x[:, t:t + 1], our_cache))
    theirs_out, ours_out = torch.cat(theirs, 1), torch.cat(mine, 1)
    assert (theirs_out - ours_out).abs().max().item() < 1e-12
    assert (ours_out - ours(x)).abs().max().item() < 1e-12
    g_theirs = torch.autograd.grad(theirs_out.square().sum(), [x, *attention.parameters()])
    g_ours = torch.autograd.grad(ours_out.square().sum(), [x, *ours.parameters()])
    assert max((a - b).abs().max().item() for a, b in zip(g_theirs, g_ours, strict=True)) < 1e-12
    assert our_cache.latents[0].shape == (2, 7, 16) and our_cache.rope_keys[0].shape == (2, 7, 8)
    assert our_cache.bytes_per_token() == (16 + 8) * 8  # d_c + d_R numbers of float64
    layer = theirs_cache.layers[0]
    theirs_bytes = sum(t.numel() * t.element_size() for t in (layer.keys, layer.values))
    assert theirs_bytes == our_cache.nbytes()


@pytest.mark.parametrize("q_lora_rank", [None, 12])
def test_the_absorbed_form_equals_the_plain_form(q_lora_rank):
    torch.manual_seed(1)
    layer = MultiHeadLatentAttention(LatentConfig(d_model=32, num_heads=4, kv_lora_rank=24, q_lora_rank=q_lora_rank,
                                                  qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6)).double()
    x = torch.randn(3, 5, 32, dtype=F64)
    previous = modern.ISLAND_DTYPE
    try:
        modern.ISLAND_DTYPE = F64
        torch.testing.assert_close(layer(x, absorbed=True), layer(x), rtol=1e-12, atol=1e-12)
        cache = LatentCache()
        steps = [layer(x[:, :3], cache, absorbed=True), layer(x[:, 3:], cache, absorbed=True)]
        torch.testing.assert_close(torch.cat(steps, 1), layer(x), rtol=1e-12, atol=1e-12)
    finally:
        modern.ISLAND_DTYPE = previous


def test_absorb_query_shapes_and_errors():
    q, w = torch.randn(2, 3, 5, 4, dtype=F64), torch.randn(3, 4, 7, dtype=F64)
    latent = torch.randn(2, 1, 6, 7, dtype=F64)
    torch.testing.assert_close(absorb_query(q, w) @ latent.mT, q @ (latent @ w.mT).mT)
    assert absorb_query(q[0], w).shape == (3, 5, 7)
    with pytest.raises(ValueError, match=r"\(3, 7, 4\)"):
        absorb_query(q, w.mT)
    with pytest.raises(ValueError, match=r"expected shape \(B, n, d_model=32\), got \(2, 5, 16\)"):
        MultiHeadLatentAttention(LatentConfig(d_model=32, num_heads=4, kv_lora_rank=8, qk_nope_head_dim=4,
                                              qk_rope_head_dim=4, v_head_dim=4))(torch.randn(2, 5, 16))


def test_the_cache_is_small_and_independent_of_the_heads():
    for heads in (2, 8):
        layer = MultiHeadLatentAttention(LatentConfig(d_model=64, num_heads=heads, kv_lora_rank=16,
                                                      qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8))
        cache = LatentCache()
        with torch.no_grad():
            layer(torch.randn(1, 9, 64), cache)
        assert cache.bytes_per_token() == (16 + 4) * 4
