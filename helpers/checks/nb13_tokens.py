"""Checks of notebook 13 (from text to tokens): pair counts, one merge, the training loop, a BPETokenizer class.

The outputs are ids, lists, dicts and strings, compared exactly (`compare_exact`). Inputs come from a
local `random.Random(seed)`: words of a few ids with runs of equal ids ("aaa"), ties between pairs,
several words; for the class, texts with pre-tokens, Hangul, emoji and END_OF_TEXT. Each mistake is a
wrong implementation with the exercise's signature; each check's contract (`Term`s) lists what its
statement allows, and the generated cases cover every entry.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence

from helpers.checks.core import Case, Failure, Kind, Mistake, Stop, Term, check
from helpers.tokenizer import (
    END_OF_TEXT,
    BPETokenizer,
    documents,
    encode_word,
    merge,
    most_frequent_pair,
    pair_counts,
    pretokenize,
    train_merges,
)

#: The telling pieces of each exercise's solution: no Hint 1, Hint 2 or ❌ hint may contain one.
SOLUTION_FRAGMENTS: dict[str, list[str]] = {
    "pair_counts": ["zip(ids, ids[1:])", "counts.get(pair, 0) + 1"],
    "merge": ["i += 2", "ids[i + 1] == pair[1]"],
    "train_merges": ["(-counts[pair], pair)", "merge(ids, pair, 256 + k)"],
    "BPETokenizer": ['b"".join(', "ranks.get(", 'decode("utf-8", errors="replace")'],
}

Pair = tuple[int, int]


def compare_exact(actual: object, expected: object, what: str, tolerance: tuple[float, float]) -> Failure | None:
    """Ids, lists, dicts and strings compare exactly; the message names the first difference."""
    same_kind = isinstance(actual, tuple) and isinstance(expected, tuple) or \
        isinstance(actual, dict) and isinstance(expected, dict)  # a Counter or a defaultdict is a dict too
    if type(actual) is not type(expected) and not same_kind:
        return Failure(Kind.WRONG_TYPE,
                       f"{what} is a {type(actual).__name__}, expected a {type(expected).__name__}")
    if actual == expected:
        return None
    if isinstance(expected, dict):
        assert isinstance(actual, dict)
        missing = [k for k in expected if k not in actual]
        if missing:
            return Failure(Kind.WRONG_VALUES,
                           f"{what} lacks the pair {missing[0]} (its count is {expected[missing[0]]})")
        extra = [k for k in actual if k not in expected]
        if extra:
            return Failure(Kind.WRONG_VALUES, f"{what} has the pair {extra[0]}, which is not in the answer")
        wrong = next(k for k in expected if actual[k] != expected[k])
        return Failure(Kind.WRONG_VALUES, f"{what} gives the pair {wrong} the count {actual[wrong]}, "
                       f"expected {expected[wrong]}")
    if isinstance(expected, (list, tuple, str)):
        assert isinstance(actual, (list, tuple, str))
        at = next((i for i, (a, b) in enumerate(zip(actual, expected)) if a != b), min(len(actual), len(expected)))
        shown = (lambda s: repr(s[max(0, at - 8): at + 8])) if isinstance(expected, str) else \
            (lambda s: str(list(s[at: at + 4])))
        return Failure(Kind.WRONG_VALUES, f"{what} has length {len(actual)} (expected {len(expected)}) and first "
                       f"differs at index {at}: {shown(actual)}, expected {shown(expected)}")
    return Failure(Kind.WRONG_VALUES, f"{what} is {actual!r}, expected {expected!r}")


def _words(rng: random.Random, count: int, alphabet: Sequence[int]) -> list[list[int]]:
    """`count` words of 1-7 ids, each word likely to hold a run of one id repeated (a a a)."""
    words = []
    for _ in range(count):
        word = [rng.choice(alphabet) for _ in range(rng.randint(1, 7))]
        if rng.random() < 0.5:
            at = rng.randrange(len(word))
            word[at:at] = [word[at]] * rng.randint(1, 3)
        words.append(word)
    return words


# ---- pair counts -------------------------------------------------------------------------------------------


def _counts_across_words(words: list[list[int]]) -> dict[Pair, int]:
    return pair_counts([[i for w in words for i in w]])


def _counts_once_per_word(words: list[list[int]]) -> dict[Pair, int]:
    counts: dict[Pair, int] = {}
    for w in words:
        for pair in set(zip(w, w[1:])):
            counts[pair] = counts.get(pair, 0) + 1
    return counts


def _counts_without_overlaps(words: list[list[int]]) -> dict[Pair, int]:
    counts: dict[Pair, int] = {}
    for w in words:
        i = 0
        while i + 1 < len(w):
            pair = (w[i], w[i + 1])
            counts[pair] = counts.get(pair, 0) + 1
            i += 2 if w[i] == w[i + 1] else 1  # a run a a a counted as one (a, a): the overlap skipped
    return counts


def _counts_without_last_pair(words: list[list[int]]) -> dict[Pair, int]:
    return pair_counts([w[:-1] for w in words])


LIST_IN_PLACE = ("assignments like `ids[i] = ...` or `words[i] = ...` and methods like `.append`, `.pop` or `del` "
                 "change the caller's list; build a new list instead and leave the argument as it was.")

ACROSS_WORDS = ("you counted pairs across pre-token boundaries: the last id of one word and the first of the next are "
                "not a pair. Count inside each word only.")
OVERLAPS = ("a run a a a holds the pair (a, a) twice, at positions 0-1 and 1-2: count every adjacent position, "
            "overlapping or not (merging is what takes them left to right).")
ONCE_PER_WORD = "a pair that occurs twice in one word counts twice: count occurrences, not words that hold the pair."
LAST_PAIR = "the last pair of each word is missing: a word of n ids has n − 1 adjacent pairs."

PAIR_COUNT_MISTAKES = [
    Mistake(ACROSS_WORDS, _counts_across_words),
    Mistake(OVERLAPS, _counts_without_overlaps),
    Mistake(ONCE_PER_WORD, _counts_once_per_word),
    Mistake(LAST_PAIR, _counts_without_last_pair),
]

PAIR_COUNT_CONTRACT = [
    Term("several words: pairs inside each, none across two", "words", _counts_across_words, "pre-token boundaries"),
    Term("a run of one id (a a a): overlapping pairs all counted", "a run", _counts_without_overlaps,
         "overlapping"),
    Term("a word of one id (no pair at all)", "a one-id word", _counts_across_words, "boundaries"),
]


def _pair_count_cases(seed: int) -> Iterator[Case]:
    rng = random.Random(seed)
    for index in range(6):
        words = _words(rng, rng.randint(2, 6), rng.sample(range(256), rng.randint(2, 5)))
        words.insert(rng.randrange(len(words) + 1), [rng.randrange(256)])  # a word of one id
        run = rng.randrange(256)
        words.append([run] * (3 + index % 2))
        yield Case(f"{len(words)} words with a run of {3 + index % 2} × {run} and a one-id word", (words,))


@check(reference=pair_counts, mistakes=PAIR_COUNT_MISTAKES, compare=compare_exact, what="the counts",
       contract=PAIR_COUNT_CONTRACT, hints={Kind.IN_PLACE: LIST_IN_PLACE},
       passed="{cases} generated lists of words: runs of one id, one-id words, no pair across two words.")
def check_pair_counts() -> Iterator[Case]:
    """Check `pair_counts(words: list[list[int]]) -> dict[(a, b), count]`: adjacent pairs inside each word."""
    yield from _pair_count_cases(1300)


# ---- one merge ---------------------------------------------------------------------------------------------


def _merge_overlapping(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Every position where the pair starts becomes new_id: a a a -> X X (the middle a used twice)."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 1 if i + 2 < len(ids) and (ids[i + 1], ids[i + 2]) == pair else 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _merge_right_to_left(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    return merge(ids[::-1], pair[::-1], new_id)[::-1]


def _merge_first_only(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return [*ids[:i], new_id, *ids[i + 2:]]
    return list(ids)


def _merge_first_id_only(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _merge_dropping_last(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    out, i = [], 0
    while i + 1 < len(ids):
        out.append(new_id if (ids[i], ids[i + 1]) == pair else ids[i])
        i += 2 if (ids[i], ids[i + 1]) == pair else 1
    return out


OVERLAP_MERGE = ("\"aaa\" merged as two overlapping pairs: the middle a can belong to one merge only. Go left to right "
                 "and, after a merge, continue after the pair: a a a becomes X a.")
RIGHT_TO_LEFT = "merge from left to right: a a a becomes X a, not a X."
FIRST_ONLY = "replace every occurrence of the pair, not only the first."
BOTH_IDS = "a pair matches only where both ids match: the first id followed by the second."
LAST_ID = "the last id is lost when it is not part of a pair: keep it."

MERGE_MISTAKES = [
    Mistake(OVERLAP_MERGE, _merge_overlapping),
    Mistake(RIGHT_TO_LEFT, _merge_right_to_left),
    Mistake(FIRST_ONLY, _merge_first_only),
    Mistake(BOTH_IDS, _merge_first_id_only),
    Mistake(LAST_ID, _merge_dropping_last),
]

MERGE_CONTRACT = [
    Term("a run of the pair's id (a a a, a a a a): left to right, no overlap", "a run of", _merge_overlapping,
         "overlapping"),
    Term("several occurrences of the pair", "occurrences", _merge_first_only, "every occurrence"),
    Term("ids ending in an id outside any pair: kept", "then a last id", _merge_dropping_last, "last id"),
]


def _merge_cases(seed: int) -> Iterator[Case]:
    rng = random.Random(seed)
    for index in range(6):
        a, b = rng.sample(range(256), 2)
        pair = (a, a) if index % 2 else (a, b)
        filler = [x for x in rng.sample(range(256), 4) if x not in (a, b)]
        ids = [rng.choice(filler) for _ in range(rng.randint(2, 6))]
        ids[1:1] = [*pair]
        ids[3:3] = [a] * (3 + index % 3) if index % 2 else [a, b]
        ids.append(rng.choice([x for x in filler if x != pair[1]] or [b]))
        kind = f"a run of {3 + index % 3} × {a}" if index % 2 else "2 occurrences"
        yield Case(f"{len(ids)} ids, the pair {pair} ({kind}), then a last id, new id {256 + index}",
                   (ids, pair, 256 + index))
    yield Case("5 ids and no occurrence of the pair (3, 4)", ([3, 9, 4, 3, 3], (3, 4), 300))


@check(reference=merge, mistakes=MERGE_MISTAKES, compare=compare_exact, what="the merged ids",
       contract=MERGE_CONTRACT, hints={Kind.IN_PLACE: LIST_IN_PLACE},
       passed="{cases} generated cases: runs of one id (a a a …), several occurrences, the pair absent.")
def check_merge() -> Iterator[Case]:
    """Check `merge(ids, pair, new_id) -> list[int]`: every occurrence replaced, left to right, never overlapping."""
    yield from _merge_cases(1310)


# ---- the training loop --------------------------------------------------------------------------------------


def _trainer(pick: Callable[[dict[Pair, int]], Pair] = most_frequent_pair,
             merge_into: Callable[[list[int], Pair, int], list[int]] = merge,
             first_new_id: Callable[[int], int] = lambda k: 256 + k, stops: bool = True,
             ) -> Callable[[list[list[int]], int], list[Pair]]:
    """`train_merges` with one step done otherwise: how it picks the pair, merges, numbers ids or stops."""

    def train(words: list[list[int]], num_merges: int) -> list[Pair]:
        merges: list[Pair] = []
        for k in range(num_merges):
            counts = pair_counts(words)
            if not counts and stops:
                break
            pair = pick(counts)
            words = [merge_into(w, pair, first_new_id(k)) for w in words]
            merges.append(pair)
        return merges

    return train


#: Ties broken by whichever pair was counted first (Python's max over a dict).
_train_first_max = _trainer(pick=lambda counts: max(counts, key=counts.__getitem__))
_train_largest_pair = _trainer(pick=lambda counts: max(counts, key=lambda p: (counts[p], p)))
_train_overlapping = _trainer(merge_into=_merge_overlapping)
_train_ids_from_256_each_time = _trainer(first_new_id=lambda k: 256)
_train_without_stopping = _trainer(stops=False)


def _train_across_words(words: list[list[int]], num_merges: int) -> list[Pair]:
    return train_merges([[i for w in words for i in w]], num_merges)


TIE_RULE = ("the tie rule ignored: among pairs of equal count take the smallest pair (a, b), a first, then b; "
            "not the pair counted first.")
TIE_LARGEST = "the tie rule: among pairs of equal count the SMALLEST pair (a, b) wins, not the largest."
TRAIN_ACROSS = ("you counted pairs across pre-token boundaries: each word is counted on its own, so no merge "
                "joins the end of one word to the start of the next.")
TRAIN_OVERLAP = ("\"aaa\" merged as two overlapping pairs: a a a becomes X a (left to right, no overlap); the counts "
                 "of the next merge come out wrong otherwise.")
NEW_IDS = "merge k creates a new id, 256 + k: each merge needs an id of its own."
STOP_EARLY = "stop when no word has two tokens left: there is no pair to merge, so fewer merges come back."

TRAIN_MISTAKES = [
    Mistake(TIE_RULE, _train_first_max),
    Mistake(TIE_LARGEST, _train_largest_pair),
    Mistake(TRAIN_ACROSS, _train_across_words),
    Mistake(TRAIN_OVERLAP, _train_overlapping),
    Mistake(NEW_IDS, _train_ids_from_256_each_time),
    Mistake(STOP_EARLY, _train_without_stopping, crashes=True),
]

TRAIN_CONTRACT = [
    Term("ties between pairs of equal count: the smallest pair (a, b)", "ties", _train_first_max, "tie rule"),
    Term("several words: no pair across two", "words", _train_across_words, "pre-token boundaries"),
    Term("runs of one id (a a a)", "runs", _train_overlapping, "overlapping"),
    Term("more merges asked than pairs exist: stop early", "runs out", _train_without_stopping, "stop"),
]


def _train_cases(seed: int) -> Iterator[Case]:
    rng = random.Random(seed)
    for index in range(5):
        alphabet = sorted(rng.sample(range(97, 123), 4), reverse=bool(index % 2))  # first seen: not the smallest
        words = _words(rng, rng.randint(4, 8), alphabet)
        words += [[alphabet[0]] * 3, [alphabet[1], alphabet[2]], [alphabet[3], alphabet[0]]]
        yield Case(f"{len(words)} words with runs and ties, {3 + index} merges", (words, 3 + index))
    words = [[1, 2, 3], [3, 1], [2, 2, 2]]
    yield Case("3 short words, 9 merges asked: it runs out", (words, 9))


@check(reference=train_merges, mistakes=TRAIN_MISTAKES, compare=compare_exact, what="the merges",
       contract=TRAIN_CONTRACT, hints={Kind.IN_PLACE: LIST_IN_PLACE},
       passed="{cases} generated cases: ties, runs of one id, several words, more merges asked than there are pairs.")
def check_train_merges() -> Iterator[Case]:
    """Check `train_merges(words, num_merges) -> list[(a, b)]`: merge k creates id 256 + k, ties to the smallest."""
    yield from _train_cases(1320)


# ---- the tokenizer class --------------------------------------------------------------------------------------


class _ReverseOrder(BPETokenizer):
    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for d, doc in enumerate(documents(text)):
            ids += [self.eot_id] if d else []
            for word in pretokenize(doc):
                w = list(word.encode("utf-8"))
                for k in reversed(range(len(self.merges))):
                    w = merge(w, self.merges[k], 256 + k)
                ids += w
        return ids


class _MostFrequentFirst(BPETokenizer):
    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for d, doc in enumerate(documents(text)):
            ids += [self.eot_id] if d else []
            for word in pretokenize(doc):
                w = list(word.encode("utf-8"))
                while True:
                    known = {p: c for p, c in pair_counts([w]).items() if p in self.ranks}
                    if not known:
                        break
                    pair = most_frequent_pair(known)
                    w = merge(w, pair, 256 + self.ranks[pair])
                ids += w
        return ids


class _TokenByToken(BPETokenizer):
    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.token_text(i) for i in ids)


class _NoPretokenizer(BPETokenizer):
    def train(self, text: str, vocab_size: int, ties: str = "bytes") -> BPETokenizer:
        words = [list(doc.encode("utf-8")) for doc in documents(text)]
        BPETokenizer.__init__(self, train_merges(words, vocab_size - 257))
        return self


class _NoTieRule(BPETokenizer):
    def train(self, text: str, vocab_size: int, ties: str = "bytes") -> BPETokenizer:
        words = [list(w.encode("utf-8")) for doc in documents(text) for w in pretokenize(doc)]
        BPETokenizer.__init__(self, _train_first_max(words, vocab_size - 257))
        return self


class _NoSpecialToken(BPETokenizer):
    def encode(self, text: str) -> list[int]:  # END_OF_TEXT pre-tokenized and merged as ordinary text
        return [i for word in pretokenize(text) for i in encode_word(word.encode("utf-8"), self.ranks)]


class _TrainWithoutDocuments(BPETokenizer):
    def train(self, text: str, vocab_size: int, ties: str = "bytes") -> BPETokenizer:  # END_OF_TEXT pre-tokenized
        words = [list(w.encode("utf-8")) for w in pretokenize(text)]
        BPETokenizer.__init__(self, train_merges(words, vocab_size - 257))
        return self


class _DecodeIgnoring(BPETokenizer):
    def decode(self, ids: Sequence[int]) -> str:
        pieces = [END_OF_TEXT.encode("utf-8") if i == self.eot_id else self.vocab[i] for i in ids]
        return b"".join(pieces).decode("utf-8", errors="ignore")


class _VocabularyWithoutSpecial(BPETokenizer):
    def train(self, text: str, vocab_size: int, ties: str = "bytes") -> BPETokenizer:
        return BPETokenizer.train(self, text, vocab_size + 1, ties)


WRONG_ORDER = ("merges applied in the wrong order when encoding: apply them by rank, the earliest learned first "
               "(the order training found them), whatever the text being encoded.")
MOST_FREQUENT = ("merges applied in the wrong order when encoding: the rank decides (the earliest learned merge "
                 "first), not how often a pair occurs in the text being encoded.")
TOKEN_BY_TOKEN = ("decoding token by token loses a split character: a token may hold part of a character's UTF-8 "
                  "bytes. Join the bytes of all the tokens first, then decode them once.")
NO_PRETOKENIZER = ("you counted pairs across pre-token boundaries: split the text with pretokenize first, and count "
                   "and merge inside each pre-token.")
NO_TIE_RULE = "the tie rule ignored: among pairs of equal count the smallest pair (a, b) wins."
NO_SPECIAL = (f"{END_OF_TEXT} is one special token with the last id (vocab_size − 1): split the text at it before "
              "pre-tokenizing, and never merge across it.")
TRAIN_DOCUMENTS = (f"training learned merges from {END_OF_TEXT} itself: split the training text at it into documents "
                   "first, then pre-tokenize each document.")
IGNORED_BYTES = ("bytes that are not valid UTF-8 (a character cut off at the end) must come back as \"�\", not "
                 "vanish or raise: let decoding replace them.")
NOT_SELF = "train must return the tokenizer itself (`return self`), so that `BPETokenizer().train(...)` can be used."
OFF_BY_ONE = (f"vocab_size counts the 256 bytes, the merges AND {END_OF_TEXT}: learn vocab_size − 257 merges, so "
              "that the special token takes id vocab_size − 1.")

TOKENIZER_MISTAKES = [
    Mistake(TOKEN_BY_TOKEN, _TokenByToken),
    Mistake(NO_SPECIAL, _NoSpecialToken),
    Mistake(OFF_BY_ONE, _VocabularyWithoutSpecial),
    Mistake(NO_PRETOKENIZER, _NoPretokenizer),
    Mistake(TRAIN_DOCUMENTS, _TrainWithoutDocuments),
    Mistake(IGNORED_BYTES, _DecodeIgnoring),
    Mistake(NO_TIE_RULE, _NoTieRule),
    Mistake(WRONG_ORDER, _ReverseOrder),
    Mistake(MOST_FREQUENT, _MostFrequentFirst),
]

TOKENIZER_CONTRACT = [
    Term("text outside the training text (Hangul, emoji): bytes, decoded whole", "Hangul and emoji", _TokenByToken,
         "split character"),
    Term(f"{END_OF_TEXT} in the text: one id, vocab_size − 1", "end-of-text", _NoSpecialToken, "special token"),
    Term(f"{END_OF_TEXT} in the training text: documents split at it", "end-of-text tokens", _TrainWithoutDocuments,
         "documents"),
    Term("ids that end inside a character: decoded with \"�\"", "cut character", _DecodeIgnoring, "not valid UTF-8"),
    Term("ties during training", "ties", _NoTieRule, "tie rule"),
    Term("merges that build on merges (encoding by rank)", "merges on merges", _ReverseOrder, "wrong order"),
]

WORDS = ["the", "then", "there", "aaa", "banana", "bandana", "nana", "ana", "an", "a", "1234", "12", "34", "!!",
         "...", "(x)", "it's", "we're", "\n", "  "]
UNSEEN = ["한국어", "토큰", "🙂", "naïve", "ü", "日本"]


def _text(rng: random.Random, count: int) -> str:
    words = [rng.choice(WORDS) for _ in range(count)]
    return "".join(w if w.isspace() or not rng.random() < 0.8 else " " + w for w in words)


CUT = list("한".encode())[:2]  # the first two of a character's three bytes: not valid UTF-8


def _run_tokenizer(train_text: str, vocab_size: int, test_text: str):
    def run(cls: type) -> tuple[list[int], str, str]:
        tokenizer = cls()
        trained = tokenizer.train(train_text, vocab_size)
        if trained is not tokenizer:
            raise Stop(Failure(Kind.WRONG_TYPE, f"train returned {type(trained).__name__}, expected the tokenizer "
                               "itself", hint=NOT_SELF))
        ids = tokenizer.encode(test_text)
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise Stop(Failure(Kind.WRONG_TYPE, f"encode returned {type(ids).__name__}, expected a list of ints"))
        return ids, tokenizer.decode(ids), tokenizer.decode(ids + CUT)
    return run


def _tokenizer_cases(seed: int) -> Iterator[Case]:
    rng = random.Random(seed)
    for index in range(4):
        docs = 3 if index < 2 else 12  # many short documents: many end-of-text tokens in the training text
        train_text = END_OF_TEXT.join(_text(rng, rng.randint(30, 60) // (docs // 3)) for _ in range(docs))
        test_text = _text(rng, 12) + " " + " ".join(rng.sample(UNSEEN, 3)) + END_OF_TEXT + _text(rng, 8)
        vocab_size = 257 + rng.randint(8, 30)
        name = (f"trained on {docs} documents ({docs - 1} end-of-text tokens), {len(train_text)} characters, "
                f"vocab_size {vocab_size} (ties, merges on merges), encoding text with Hangul and emoji and an "
                "end-of-text token, then decoding its ids with a cut character (2 of 3 bytes) at the end")
        yield Case(name, run=_run_tokenizer(train_text, vocab_size, test_text))


@check(reference=BPETokenizer, mistakes=TOKENIZER_MISTAKES, compare=compare_exact, returns=("ids", "text", "cut"),
       shown={"ids": "encode's ids", "text": "decode(encode(text))", "cut": "decode(ids + the first 2 bytes of 한)"},
       contract=TOKENIZER_CONTRACT,
       passed="{cases} generated texts: trained, then encoding and decoding text with Hangul, emoji and "
              f"{END_OF_TEXT}: the same ids and the text back.")
def check_BPETokenizer() -> Iterator[Case]:
    """Check `BPETokenizer()`: `.train(text, vocab_size)`, `.encode(text) -> list[int]`, `.decode(ids) -> str`."""
    yield from _tokenizer_cases(1330)
