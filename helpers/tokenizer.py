"""Byte-level byte-pair encoding (BPE), as GPT-2 tokenizes text (notebook 13).

Text becomes UTF-8 bytes, ids 0-255 (the id of a byte is the byte itself). Training counts the
adjacent pairs of ids inside each pre-token (GPT-2's regex splits text into words, numbers,
punctuation and spaces first), merges the most frequent pair into a new id (256, 257, ...), and
repeats. **The tie rule**: among pairs of equal count the smallest pair (a, b) wins, a first, then b.
Encoding applies the learned merges by rank (the earliest learned first); decoding joins the
tokens' bytes and only then reads them as UTF-8, so a character split across tokens comes back.
One special token, `END_OF_TEXT`, takes the last id, as GPT-2's 50,256.

    words = pair_counts([[104, 105], [104, 105, 33]])        -> {(104, 105): 2, (105, 33): 1}
    merge([97, 97, 97], (97, 97), 256)                          -> [256, 97]
    tok = BPETokenizer().train(text, vocab_size=512)            255 merges + 256 bytes + END_OF_TEXT
    tok.decode(tok.encode(s)) == s                              for every string s
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import regex

#: The end-of-text token that separates documents (GPT-2's id 50256).
END_OF_TEXT = "<|endoftext|>"

#: GPT-2's pre-tokenizer (Radford et al., 2019): contractions, letters, digits, other symbols, each with at most one
#: space in front, then runs of whitespace. Hugging Face's ByteLevel(use_regex=True) uses the same expression.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_SPLIT = regex.compile(GPT2_PATTERN)

Pair = tuple[int, int]


def _require_text(text: object, name: str = "text") -> str:
    if not isinstance(text, str):
        raise ValueError(f"{name} must be a str, got {type(text).__name__}")
    return text


def pretokenize(text: str) -> list[str]:
    """GPT-2's pre-tokens of `text`, in order; joined they give `text` back."""
    return _SPLIT.findall(_require_text(text))


def documents(text: str) -> list[str]:
    """`text` split at END_OF_TEXT: the documents it separates (no merge ever crosses it)."""
    return _require_text(text).split(END_OF_TEXT)


def word_counts(text: str) -> Counter[tuple[int, ...]]:
    """How often each pre-token occurs in `text`, each as a tuple of its UTF-8 bytes (END_OF_TEXT left out)."""
    return Counter(tuple(word.encode("utf-8")) for doc in documents(text) for word in pretokenize(doc))


def pair_counts(words: Iterable[Sequence[int]]) -> dict[Pair, int]:
    """Adjacent pairs of ids counted inside each word, never across two: `[[1, 2, 1, 2]] -> {(1, 2): 2, (2, 1): 1}`."""
    counts: dict[Pair, int] = {}
    for ids in words:
        for pair in zip(ids, ids[1:]):
            counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """`ids` with every occurrence of `pair` replaced by `new_id`, left to right, never overlapping.

    `merge([97, 97, 97], (97, 97), 256) == [256, 97]`: the second 97 is taken by the first occurrence.
    """
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def most_frequent_pair(counts: Mapping[Pair, int]) -> Pair:
    """The pair with the highest count; among equal counts the smallest pair (a, b): the tie rule."""
    if not counts:
        raise ValueError("no pairs to choose from: every word is a single token")
    return min(counts, key=lambda pair: (-counts[pair], pair))


def train_merges(words: Sequence[Sequence[int]], num_merges: int) -> list[Pair]:
    """The first `num_merges` merges learned from `words` (lists of byte ids); merge k creates id 256 + k.

    Stops early when no word has two tokens left. The plain loop: recount, pick, merge, repeat.
    """
    if isinstance(num_merges, bool) or not isinstance(num_merges, int) or num_merges < 0:
        raise ValueError(f"num_merges must be an int >= 0, got {num_merges!r}")
    words = [list(w) for w in words]
    merges: list[Pair] = []
    for k in range(num_merges):
        counts = pair_counts(words)
        if not counts:
            break
        pair = most_frequent_pair(counts)
        words = [merge(w, pair, 256 + k) for w in words]
        merges.append(pair)
    return merges


def gpt2_byte_ids() -> list[int]:
    """GPT-2's id of each byte: the bytes sorted by their `bytes_to_unicode` character ('!' is 0, a space 220)."""
    chars = bytes_to_unicode()
    order = sorted(range(256), key=lambda b: chars[b])
    ids = [0] * 256
    for i, b in enumerate(order):
        ids[b] = i
    return ids


