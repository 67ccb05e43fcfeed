"""helpers.gpt against Hugging Face's GPT2LMHeadModel (random weights, nothing downloaded), and its own properties."""

import os
import socket

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: never reach for the Hub

import pytest
import torch

from helpers.corpus import Corpus
from helpers.gpt import GPT, GPTConfig, causal_lm_loss, evaluate_lm, gpt2_small_parameter_count, train_lm
from helpers.sampling import generate

transformers = pytest.importorskip("transformers")
huggingface_hub = pytest.importorskip("huggingface_hub")
transformers.logging.set_verbosity_error()

CONFIGS = [
    GPTConfig(vocab_size=37, max_len=32, d_model=48, num_layers=3, num_heads=4),
    GPTConfig(vocab_size=50, max_len=24, d_model=30, num_layers=2, num_heads=5, d_ff=70, eps=1e-6),
]


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: building and running models must stay offline."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a network connection was attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    cache = huggingface_hub.constants.HF_HUB_CACHE
    before = set(os.listdir(cache)) if os.path.isdir(cache) else set()
    yield
    after = set(os.listdir(cache)) if os.path.isdir(cache) else set()
    assert after == before, f"something was written to the Hugging Face cache: {sorted(after - before)}"


def hf_pair(config: GPTConfig, seed: int = 0) -> tuple[torch.nn.Module, GPT]:
    """A random GPT-2 and our copy. Weights drawn wider than GPT-2's 0.02, so the logits are far from uniform
    and greedy decoding does not just repeat one token."""
    torch.manual_seed(seed)
    hf = transformers.GPT2LMHeadModel(config.to_hf(initializer_range=0.3)).double().eval()
    return hf, GPT.from_hf(hf)


@pytest.mark.parametrize("config", CONFIGS)
def test_logits_equal_hugging_face(no_network, config):
    hf, ours = hf_pair(config)
    tokens = torch.randint(0, config.vocab_size, (3, config.max_len))
    theirs = hf(tokens).logits
    assert ours(tokens).dtype == torch.float64
    assert (ours(tokens) - theirs).abs().max().item() < 1e-12
    assert theirs.abs().max().item() > 0.1  # a meaningful comparison, not of two near-zero tensors


@pytest.mark.parametrize("config", CONFIGS)
def test_gradients_equal_hugging_face(no_network, config):
    hf, ours = hf_pair(config, seed=1)
    tokens = torch.randint(0, config.vocab_size, (2, 16))
    causal_lm_loss(hf(tokens).logits, tokens).backward()
    causal_lm_loss(ours(tokens), tokens).backward()
    t = hf.transformer
    pairs = [(ours.token_embedding.weight.grad, t.wte.weight.grad),  # tied: input and output uses together
             (ours.position_embedding.weight.grad, t.wpe.weight.grad),
             (ours.norm.weight.grad, t.ln_f.weight.grad)]
    for block, theirs in zip(ours.blocks, t.h):
        a = block.attention
        fused = torch.cat([a.W_q.weight.grad.T, a.W_k.weight.grad.T, a.W_v.weight.grad.T], dim=1)
        pairs += [(fused, theirs.attn.c_attn.weight.grad), (a.W_o.weight.grad.T, theirs.attn.c_proj.weight.grad),
                  (block.mlp.linear1.weight.grad.T, theirs.mlp.c_fc.weight.grad),
                  (block.mlp.linear2.bias.grad, theirs.mlp.c_proj.bias.grad),
                  (block.norm1.bias.grad, theirs.ln_1.bias.grad)]
    for mine, reference in pairs:
        assert reference.abs().max() > 0
        assert (mine - reference).abs().max().item() < 1e-12


def test_loss_equals_hugging_face_with_labels(no_network):
    hf, ours = hf_pair(CONFIGS[0], seed=2)
    tokens = torch.randint(0, 37, (4, 20))
    # Hugging Face computes its loss in float32 whatever the model's dtype, hence the looser tolerance.
    assert causal_lm_loss(ours(tokens), tokens).item() == pytest.approx(hf(tokens, labels=tokens).loss.item(),
                                                                        abs=1e-6)


@pytest.mark.parametrize("config", CONFIGS)
def test_greedy_generation_equals_hugging_face(no_network, config):
    hf, ours = hf_pair(config, seed=3)
    prompt = torch.randint(0, config.vocab_size, (2, 5))
    theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=15, do_sample=False,
                         pad_token_id=0)
    mine = generate(ours, prompt, 15, temperature=0)
    assert mine.shape == theirs.shape == (2, 20)
    assert torch.equal(mine, theirs)
    assert len(set(mine[0, 5:].tolist())) > 1  # not a constant continuation, which would prove little


def test_kv_cache_step_equals_forward():
    torch.manual_seed(4)
    model = GPT(CONFIGS[0]).double().eval()
    tokens = torch.randint(0, 37, (2, 20))
    full = model(tokens)
    logits, cache = model.step(tokens[:, :7])
    pieces = [logits]
    for i in range(7, 20):
        logits, cache = model.step(tokens[:, i : i + 1], cache)
        pieces.append(logits)
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() < 1e-12
    assert cache[0][0].shape == (2, 4, 20, 12)  # (B, h, t, d_head) per layer


def test_cached_generation_equals_uncached():
    torch.manual_seed(5)
    model = GPT(CONFIGS[1]).eval()
    prompt = torch.randint(0, 50, (3, 4))
    for kwargs in ({"temperature": 0}, {"temperature": 0.8, "top_k": 10, "seed": 1}, {"top_p": 0.9, "seed": 2}):
        assert torch.equal(generate(model, prompt, 18, use_cache=True, **kwargs),
                           generate(model, prompt, 18, use_cache=False, **kwargs))


