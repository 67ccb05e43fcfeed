"""A generated corpus whose true entropy rate is known exactly (notebooks 11-12).

A language model's loss can never go below the entropy of the text it models. For real text
that floor is unknown; for this corpus it is computed exactly, so a notebook can plot the
validation loss approaching it and say how far from perfect the model is.

The text is a stream of toy English sentences over 24 words, produced by a small
probabilistic finite-state grammar:

    sentence = subject [ "near" noun-phrase ] verb-phrase "."
    subject  = ("the" | "a" | "some") [adjective] noun      "a" takes a singular noun, "some" a plural
    verb     = agrees in number with the subject's noun     "the cat near the dogs sleeps ."
    verb-phrase = intransitive-verb | transitive-verb noun-phrase

The grammar is *unifilar*: its state after any prefix is a function of that prefix. So the
uncertainty about the next word given the whole past is exactly the entropy of the current
state's word distribution, and the entropy rate is `Σ_s π_s H(P(· | s))` with π the stationary
distribution of the states. A model reaches that floor only by tracking the state, and the state
holds long-range facts a bigram model cannot see (the subject's number, across an adjective and a
prepositional phrase): `bigram_entropy()` is the floor of the best model that sees one word back.

API (stable; notebooks 11 and 12 use it):

    corpus = Corpus()
    corpus.vocab, corpus.vocab_size, corpus.encode("the cat sleeps ."), corpus.decode(ids)
    corpus.sample_tokens(num_sequences, seq_len, seed)   # (B, seq_len + 1) ids, each row starts with "."
    corpus.sample_text(num_sentences, seed)              # "a big dog sees the cats . ..."
    corpus.loss_floor(seq_len)     # exact floor of the mean next-token loss on sample_tokens' rows
    corpus.entropy_rate()          # exact entropy rate (nats per token), the limit of loss_floor
    corpus.unigram_entropy(), corpus.bigram_entropy()    # floors of models that see 0 or 1 word back
    corpus.log_prob(ids), corpus.is_valid(ids), corpus.count_valid_sentences(ids), corpus.allowed_next("the")
    stationary_distribution(P)     # π with π P = π, Σ π = 1, for any Markov chain's transition matrix P

All entropies are in nats per token (natural log, as `torch.nn.functional.cross_entropy`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

from helpers.tensors import format_shape

END = "."
DETERMINERS = {"the": "any", "a": "sg", "some": "pl"}
ADJECTIVES = ("big", "small", "red")
NOUNS = {"sg": ("cat", "dog", "bird", "fox"), "pl": ("cats", "dogs", "birds", "foxes")}
INTRANSITIVE = {"sg": ("sleeps", "runs"), "pl": ("sleep", "run")}
TRANSITIVE = {"sg": ("sees", "chases"), "pl": ("see", "chase")}

#: Probabilities of the grammar's choices, as exact fractions.
P_DETERMINER = {"the": Fraction(1, 2), "a": Fraction(1, 4), "some": Fraction(1, 4)}
P_ADJECTIVE = Fraction(3, 10)  # an adjective before the noun (then one of the three, uniformly)
P_NEAR = Fraction(1, 4)  # the subject takes a prepositional phrase "near the dogs"
P_TRANSITIVE = Fraction(2, 5)  # the verb takes an object

Transition = tuple[str, Fraction, str]  # (word, probability, next state)


def _noun_phrase(prefix: str, then: str) -> dict[str, list[Transition]]:
    """States of `det [adj] noun`, named `prefix`..., going to state `then(number)` after the noun.

    `then` is a format string with `{number}` in it, so a subject's number is carried on.
    """
    states: dict[str, list[Transition]] = {prefix: [(d, p, f"{prefix}/{n}") for d, p in P_DETERMINER.items()
                                                     for n in [DETERMINERS[d]]]}
    for det_number in ("any", "sg", "pl"):
        numbers = ("sg", "pl") if det_number == "any" else (det_number,)
        nouns = [(noun, number) for number in numbers for noun in NOUNS[number]]
        after_noun = [(noun, Fraction(1, len(nouns)), then.format(number=number)) for noun, number in nouns]
        states[f"{prefix}/{det_number}/adj"] = after_noun
        states[f"{prefix}/{det_number}"] = [
            (adj, P_ADJECTIVE / len(ADJECTIVES), f"{prefix}/{det_number}/adj") for adj in ADJECTIVES
        ] + [(noun, p * (1 - P_ADJECTIVE), state) for noun, p, state in after_noun]
    return states


def _grammar() -> dict[str, list[Transition]]:
    """The grammar as a unifilar automaton: state -> [(word, probability, next state)]."""
    states = _noun_phrase("start", then="subject/{number}")
    for number in ("sg", "pl"):
        verbs = [(verb, (1 - P_TRANSITIVE) / 2, "end") for verb in INTRANSITIVE[number]]
        verbs += [(verb, P_TRANSITIVE / 2, "object") for verb in TRANSITIVE[number]]
        states[f"subject/{number}"] = [("near", P_NEAR, f"near/{number}")] + [
            (verb, p * (1 - P_NEAR), state) for verb, p, state in verbs
        ]
        # The prepositional phrase's own noun has any number; the verb still agrees with the subject.
        states.update(_noun_phrase(f"near/{number}", then=f"verb/{number}"))
        states[f"verb/{number}"] = verbs
    states.update(_noun_phrase("object", then="end"))
    states["end"] = [(END, Fraction(1), "start")]
    return states


def stationary_distribution(transitions: np.ndarray) -> np.ndarray:
    """`(S,)`: the stationary distribution π of a Markov chain, `π P = π` with `Σ π = 1`.

    `transitions` is P, `(S, S)`, `P[i, j]` the probability of going from state i to state j in
    one step (each row sums to 1). The chain must have one stationary distribution (one
    recurrent class), as the corpus's grammar and notebook 11's three-state example do.
    """
    matrix = np.asarray(transitions, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"transitions: expected a square matrix (S, S), got shape {matrix.shape}")
    if not np.allclose(matrix.sum(axis=1), 1.0):
        raise ValueError("transitions: each row must sum to 1 (the probabilities of leaving that state)")
    n = matrix.shape[0]
    # (Pᵀ - I) π = 0 has a one-dimensional solution space; replacing one equation by Σ π = 1 pins it.
    system = matrix.T - np.eye(n)
    system[-1] = 1.0
    rhs = np.zeros(n)
    rhs[-1] = 1.0
    return np.linalg.solve(system, rhs)


class Corpus:
    """The generated corpus: its vocabulary, a seeded sampler and its exact entropies (see the module docstring)."""

    def __init__(self) -> None:
        grammar = _grammar()
        self.states: list[str] = list(grammar)
        self.start = self.states.index("start")
        words = [END, *DETERMINERS, *ADJECTIVES, *NOUNS["sg"], *NOUNS["pl"], "near",
                 *INTRANSITIVE["sg"], *INTRANSITIVE["pl"], *TRANSITIVE["sg"], *TRANSITIVE["pl"]]
        self.vocab: list[str] = words
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(words)}
        index = {s: i for i, s in enumerate(self.states)}
        n_states, n_words = len(self.states), len(words)
        # Dense tables: emission probabilities (S, V) and the next state (S, V); -1 = word not allowed.
        self.probs = np.zeros((n_states, n_words))
        self.next_state = np.full((n_states, n_words), -1, dtype=np.int64)
        for s, transitions in grammar.items():
            total = sum(p for _, p, _ in transitions)
            if total != 1:
                raise AssertionError(f"state {s}'s probabilities sum to {total}, not 1")
            for word, p, target in transitions:
                if self.next_state[index[s], self.stoi[word]] != -1:
                    raise AssertionError(f"state {s} has two transitions on {word!r}: the grammar must be unifilar")
                self.probs[index[s], self.stoi[word]] = float(p)
                self.next_state[index[s], self.stoi[word]] = index[target]
        self._probs_t = torch.from_numpy(self.probs)
        self._next_t = torch.from_numpy(self.next_state)
        # Cumulative probabilities for inverse-CDF sampling, exactly 1 from each state's last allowed
        # word on, so float rounding can never let a uniform draw land on a word that is not allowed.
        last_allowed = torch.from_numpy((self.probs > 0).cumsum(axis=1).argmax(axis=1))
        self._cumulative_t = self._probs_t.cumsum(dim=1)
        self._cumulative_t[torch.arange(n_words) >= last_allowed[:, None]] = 1.0

    # ---- vocabulary ----------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str | Sequence[str]) -> Tensor:
        """Words (a string split on whitespace, or a list of words) -> `(n,)` long tensor of ids."""
        words = text.split() if isinstance(text, str) else list(text)
        for position, word in enumerate(words):
            if word not in self.stoi:
                raise ValueError(f"unknown word {word!r} at position {position}; the vocabulary is {self.vocab}")
        return torch.tensor([self.stoi[w] for w in words], dtype=torch.long)

    def decode(self, ids: Tensor | Sequence[int]) -> str:
        """`(n,)` ids -> the words joined by spaces."""
        ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        for i in ids:
            if not 0 <= int(i) < self.vocab_size:
                raise ValueError(f"token id {i} is outside the vocabulary 0..{self.vocab_size - 1}")
        return " ".join(self.vocab[int(i)] for i in ids)

    # ---- sampling ------------------------------------------------------------------------------------

    def sample_tokens(self, num_sequences: int, seq_len: int, seed: int = 0) -> Tensor:
        """`(num_sequences, seq_len + 1)` long tensor of ids; the same seed gives the same tensor.

        Each row starts with "." (the end of an earlier sentence), so the grammar is in its start
        state, then continues with `seq_len` tokens of running text that may stop mid-sentence.
        For language modelling, inputs are `rows[:, :-1]` and targets `rows[:, 1:]`; the exact
        floor of the mean loss over those targets is `loss_floor(seq_len)`.
        """
        for name, value in (("num_sequences", num_sequences), ("seq_len", seq_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        generator = torch.Generator().manual_seed(seed)
        uniforms = torch.rand((num_sequences, seq_len), generator=generator, dtype=torch.float64)
        state = torch.full((num_sequences,), self.start, dtype=torch.long)
        out = torch.empty((num_sequences, seq_len + 1), dtype=torch.long)
        out[:, 0] = self.stoi[END]
        # All sequences advance together. Inverse-CDF sampling: the word is the number of cumulative
        # probabilities of the state's words that the uniform draw reaches (one comparison per word).
        cumulative = self._cumulative_t
        for t in range(1, seq_len + 1):
            word = (uniforms[:, t - 1 : t] >= cumulative[state]).sum(dim=1)
            out[:, t] = word
            state = self._next_t[state, word]
        return out

    def sample_text(self, num_sentences: int, seed: int = 0) -> str:
        """`num_sentences` whole sentences of the corpus as text, e.g. "the cat sleeps . some dogs see a fox ."."""
        if isinstance(num_sentences, bool) or not isinstance(num_sentences, int) or num_sentences < 1:
            raise ValueError(f"num_sentences must be a positive int, got {num_sentences!r}")
        # The longest sentence has 11 words ("the big cat near the red dogs sees the small fox ."),
        # so 12 tokens per sentence always hold enough whole sentences.
        ids = self.sample_tokens(1, 12 * num_sentences, seed)[0, 1:].tolist()
        ends = [i for i, w in enumerate(ids) if w == self.stoi[END]]
        return self.decode(ids[: ends[num_sentences - 1] + 1])

    # ---- exact entropies -----------------------------------------------------------------------------

    def _state_entropies(self) -> np.ndarray:
        """`(S,)`: entropy (nats) of each state's next-word distribution."""
        p = self.probs
        return -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=1)

    def transition_matrix(self) -> np.ndarray:
        """`(S, S)`: probability of going from one state to another in one word."""
        matrix = np.zeros((len(self.states),) * 2)
        for s in range(len(self.states)):
            for w in np.flatnonzero(self.probs[s] > 0):
                matrix[s, self.next_state[s, w]] += self.probs[s, w]
        return matrix

    def stationary_distribution(self) -> np.ndarray:
        """`(S,)`: the states' long-run frequencies π, the solution of `π P = π`, `Σ π = 1`.

        P is the `(S, S)` state-to-state transition matrix (rows sum to 1); see `stationary_distribution`.
        """
        return stationary_distribution(self.transition_matrix())

    def entropy_rate(self) -> float:
        """Exact entropy rate in nats per token: `Σ_s π_s H(P(· | s))`, the loss of a perfect model in the long run."""
        return float(self.stationary_distribution() @ self._state_entropies())

    def loss_floor(self, seq_len: int) -> float:
        """Exact floor of the mean next-token loss over the `seq_len` targets of `sample_tokens` rows.

        Rows start in the grammar's start state, so the state distribution before target t is the
        start state pushed t - 1 steps through the transitions; the floor averages the state
        entropies over those distributions. It tends to `entropy_rate()` as `seq_len` grows.
        """
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
            raise ValueError(f"seq_len must be a positive int, got {seq_len!r}")
        transitions, entropies = self.transition_matrix(), self._state_entropies()
        distribution = np.zeros(len(self.states))
        distribution[self.start] = 1.0
        total = 0.0
        for _ in range(seq_len):
            total += distribution @ entropies
            distribution = distribution @ transitions
        return float(total / seq_len)

    def _stationary_bigrams(self) -> np.ndarray:
        """`(V, V)`: the long-run joint probability of (word, next word)."""
        pi = self.stationary_distribution()
        joint = np.zeros((self.vocab_size, self.vocab_size))
        for s in range(len(self.states)):
            for w in np.flatnonzero(self.probs[s] > 0):
                joint[w] += pi[s] * self.probs[s, w] * self.probs[self.next_state[s, w]]
        return joint

    def unigram_entropy(self) -> float:
        """Entropy of the words' long-run frequencies: the floor of a model that sees no context."""
        p = self._stationary_bigrams().sum(axis=1)
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    def bigram_entropy(self) -> float:
        """`H(next word | previous word)` in the long run: the floor of a model that sees one word back."""
        joint = self._stationary_bigrams()
        conditional = joint / np.where(joint.sum(axis=1, keepdims=True) > 0, joint.sum(axis=1, keepdims=True), 1.0)
        mask = joint > 0
        return float(-(joint[mask] * np.log(conditional[mask])).sum())

    # ---- the grammar as a judge ------------------------------------------------------------------------

    def _ids(self, ids: Tensor | Sequence[int]) -> list[int]:
        if isinstance(ids, Tensor):
            if ids.ndim != 1:
                raise ValueError(f"ids: expected shape (n,), got {format_shape(ids.shape)}")
            ids = ids.tolist()
        return [int(i) for i in ids]

    def log_prob(self, ids: Tensor | Sequence[int]) -> float:
        """Exact log-probability (nats) of the words after a leading "." under the grammar; -inf if not allowed.

        `ids` is a `(n,)` row as `sample_tokens` makes: "." then running text.
        """
        ids = self._ids(ids)
        if not ids or ids[0] != self.stoi[END]:
            raise ValueError('ids must start with "." (the grammar\'s start state), as sample_tokens\' rows do')
        state, total = self.start, 0.0
        for w in ids[1:]:
            if not 0 <= w < self.vocab_size or self.next_state[state, w] < 0:
                return -math.inf
            total += math.log(self.probs[state, w])
            state = int(self.next_state[state, w])
        return total

    def allowed_next(self, text: str = "") -> list[str]:
        """The words the grammar allows next after "." and then `text` (words from a sentence's start on).

        `allowed_next("")` lists a sentence's possible first words, `allowed_next("the")` what may follow
        "the", `allowed_next("the cat sleeps")` is `["."]`. Empty if the grammar cannot produce `text`.
        """
        state = self.start
        for word in text.split():
            if word not in self.stoi or self.next_state[state, self.stoi[word]] < 0:
                return []
            state = int(self.next_state[state, self.stoi[word]])
        return [self.vocab[w] for w in np.flatnonzero(self.probs[state] > 0)]

    def is_valid(self, ids: Tensor | Sequence[int]) -> bool:
        """Whether `ids` (starting with ".") is a prefix of some text the grammar can produce."""
        return self.log_prob(ids) > -math.inf

    def count_valid_sentences(self, ids: Tensor | Sequence[int]) -> tuple[int, int]:
        """`(valid, complete)`: how many of the complete sentences in `ids` the grammar allows.

        `ids` is running text; the sentences are the stretches between "." tokens (a leading "."
        or text before the first "." does not count, nor the unfinished tail after the last ".").
        A sentence is valid if the grammar, from its start state, can produce exactly it and its ".".
        """
        ids = self._ids(ids)
        end = self.stoi[END]
        stops = [i for i, w in enumerate(ids) if w == end]
        valid = 0
        for a, b in zip(stops, stops[1:]):
            state = self.start
            for w in ids[a + 1 : b + 1]:
                state = int(self.next_state[state, w]) if 0 <= w < self.vocab_size else -1
                if state < 0:
                    break
            valid += state == self.start  # back at the start: the sentence ended where "." is allowed
        return valid, max(len(stops) - 1, 0)
