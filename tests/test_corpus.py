"""The generated corpus: a seeded sampler, a grammar that judges text, and exact entropies that match sampling."""

import math

import numpy as np
import pytest
import torch

from helpers.corpus import Corpus


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus()


@pytest.fixture(scope="module")
def rows(corpus: Corpus) -> torch.Tensor:
    return corpus.sample_tokens(3000, 48, seed=123)


def test_vocabulary_round_trip(corpus):
    text = "the big cat near some dogs sees a fox ."
    ids = corpus.encode(text)
    assert ids.dtype == torch.long and ids.shape == (10,)
    assert corpus.decode(ids) == text
    assert corpus.encode(text.split()).tolist() == ids.tolist()
    assert corpus.vocab_size == len(set(corpus.vocab))


def test_unknown_words_and_ids_are_named(corpus):
    with pytest.raises(ValueError, match="'zebra' at position 1"):
        corpus.encode("the zebra sleeps .")
    with pytest.raises(ValueError, match="99"):
        corpus.decode([0, 99])


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_sample_sizes_are_validated(corpus, bad):
    with pytest.raises(ValueError):
        corpus.sample_tokens(bad, 8)
    with pytest.raises(ValueError):
        corpus.sample_tokens(2, bad)
    with pytest.raises(ValueError):
        corpus.loss_floor(bad)


def test_sampling_is_seeded(corpus):
    a = corpus.sample_tokens(5, 20, seed=7)
    assert torch.equal(a, corpus.sample_tokens(5, 20, seed=7))
    assert not torch.equal(a, corpus.sample_tokens(5, 20, seed=8))
    assert corpus.sample_text(4, seed=3) == corpus.sample_text(4, seed=3)


def test_rows_start_at_a_sentence_boundary_and_respect_the_grammar(corpus, rows):
    assert rows.shape == (3000, 49)
    assert (rows[:, 0] == corpus.stoi["."]).all()
    assert all(corpus.is_valid(row) for row in rows[:500])
    valid, complete = corpus.count_valid_sentences(rows[0])
    assert complete > 0 and valid == complete


def test_sample_text_has_the_asked_number_of_whole_sentences(corpus):
    text = corpus.sample_text(6, seed=1)
    assert text.endswith(" .") and text.count(".") == 6
    assert corpus.count_valid_sentences(corpus.encode(". " + text)) == (6, 6)


@pytest.mark.parametrize(
    ("sentence", "valid"),
    [
        ("the cat near the dogs sleeps .", True),
        ("some cats chase a red bird .", True),
        ("the cat near the dogs sleep .", False),  # the verb agrees with the subject, across the phrase
        ("a cats sleep .", False),  # "a" takes a singular noun
        ("some big dog runs .", False),  # ... and "some" a plural one, across the adjective
        ("the cat sleeps the dog .", False),  # an intransitive verb takes no object
        ("the cat sees .", False),  # a transitive verb needs one
        ("the big red cat runs .", False),  # one adjective at most
    ],
)
def test_the_grammar_judges_sentences(corpus, sentence, valid):
    ids = corpus.encode(". " + sentence)
    assert corpus.count_valid_sentences(ids) == (int(valid), 1)
    assert corpus.is_valid(ids) is valid
    assert (corpus.log_prob(ids) > -math.inf) is valid


def test_unfinished_tails_are_not_counted(corpus):
    assert corpus.count_valid_sentences(corpus.encode(". the cat runs . the dog")) == (1, 1)
    assert corpus.count_valid_sentences(corpus.encode("dog runs . . the cat runs .")) == (1, 2)


def test_next_word_probabilities_sum_to_one(corpus):
    prefix = corpus.encode(". the big dog near a").tolist()
    total = sum(math.exp(corpus.log_prob(prefix + [w]) - corpus.log_prob(prefix)) for w in range(corpus.vocab_size))
    assert total == pytest.approx(1.0, abs=1e-12)


def test_stationary_distribution_is_stationary(corpus):
    pi = corpus.stationary_distribution()
    assert pi.sum() == pytest.approx(1.0, abs=1e-12)
    assert (pi > 0).all()  # every state is reachable: the chain is irreducible
    np.testing.assert_allclose(pi @ corpus.transition_matrix(), pi, atol=1e-14)


def test_loss_floor_equals_the_sampled_negative_log_likelihood(corpus, rows):
    # The floor is an expectation; its Monte-Carlo estimate over 144,000 tokens has a standard error of about 0.003.
    nll = -sum(corpus.log_prob(row) for row in rows) / rows[:, 1:].numel()
    assert nll == pytest.approx(corpus.loss_floor(48), abs=0.015)


def test_loss_floor_tends_to_the_entropy_rate(corpus):
    rate = corpus.entropy_rate()
    short, long = corpus.loss_floor(8), corpus.loss_floor(4000)
    assert abs(long - rate) < abs(short - rate)
    assert long == pytest.approx(rate, abs=1e-3)


def test_unigram_and_bigram_entropies_match_counts(corpus, rows):
    words = rows[:, 1:]
    unigram = torch.bincount(words.flatten(), minlength=corpus.vocab_size).double()
    p = unigram[unigram > 0] / unigram.sum()
    assert float(-(p * p.log()).sum()) == pytest.approx(corpus.unigram_entropy(), abs=0.01)
    pairs = torch.bincount((words[:, :-1] * corpus.vocab_size + words[:, 1:]).flatten(),
                           minlength=corpus.vocab_size**2).double().view(corpus.vocab_size, -1)
    conditional = pairs / pairs.sum(dim=1, keepdim=True).clamp(min=1)
    mask = pairs > 0
    empirical = float(-(pairs[mask] * conditional[mask].log()).sum() / pairs.sum())
    assert empirical == pytest.approx(corpus.bigram_entropy(), abs=0.01)


def test_the_floor_is_clearly_below_what_short_contexts_can_reach(corpus):
    # Tracking the grammar's state is worth something over one word back, and a lot over none.
    assert corpus.entropy_rate() < corpus.bigram_entropy() - 0.2 < corpus.unigram_entropy() - 1.0


def test_stationary_distribution_of_a_three_state_chain():
    from helpers.corpus import stationary_distribution

    transitions = np.array([[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.0, 0.5, 0.5]])
    pi = stationary_distribution(transitions)
    assert np.allclose(pi, [0.25, 0.5, 0.25]) and np.allclose(pi @ transitions, pi)
    with pytest.raises(ValueError, match="sum to 1"):
        stationary_distribution(np.eye(3) * 0.5)


def test_allowed_next_words(corpus):
    assert corpus.allowed_next("") == ["the", "a", "some"]
    assert len(corpus.allowed_next("the")) == 11  # three adjectives, eight nouns
    assert corpus.allowed_next("the cat sleeps") == ["."]
    assert corpus.allowed_next("the cat sleep") == []