def test_future_tokens_never_change_earlier_logits():
    torch.manual_seed(6)
    model = GPT(CONFIGS[0]).double().eval()
    a = torch.randint(0, 37, (1, 16))
    b = a.clone()
    b[0, 10:] = (b[0, 10:] + 1) % 37
    assert torch.allclose(model(a)[:, :10], model(b)[:, :10], atol=1e-13)
    assert not torch.allclose(model(a)[:, 10:], model(b)[:, 10:])


def test_output_layer_is_the_token_embedding():
    model = GPT(CONFIGS[0])
    names = [name for name, _ in model.named_parameters()]
    assert not any("lm_head" in n or "output" in n for n in names)
    with torch.no_grad():
        model.token_embedding.weight[3] += 1.0  # moving one embedding row moves that token's logits too
    x = torch.zeros(1, 1, 48)
    expected = model.norm(x) @ model.token_embedding.weight.T
    assert torch.equal(model.logits(x), expected)


def test_gpt2_small_has_124_439_808_parameters():
    assert gpt2_small_parameter_count() == 124_439_808
    with torch.device("meta"):
        model = GPT(GPTConfig.gpt2_small())
    assert next(model.parameters()).device.type == "meta"  # shapes only: nothing was allocated


def test_parameter_count_equals_hugging_face(no_network):
    for config in CONFIGS:
        hf, ours = hf_pair(config)
        assert ours.num_parameters() == sum(p.numel() for p in hf.parameters())


def test_from_hf_refuses_what_it_cannot_copy(no_network):
    with pytest.raises(TypeError, match="GPT2LMHeadModel"):
        GPT.from_hf(torch.nn.Linear(2, 2))
    untied = transformers.GPT2LMHeadModel(CONFIGS[0].to_hf(tie_word_embeddings=False))
    with pytest.raises(ValueError, match="tied embeddings"):
        GPT.from_hf(untied)
    relu = transformers.GPT2LMHeadModel(CONFIGS[0].to_hf(activation_function="relu"))
    with pytest.raises(ValueError, match="activation_function"):
        GPT.from_hf(relu)


def test_from_hf_keeps_dtype_and_mode(no_network):
    hf = transformers.GPT2LMHeadModel(CONFIGS[1].to_hf())
    ours = GPT.from_hf(hf.train())
    assert ours.training and ours.token_embedding.weight.dtype == torch.float32
    assert ours.config.d_ff == 70 and ours.config.eps == 1e-6


def test_bad_inputs_are_named():
    model = GPT(CONFIGS[0])
    with pytest.raises(ValueError, match=r"\(B, n\).*\(5,\)"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len = 32"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len = 32"):
        model.step(torch.zeros(1, 1, dtype=torch.long), model.step(torch.zeros(1, 32, dtype=torch.long))[1])
    with pytest.raises(ValueError, match=r"logits \(2, 3, 4\) and tokens \(2, 4\)"):
        causal_lm_loss(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=10, d_model=10, num_heads=3)


def test_causal_lm_loss_predicts_the_next_token():
    tokens = torch.tensor([[1, 2, 3, 0]])
    logits = torch.full((1, 4, 4), -30.0)
    for i, nxt in enumerate([2, 3, 0]):
        logits[0, i, nxt] = 30.0  # position i is sure of token i + 1
    assert causal_lm_loss(logits, tokens).item() < 1e-10
    unshifted = torch.nn.functional.cross_entropy(logits.view(-1, 4), tokens.view(-1))
    assert unshifted.item() > 10


def test_training_lowers_the_loss_toward_the_floor():
    torch.manual_seed(7)
    corpus = Corpus()
    model = GPT(GPTConfig(vocab_size=corpus.vocab_size, max_len=32, d_model=32, num_layers=1, num_heads=2))
    val = corpus.sample_tokens(64, 24, seed=1)
    log = train_lm(model, lambda step: corpus.sample_tokens(32, 24, seed=1000 + step), val, steps=60,
                   warmup_steps=10, eval_every=30)
    assert log.steps == [0, 30, 60] and log.seconds > 0
    assert log.val_losses[-1] < log.val_losses[0] - 1.0
    assert log.val_losses[-1] == pytest.approx(evaluate_lm(model, val))
    assert log.val_losses[-1] > corpus.loss_floor(24) - 0.05  # nothing beats the floor (up to sampling noise)


def test_training_calls_back_where_it_validates_and_trains_in_train_mode():
    """`callback(step)` at step 0, every `eval_every` and the last; without validation tokens, no loss; the model
    back in train mode after a callback that left it in eval mode."""
    torch.manual_seed(7)
    corpus = Corpus()
    model = GPT(GPTConfig(vocab_size=corpus.vocab_size, max_len=32, d_model=32, num_layers=1, num_heads=2))
    seen: list[tuple[int, bool]] = []

    def measure(step: int) -> None:
        seen.append((step, model.training))
        model.eval()

    log = train_lm(model, lambda step: corpus.sample_tokens(8, 24, seed=step), None, steps=25, warmup_steps=5,
                   eval_every=10, callback=measure)
    assert log.steps == [0, 10, 20, 25] and log.val_losses == []
    assert [step for step, _ in seen] == [0, 10, 20, 25]
    assert all(training for step, training in seen if step > 0), "training resumed in eval mode after a callback"