def train_bpe(counts: Mapping[tuple[int, ...], int], num_merges: int, ties: str = "bytes") -> list[Pair]:
    """`train_merges` on words with counts, fast: the same merges, in the same order.

    Only the words that hold the chosen pair are re-merged, and a heap keyed by (-count, pair)
    finds the next pair (the tie rule is the heap's order); stale entries are skipped.
    `ties="gpt2"` breaks ties as Hugging Face's trainer does: by GPT-2's ids of the bytes
    (`gpt2_byte_ids`) instead of the bytes' values; the merges come back in byte ids either way.
    """
    if isinstance(num_merges, bool) or not isinstance(num_merges, int) or num_merges < 0:
        raise ValueError(f"num_merges must be an int >= 0, got {num_merges!r}")
    if ties not in ("bytes", "gpt2"):
        raise ValueError(f'ties must be "bytes" or "gpt2", got {ties!r}')
    if ties == "gpt2":
        to_gpt2 = gpt2_byte_ids()
        back = {i: b for b, i in enumerate(to_gpt2)}
        merges = train_bpe({tuple(to_gpt2[b] for b in w): c for w, c in counts.items()}, num_merges)
        return [(back.get(a, a), back.get(b, b)) for a, b in merges]
    words = [list(w) for w in counts]
    freq = list(counts.values())
    pairs: dict[Pair, int] = {}
    where: dict[Pair, set[int]] = {}
    for i, w in enumerate(words):
        for pair in zip(w, w[1:]):
            pairs[pair] = pairs.get(pair, 0) + freq[i]
            where.setdefault(pair, set()).add(i)
    heap = [(-c, p) for p, c in pairs.items()]
    heapq.heapify(heap)
    merges: list[Pair] = []
    while len(merges) < num_merges and heap:
        negative, pair = heapq.heappop(heap)
        if pairs.get(pair, 0) != -negative or negative == 0:
            continue  # stale: the count changed since this entry was pushed
        new_id = 256 + len(merges)
        merges.append(pair)
        changed: set[Pair] = set()
        for i in sorted(where.pop(pair, ())):
            old = words[i]
            for p in zip(old, old[1:]):
                pairs[p] -= freq[i]
                changed.add(p)
            words[i] = new = merge(old, pair, new_id)
            for p in zip(new, new[1:]):
                pairs[p] = pairs.get(p, 0) + freq[i]
                where.setdefault(p, set()).add(i)
                changed.add(p)
        for p in changed:
            if pairs[p] > 0:
                heapq.heappush(heap, (-pairs[p], p))
            else:
                del pairs[p]
    return merges


def encode_word(ids: Sequence[int], ranks: Mapping[Pair, int]) -> list[int]:
    """One pre-token's ids after the merges, lowest rank first (`ranks[pair] = k` for merge k, new id 256 + k)."""
    ids = list(ids)
    while len(ids) > 1:
        pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, math.inf))
        if pair not in ranks:
            break
        ids = merge(ids, pair, 256 + ranks[pair])
    return ids


class BPETokenizer:
    """A byte-level BPE tokenizer: 256 byte ids, the learned merges, then END_OF_TEXT (the last id)."""

    def __init__(self, merges: Sequence[Pair] = ()) -> None:
        self.merges: list[Pair] = [tuple(p) for p in merges]  # type: ignore[misc]
        self.ranks = {pair: k for k, pair in enumerate(self.merges)}
        self.vocab = [bytes([b]) for b in range(256)]
        for a, b in self.merges:
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self.eot_id = len(self.vocab)
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + 1

    def train(self, text: str, vocab_size: int, ties: str = "bytes") -> BPETokenizer:
        """Learn `vocab_size - 257` merges from `text` (fewer if it runs out of pairs); returns self.

        `ties="gpt2"`: Hugging Face's tie rule (see `train_bpe`).
        """
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 257:
            raise ValueError(f"vocab_size must be an int >= 257 (256 bytes and {END_OF_TEXT}), got {vocab_size!r}")
        self.__init__(train_bpe(word_counts(_require_text(text)), vocab_size - 257, ties))  # type: ignore[misc]
        return self

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`: END_OF_TEXT as its id, every pre-token merged by rank."""
        ids: list[int] = []
        for d, doc in enumerate(documents(text)):
            if d:
                ids.append(self.eot_id)
            for word in pretokenize(doc):
                if word not in self._cache:
                    self._cache[word] = encode_word(word.encode("utf-8"), self.ranks)
                ids.extend(self._cache[word])
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of `ids`, joined (END_OF_TEXT as its UTF-8 bytes)."""
        parts = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.vocab_size:
                raise ValueError(f"token ids must be ints in 0 … {self.vocab_size - 1}, got {i!r}")
            parts.append(END_OF_TEXT.encode("utf-8") if i == self.eot_id else self.vocab[i])
        return b"".join(parts)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`: all their bytes joined first, then read as UTF-8 (invalid bytes become �)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token_text(self, i: int) -> str:
        """How token `i` reads on its own (� where it holds part of a character)."""
        return END_OF_TEXT if i == self.eot_id else self.vocab[i].decode("utf-8", errors="replace")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 bytes to printable characters (Radford et al., 2019), as Hugging Face's ByteLevel.

    Printable bytes ('!' to '~', '¡' to '¬', '®' to 'ÿ') stand for themselves; the other 68 (space,
    control bytes, ...) become chr(256 + n) in byte order, so a space reads 'Ġ' and a newline 'Ċ'.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + n) for n, b in enumerate(shifted)}}


def bits_per_byte(nats: float, tokens: int, n_bytes: int) -> float:
    """A loss of `nats` per token over `tokens` tokens of text that is `n_bytes` long, in bits per byte."""
    if tokens < 1 or n_bytes < 1:
        raise ValueError(f"tokens and n_bytes must be positive, got {tokens} and {n_bytes}")
    return nats * tokens / n_bytes / math.log(2)


def unigram_bits_per_byte(train_ids: Sequence[int], test_ids: Sequence[int], vocab_size: int,
                          n_bytes: int) -> float:
    """Bits per byte of a unigram model (add-one counts of `train_ids`) on `test_ids`, text of `n_bytes` bytes."""
    counts = Counter(train_ids)
    total = len(train_ids) + vocab_size
    nats = -sum(math.log((counts[i] + 1) / total) for i in test_ids) / len(test_ids)
    return bits_per_byte(nats, len(test_ids), n_bytes)


def zlib_bits_per_byte(data: bytes) -> float:
    """Bits per byte of `data` compressed by zlib at its strongest level."""
    return 8 * len(zlib.compress(data, 9)) / len(data)
