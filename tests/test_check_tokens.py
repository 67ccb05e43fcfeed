"""Checks of notebook 13: correct variants pass, stubs are ⏳, each typical mistake gets its own hint."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from helpers import tokenizer
from helpers.checks import Status, check_BPETokenizer, check_merge, check_pair_counts, check_train_merges
from helpers.checks.nb13_tokens import MERGE_MISTAKES, PAIR_COUNT_MISTAKES, TOKENIZER_MISTAKES, TRAIN_MISTAKES
from helpers.tokenizer import END_OF_TEXT

CHECKS = [check_pair_counts, check_merge, check_train_merges, check_BPETokenizer]


def stub(*args, **kwargs):
    # YOUR CODE HERE
    raise NotImplementedError()


class StubTokenizer:
    def train(self, text, vocab_size):
        # YOUR CODE HERE
        raise NotImplementedError()


@pytest.mark.parametrize("check", CHECKS[:3])
def test_stub_is_not_attempted(check):
    result = check(stub)
    assert result.status is Status.NOT_ATTEMPTED and not result.passed


def test_class_stub_is_not_attempted():
    assert check_BPETokenizer(StubTokenizer).status is Status.NOT_ATTEMPTED


@pytest.mark.parametrize("check", CHECKS)
def test_broken_candidates_fail_cleanly(check):
    assert check(lambda *args: 1 / 0).status is Status.FAILED
    assert check(lambda *args: "text").status is Status.FAILED
    assert "without calling it" in check(42).hint


MISTAKE_TABLES = [(check_pair_counts, PAIR_COUNT_MISTAKES), (check_merge, MERGE_MISTAKES),
                  (check_train_merges, TRAIN_MISTAKES), (check_BPETokenizer, TOKENIZER_MISTAKES)]


@pytest.mark.parametrize(
    ("check", "mistake"),
    [(check, m) for check, table in MISTAKE_TABLES for m in table],
    ids=[f"{check.__name__}: {m.hint.split(':')[0][:40]}" for check, table in MISTAKE_TABLES for m in table],
)
def test_each_mistake_gets_its_own_hint(check, mistake):
    result = check(mistake.wrong)
    assert result.status is Status.FAILED
    assert result.hint == mistake.hint, result.message


def test_the_issues_named_mistakes_are_all_there():
    hints = " ".join(m.hint for _, table in MISTAKE_TABLES for m in table)
    for words in ('"aaa" merged as two overlapping pairs', "merges applied in the wrong order when encoding",
                  "pairs across pre-token boundaries", "decoding token by token", "the tie rule ignored"):
        assert words in hints, words


# ---- correct variants, written differently ------------------------------------------------------------------


def pair_counts_with_counter(words):
    return dict(Counter(pair for w in words for pair in zip(w, w[1:])))


def pair_counts_as_counter(words):
    return Counter(pair for w in words for pair in zip(w, w[1:]))


def pair_counts_as_defaultdict(words):
    counts = defaultdict(int)
    for w in words:
        for pair in zip(w, w[1:]):
            counts[pair] += 1
    return counts


def pair_counts_by_index(words):
    counts = {}
    for w in words:
        for i in range(len(w) - 1):
            counts[w[i], w[i + 1]] = counts.get((w[i], w[i + 1]), 0) + 1
    return counts


def merge_with_for_and_skip(ids, pair, new_id):
    out, skip = [], False
    for i, x in enumerate(ids):
        if skip:
            skip = False
        elif i + 1 < len(ids) and (x, ids[i + 1]) == pair:
            out.append(new_id)
            skip = True
        else:
            out.append(x)
    return out


def merge_recursive(ids, pair, new_id):
    if len(ids) < 2:
        return list(ids)
    if (ids[0], ids[1]) == pair:
        return [new_id, *merge_recursive(ids[2:], pair, new_id)]
    return [ids[0], *merge_recursive(ids[1:], pair, new_id)]


def train_with_sorted(words, num_merges):
    merges = []
    for k in range(num_merges):
        counts = pair_counts_with_counter(words)
        if not counts:
            break
        pair = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[0][0]
        words = [merge_recursive(w, pair, 256 + k) for w in words]
        merges.append(pair)
    return merges


def train_with_max_and_negated_pair(words, num_merges):
    merges, words = [], [list(w) for w in words]
    while len(merges) < num_merges:
        counts = pair_counts_by_index(words)
        if not counts:
            return merges
        best = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))
        words = [merge_with_for_and_skip(w, best, 256 + len(merges)) for w in words]
        merges.append(best)
    return merges


class TokenizerMergingInRankOrder:
    """Encodes by applying each merge in turn to the whole pre-token (the same as lowest rank first)."""

    def train(self, text, vocab_size):
        words = [list(w.encode()) for doc in text.split(END_OF_TEXT) for w in tokenizer.pretokenize(doc)]
        self.merges = train_with_sorted(words, vocab_size - 257)
        self.pieces = {b: bytes([b]) for b in range(256)}
        for k, (a, b) in enumerate(self.merges):
            self.pieces[256 + k] = self.pieces[a] + self.pieces[b]
        self.pieces[256 + len(self.merges)] = END_OF_TEXT.encode()
        return self

    def encode(self, text):
        out = []
        for d, doc in enumerate(text.split(END_OF_TEXT)):
            if d:
                out.append(256 + len(self.merges))
            for word in tokenizer.pretokenize(doc):
                ids = list(word.encode())
                for k, pair in enumerate(self.merges):
                    ids = merge_with_for_and_skip(ids, pair, 256 + k)
                out.extend(ids)
        return out

    def decode(self, ids):
        return b"".join(self.pieces[i] for i in ids).decode("utf-8", errors="replace")


@pytest.mark.parametrize("candidate", [tokenizer.pair_counts, pair_counts_with_counter, pair_counts_by_index,
                                       pair_counts_as_counter, pair_counts_as_defaultdict])
def test_pair_counts_correct_variants_pass(candidate):
    assert check_pair_counts(candidate).passed


@pytest.mark.parametrize("candidate", [tokenizer.merge, merge_with_for_and_skip, merge_recursive])
def test_merge_correct_variants_pass(candidate):
    assert check_merge(candidate).passed


@pytest.mark.parametrize("candidate", [tokenizer.train_merges, train_with_sorted, train_with_max_and_negated_pair])
def test_train_merges_correct_variants_pass(candidate):
    result = check_train_merges(candidate)
    assert result.passed, result.message


@pytest.mark.parametrize("candidate", [tokenizer.BPETokenizer, TokenizerMergingInRankOrder])
def test_tokenizer_correct_variants_pass(candidate):
    result = check_BPETokenizer(candidate)
    assert result.passed, result.message


def test_a_train_merges_that_calls_a_stub_names_it():
    def pair_counts(words):
        raise NotImplementedError()

    def train_merges(words, num_merges):
        return [max(pair_counts(words))]

    result = check_train_merges(train_merges)
    assert result.status is Status.FAILED and "pair_counts" in result.message


def test_changing_the_words_in_place_gets_a_hint_about_lists():
    def train_rebinding_words(words, num_merges):
        merges = []
        for k in range(num_merges):
            counts = tokenizer.pair_counts(words)
            if not counts:
                break
            pair = min(counts, key=lambda p: (-counts[p], p))
            for i, w in enumerate(words):
                words[i] = tokenizer.merge(w, pair, 256 + k)
            merges.append(pair)
        return merges

    result = check_train_merges(train_rebinding_words)
    assert result.status is Status.FAILED and "in place" in result.message
    assert "list" in result.hint and "tensor" not in result.hint


def test_a_train_that_does_not_return_self_is_named():
    class NoSelf(tokenizer.BPETokenizer):
        def train(self, text, vocab_size, ties="bytes"):
            tokenizer.BPETokenizer.train(self, text, vocab_size, ties)

    result = check_BPETokenizer(NoSelf)
    assert result.status is Status.FAILED and "return self" in result.hint, result.message
