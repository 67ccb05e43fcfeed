"""helpers.modern against Hugging Face's Llama (weights copied, float64) and against its properties."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: nothing is fetched

import pytest
import torch

from helpers.modern import (
    GroupedQueryAttention,
    KVCache,
    LlamaStyleConfig,
    LlamaStyleLM,
    RMSNorm,
    SwiGLU,
    apply_rope,
    apply_rope_interleaved,
    count_parameters,
    interleaved_to_halves,
    no_network,
    paired_parameters,
    repeat_kv,
    rms_norm,
    sliding_window_mask,
)

transformers = pytest.importorskip("transformers")  # its models load on first use, below


def llama():  # -> transformers.models.llama.modeling_llama
    """Hugging Face's Llama code, imported when a test first needs it: about 2.5 s that only the
    worker running these tests pays (every worker collects this module)."""
    from transformers.models.llama import modeling_llama

    return modeling_llama


F64 = torch.float64
TIGHT = dict(rtol=1e-12, atol=1e-12)

# Two configurations: multi-head with tied embeddings, and grouped-query (4 query heads per kv head).
CONFIGS = {
    "mha-tied": dict(vocab_size=61, hidden_size=32, intermediate_size=72, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True),
    "gqa": dict(vocab_size=97, hidden_size=48, intermediate_size=128, num_hidden_layers=3,
                num_attention_heads=8, num_key_value_heads=2, rope_theta=500.0, rms_norm_eps=1e-5),
}


def hf_llama(name: str) -> torch.nn.Module:
    settings = dict(CONFIGS[name])
    theta = settings.pop("rope_theta", 10000.0)
    config = transformers.LlamaConfig(**settings, max_position_embeddings=128, attn_implementation="eager",
                                      bos_token_id=None, eos_token_id=None, pad_token_id=None,  # none stops generate
                                      rope_parameters={"rope_type": "default", "rope_theta": theta})
    with no_network() as attempts:
        model = transformers.LlamaForCausalLM(config)
    assert attempts == []
    with torch.no_grad():  # norms start at 1: make them random so a swapped norm would show
        for module in model.modules():
            if isinstance(module, llama().LlamaRMSNorm):
                module.weight.uniform_(0.5, 1.5)
    return model.double().eval()


@pytest.mark.parametrize("name", CONFIGS)
def test_logits_equal_hugging_face(name):
    theirs = hf_llama(name)
    ours = LlamaStyleLM.from_hf(theirs)
    assert count_parameters(ours) == sum(p.numel() for p in theirs.parameters())
    ids = torch.randint(0, theirs.config.vocab_size, (3, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = theirs(ids).logits
        actual = ours(ids)
    assert (actual - expected).abs().max().item() < 1e-12
    assert expected.abs().max().item() > 0.1  # not trivially equal


@pytest.mark.parametrize("name", CONFIGS)
def test_gradients_equal_hugging_face(name):
    theirs = hf_llama(name)
    ours = LlamaStyleLM.from_hf(theirs)
    ids = torch.randint(0, theirs.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(2))

    def next_token_loss(logits: torch.Tensor) -> torch.Tensor:
        # Not `theirs(ids, labels=ids).loss`: Hugging Face's loss casts the logits to float32.
        return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())

    next_token_loss(theirs(ids).logits).backward()
    next_token_loss(ours(ids)).backward()
    pairs = paired_parameters(ours, theirs)
    assert len(pairs) == len(list(theirs.parameters()))
    for mine, reference in pairs:
        torch.testing.assert_close(mine.grad, reference.grad, **TIGHT)
        assert reference.grad.abs().max() > 0


def test_greedy_generation_equals_hugging_face_and_cache_changes_nothing():
    theirs = hf_llama("gqa")
    ours = LlamaStyleLM.from_hf(theirs)
    prompt = torch.tensor([[5, 17, 3, 88]])
    with torch.no_grad():
        expected = theirs.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False)
    assert torch.equal(ours.generate_greedy(prompt, 8), expected)
    assert torch.equal(ours.generate_greedy(prompt, 8, use_cache=False), expected)


def test_from_hf_keeps_dtype_and_mode_and_refuses_what_it_cannot_copy():
    theirs = hf_llama("gqa").train()
    ours = LlamaStyleLM.from_hf(theirs)
    assert ours.training and ours.embed.weight.dtype == F64
    biased = transformers.LlamaConfig(vocab_size=10, hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                                      num_attention_heads=2, attention_bias=True)
    with pytest.raises(ValueError, match="bias"):
        LlamaStyleLM.from_hf(transformers.LlamaForCausalLM(biased))


# --- RoPE -------------------------------------------------------------------------------------------------


def test_rope_equals_hugging_face_rotary():
    head_dim, n = 16, 9
    config = transformers.LlamaConfig(hidden_size=64, num_attention_heads=4)
    rotary = llama().LlamaRotaryEmbedding(config)
    q, k = torch.randn(2, 4, n, head_dim, dtype=F64), torch.randn(2, 4, n, head_dim, dtype=F64)
    positions = torch.arange(3, 3 + n)
    cos, sin = rotary(q, positions[None])
    q_hf, k_hf = llama().apply_rotary_pos_emb(q, k, cos, sin)
    assert torch.equal(apply_rope(q, positions), q_hf) and torch.equal(apply_rope(k, positions), k_hf)


def test_rope_scores_depend_on_the_offset_only():
    q, k = torch.randn(1, 32, dtype=F64), torch.randn(1, 32, dtype=F64)

    def score(m: int, n: int) -> float:
        return float(apply_rope(q, torch.tensor([m]))[0] @ apply_rope(k, torch.tensor([n]))[0])

    for offset in (0, 1, 5, -3):
        scores = [score(m + offset, m) for m in (0, 4, 11, 100)]
        assert max(scores) - min(scores) < 1e-5, scores  # the angles are float32, as in Hugging Face
    assert abs(score(5, 0) - score(0, 0)) > 1e-3  # but it does change with the offset


def test_rope_is_a_rotation_and_position_zero_is_the_identity():
    x = torch.randn(3, 6, 8, dtype=F64)
    rotated = apply_rope(x, torch.arange(6))
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rotated[:, 0], x[:, 0])
    assert not torch.allclose(rotated[:, 1], x[:, 1])


def test_interleaved_convention_is_a_permutation_of_rotate_half():
    x, positions = torch.randn(2, 5, 12, dtype=F64), torch.arange(5)
    perm = interleaved_to_halves(12)
    torch.testing.assert_close(apply_rope_interleaved(x, positions)[..., perm], apply_rope(x[..., perm], positions))
    assert not torch.allclose(apply_rope_interleaved(x, positions), apply_rope(x, positions))


def test_rope_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(4,\)"):
        apply_rope(torch.randn(4, 8), torch.arange(5))
    with pytest.raises(ValueError, match="even"):
        apply_rope(torch.randn(4, 7), torch.arange(4))


# --- RMSNorm, SwiGLU ---------------------------------------------------------------------------------------


def test_rms_norm_equals_the_formula_torch_and_hugging_face():
    x = torch.randn(2, 5, 16, dtype=torch.float32) * 3 + 1
    weight = torch.rand(16) + 0.5
    formula = x / torch.sqrt((x**2).mean(dim=-1, keepdim=True) + 1e-6) * weight
    torch.testing.assert_close(rms_norm(x, weight, 1e-6), formula)
    theirs = llama().LlamaRMSNorm(16, eps=1e-6)
    with torch.no_grad():
        theirs.weight.copy_(weight)
    ours = RMSNorm(16, eps=1e-6)
    ours.load_state_dict({"weight": weight})
    assert torch.equal(ours(x), theirs(x))
    if hasattr(torch.nn, "RMSNorm"):
        torch_norm = torch.nn.RMSNorm(16, eps=1e-6)
        with torch.no_grad():
            torch_norm.weight.copy_(weight)
        torch.testing.assert_close(ours(x), torch_norm(x))


def test_rms_norm_keeps_the_mean_unlike_layer_norm():
    x = torch.randn(4, 16, dtype=F64) + 5.0
    out = rms_norm(x, torch.ones(16, dtype=F64))
    torch.testing.assert_close((out**2).mean(dim=-1), torch.ones(4, dtype=F64), rtol=1e-5, atol=1e-5)
    assert (out.mean(dim=-1) > 0.9).all()  # a LayerNorm would have centred it at 0
    with pytest.raises(ValueError, match=r"\(16,\)"):
        rms_norm(x, torch.ones(8, dtype=F64))


def test_swiglu_equals_hugging_face_mlp():
    config = transformers.LlamaConfig(hidden_size=16, intermediate_size=40, num_attention_heads=2)
    theirs = llama().LlamaMLP(config).double()
    ours = SwiGLU(16, 40).double()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 4, 16, dtype=F64)
    assert torch.equal(ours(x), theirs(x))
    assert count_parameters(ours) == 3 * 16 * 40


# --- grouped-query attention, KV cache, sliding window --------------------------------------------------


def test_repeat_kv_groups_consecutive_query_heads():
    x = torch.randn(2, 3, 5, 4)
    out = repeat_kv(x, 4)
    assert out.shape == (2, 12, 5, 4)
    assert torch.equal(out, torch.repeat_interleave(x, 4, dim=1))
    assert torch.equal(out, llama().repeat_kv(x, 4))
    assert torch.equal(out[:, 7], x[:, 1])  # query head 7 uses kv head 7 // 4 = 1
    with pytest.raises(ValueError, match=r"\(B, h_kv, n, d\)"):
        repeat_kv(torch.randn(3, 5, 4), 2)


def test_multi_query_with_one_kv_head_equals_multi_head_with_copied_kv_heads():
    torch.manual_seed(0)
    mqa = GroupedQueryAttention(16, 4, num_kv_heads=1).double()
    mha = GroupedQueryAttention(16, 4, num_kv_heads=4).double()
    with torch.no_grad():
        mha.q_proj.weight.copy_(mqa.q_proj.weight)
        mha.o_proj.weight.copy_(mqa.o_proj.weight)
        mha.k_proj.weight.copy_(mqa.k_proj.weight.repeat(4, 1))
        mha.v_proj.weight.copy_(mqa.v_proj.weight.repeat(4, 1))
    x = torch.randn(2, 7, 16, dtype=F64)
    torch.testing.assert_close(mqa(x), mha(x), **TIGHT)


@pytest.mark.parametrize("kv_heads", [8, 2, 1])
def test_kv_cache_bytes_per_token_follow_the_formula(kv_heads):
    config = LlamaStyleConfig(vocab_size=50, d_model=64, num_layers=3, num_heads=8, num_kv_heads=kv_heads, d_ff=96)
    model = LlamaStyleLM(config).eval()
    cache = KVCache()
    with torch.no_grad():
        model(torch.randint(0, 50, (2, 10)), cache)
    head_dim = 64 // 8
    assert cache.keys[0].shape == (2, kv_heads, 10, head_dim)
    assert cache.bytes_per_token() == 2 * config.num_layers * kv_heads * head_dim * 4


def test_cached_decoding_equals_the_full_forward():
    config = LlamaStyleConfig(vocab_size=40, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2, d_ff=64)
    model = LlamaStyleLM(config).double().eval()
    ids = torch.randint(0, 40, (2, 9), generator=torch.Generator().manual_seed(0))
    cache = KVCache()
    with torch.no_grad():
        full = model(ids)
        steps = [model(ids[:, :4], cache)] + [model(ids[:, t:t + 1], cache) for t in range(4, 9)]
    # Not TIGHT: the softmax and the rotary angles are float32 islands even in a float64 model
    # (as in Hugging Face's code), and a cached step rounds them over other shapes than the full pass.
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-6, atol=1e-6)
    assert cache.length == 9


def test_the_model_is_causal():
    model = LlamaStyleLM(LlamaStyleConfig(vocab_size=30, d_model=16, num_heads=2, num_kv_heads=1, d_ff=32))
    ids = torch.randint(0, 30, (1, 8))
    changed = ids.clone()
    changed[0, 5:] = (changed[0, 5:] + 1) % 30
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[:, :5], model(changed)[:, :5])
        assert not torch.allclose(model(ids)[:, 5:], model(changed)[:, 5:])


def test_sliding_window_mask():
    assert torch.equal(sliding_window_mask(5, 5), torch.ones(5, 5, dtype=torch.bool).tril())
    assert torch.equal(sliding_window_mask(5, 5, window=1), torch.eye(5, dtype=torch.bool))
    band = sliding_window_mask(6, 6, window=3)
    assert band.sum(dim=-1).tolist() == [1, 2, 3, 3, 3, 3] and not band[5, 2] and band[5, 3]
    assert torch.equal(sliding_window_mask(2, 6, window=3), band[4:])  # the last queries, with a cache
    with pytest.raises(ValueError):
        sliding_window_mask(6, 4)


def test_sliding_window_limits_how_far_a_token_can_see():
    config = LlamaStyleConfig(vocab_size=30, d_model=16, num_layers=1, num_heads=2, num_kv_heads=2, d_ff=32, window=3)
    model = LlamaStyleLM(config).double()
    ids = torch.randint(0, 30, (1, 10))
    changed = ids.clone()
    changed[0, 0] = (changed[0, 0] + 1) % 30
    with torch.no_grad():
        diff = (model(ids) - model(changed)).abs().amax(dim=-1)[0]
    assert (diff[:3] > 0).all() and (diff[3:] == 0).all()  # one layer, window 3: token 0 reaches tokens 0-2


def test_attention_rejects_wrong_shapes_and_groups():
    with pytest.raises(ValueError, match="divide"):
        GroupedQueryAttention(16, 4, num_kv_heads=3)
    with pytest.raises(ValueError, match=r"\(B, n, d_model=16\)"):
        GroupedQueryAttention(16, 4)(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match=r"\(B, n\)"):
        LlamaStyleLM(LlamaStyleConfig())(torch.zeros(5, dtype=torch.long))
