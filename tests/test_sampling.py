"""Decoding: the properties each strategy promises, on random logits and on a small random GPT."""

import itertools

import pytest
import torch

from helpers.gpt import GPT, GPTConfig
from helpers.sampling import (
    apply_temperature,
    beam_search,
    entropy,
    generate,
    sample_next,
    sequence_log_prob,
    top_k_filter,
    top_p_filter,
)


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=11, max_len=32, d_model=32, num_layers=2, num_heads=4)).double().eval()
    with torch.no_grad():  # wider than GPT-2's 0.02, so the next-token distributions are far from uniform
        for p in gpt.parameters():
            if p.ndim > 1:
                p.mul_(15)
    return gpt


@pytest.fixture
def logits() -> torch.Tensor:
    return torch.randn(64, 30, generator=torch.Generator().manual_seed(1)) * 2


@pytest.mark.parametrize("k", [1, 3, 7, 30, 40])
def test_top_k_never_picks_outside_the_k_most_likely(logits, k):
    allowed = logits.topk(min(k, 30), dim=-1).indices
    filtered = top_k_filter(logits, k)
    assert (filtered.isfinite().sum(dim=-1) == min(k, 30)).all()
    generator = torch.Generator().manual_seed(2)
    for _ in range(20):
        picked = sample_next(logits, top_k=k, generator=generator)
        assert (allowed == picked[:, None]).any(dim=-1).all()


def test_top_k_keeps_every_logit_tied_with_the_kth():
    logits = torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.0], [3.0, 1.0, 2.0, 1.0, 1.0]])
    assert top_k_filter(logits, 2).isfinite().tolist() == [[False, True, True, True, False],
                                                           [True, False, True, False, False]]
    assert top_k_filter(logits, 3).isfinite().sum(dim=-1).tolist() == [3, 5]


def test_top_k_ties_as_transformers_top_k_warper():
    from transformers.generation.logits_process import TopKLogitsWarper

    g = torch.Generator().manual_seed(3)
    logits = torch.randint(-3, 4, (50, 12), generator=g).float()  # integers: ties everywhere
    for k in (1, 2, 5, 12):
        assert torch.equal(top_k_filter(logits, k), TopKLogitsWarper(k)(None, logits))


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.99, 1.0])
def test_top_p_keeps_the_smallest_set_with_mass_at_least_p(logits, p):
    probs = torch.softmax(logits, dim=-1)
    kept = top_p_filter(logits, p).isfinite()
    mass = (probs * kept).sum(dim=-1)
    assert (mass >= p - 1e-6).all()
    smallest_kept = probs.masked_fill(~kept, 2.0).amin(dim=-1)
    assert (mass - smallest_kept < p).all()  # one token fewer would fall short of p: the set is the smallest
    largest_dropped = probs.masked_fill(kept, -1.0).amax(dim=-1)
    assert (largest_dropped <= smallest_kept).all()  # and it is made of the most likely tokens


def test_top_p_keeps_the_token_that_crosses_p():
    logits = torch.tensor([0.5, 0.3, 0.2]).log()
    assert top_p_filter(logits, 0.6).isfinite().tolist() == [True, True, False]
    assert top_p_filter(logits, 0.4).isfinite().tolist() == [True, False, False]


def test_top_p_of_1_keeps_every_token_even_a_tail_float32_cannot_add():
    logits = torch.tensor([[30.0, 0.0, 0.0, 0.0, -5.0], [30.0, 30.0, 0.0, 0.0, -5.0]])
    probs, _ = logits.softmax(-1).sort(dim=-1, descending=True)
    assert ((probs.cumsum(-1) - probs)[:, -1] >= 1).all()  # the running sum has reached 1.0 before the tail
    filtered = top_p_filter(logits, 1.0)
    assert torch.equal(filtered, logits) and filtered is not logits


def test_temperature_orders_the_entropy(logits):
    entropies = [entropy(apply_temperature(logits, t)).mean().item() for t in (0.25, 0.5, 1.0, 2.0, 4.0)]
    assert entropies == sorted(entropies)
    assert entropies[-1] < torch.log(torch.tensor(30.0)).item()  # never above the uniform distribution's
    assert entropy(torch.tensor([0.0, float("-inf")])).item() == 0.0


def test_temperature_zero_is_greedy(logits, model):
    assert torch.equal(sample_next(logits, temperature=0), logits.argmax(dim=-1))
    prompt = torch.tensor([[1, 2, 3]])
    tokens = prompt
    for _ in range(10):
        tokens = torch.cat([tokens, model(tokens)[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    assert torch.equal(generate(model, prompt, 10, temperature=0), tokens)


def test_a_seeded_sample_is_reproducible(model):
    prompt = torch.tensor([[1, 2], [3, 4]])
    a = generate(model, prompt, 20, temperature=1.2, seed=5)
    assert torch.equal(a, generate(model, prompt, 20, temperature=1.2, seed=5))
    assert not torch.equal(a, generate(model, prompt, 20, temperature=1.2, seed=6))


def test_beam_of_one_is_greedy(model):
    prompt = torch.tensor([[4, 7, 1]])
    beams, scores = beam_search(model, prompt, 12, beam_width=1)
    assert torch.equal(beams, generate(model, prompt, 12, temperature=0))
    assert scores.item() == pytest.approx(sequence_log_prob(model, beams, 3).item(), abs=1e-9)


def test_a_wide_enough_beam_finds_the_most_likely_continuation(model):
    prompt = torch.tensor([[2, 5]])
    # Beam width V^2 keeps every 2-token prefix, so a 3-token search is exhaustive: compare with brute force.
    beams, scores = beam_search(model, prompt, 3, beam_width=11**2)
    candidates = torch.tensor([[2, 5, *c] for c in itertools.product(range(11), repeat=3)])
    log_probs = sequence_log_prob(model, candidates, 2)
    assert torch.equal(beams[0], candidates[log_probs.argmax()])
    assert scores[0].item() == pytest.approx(log_probs.max().item(), abs=1e-9)
    assert (scores[:-1] >= scores[1:]).all()


def test_finished_beams_stay_finished(model):
    beams, _ = beam_search(model, torch.tensor([[3]]), 15, beam_width=3, eos_id=0)
    assert any(0 in row[1:] for row in beams.tolist())  # some beam did finish, so the test says something
    for row in beams.tolist():
        if 0 in row[1:]:
            first = row.index(0, 1)
            assert set(row[first:]) == {0}


def test_bad_arguments_are_named(logits):
    with pytest.raises(ValueError, match="k must be"):
        top_k_filter(logits, 0)
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\]"):
        top_p_filter(logits, 0.0)
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(logits, -1.0)
    with pytest.raises(ValueError, match=r"\(B, n_vocab\).*\(2, 3, 4\)"):
        sample_next(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"\(1, n\)"):
        beam_search(None, torch.zeros(2, 3, dtype=torch.long), 3)
