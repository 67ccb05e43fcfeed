"""helpers.tokenizer: exact round trips on generated Unicode, GPT-2's pre-tokenizer, the tie rule, equality with
Hugging Face's `tokenizers` (merges in order and ids, at two vocabulary sizes), and bits per byte."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

import pytest

from helpers import tokenizer
from helpers.tokenizer import END_OF_TEXT, BPETokenizer

DATA = Path(tokenizer.__file__).parent / "data"

#: Code points from many scripts: ASCII, Latin-1, combining marks, Greek, Cyrillic, Hangul syllables and jamo,
#: CJK, emoji with skin-tone modifiers and joiners, whitespace of several kinds, digits of other scripts.
RANGES = [(0x20, 0x7E), (0xA0, 0xFF), (0x300, 0x36F), (0x391, 0x3C9), (0x410, 0x44F), (0xAC00, 0xD7A3),
          (0x1100, 0x11FF), (0x4E00, 0x4FFF), (0x1F300, 0x1F64F), (0x1F3FB, 0x1F3FF), (0x200D, 0x200D),
          (0x0660, 0x0669), (0x2000, 0x200A), (0x09, 0x0D)]


def random_strings(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        picks = [rng.choice(RANGES) for _ in range(rng.randint(0, 30))]
        out.append("".join(chr(rng.randint(low, high)) for low, high in picks))
    return out


@pytest.fixture(scope="module")
def texts() -> tuple[str, str]:
    return ((DATA / "course_text_train.txt").read_text(encoding="utf-8"),
            (DATA / "course_text_heldout.txt").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def trained(texts) -> BPETokenizer:
    return BPETokenizer().train(texts[0], 700)


def test_decode_of_encode_is_the_string_on_generated_unicode(trained):
    for s in random_strings(0, 400) + ["", " ", "\n\n", "aaa", "🙂👍🏽", "e\u0301", "한국어  text", END_OF_TEXT * 2]:
        ids = trained.encode(s)
        assert all(0 <= i < trained.vocab_size for i in ids)
        assert trained.decode(ids) == s, repr(s)


def test_an_untrained_tokenizer_is_bytes_and_the_special_token_is_last():
    tok = BPETokenizer()
    assert tok.encode("a한") == [97, 237, 149, 156] and tok.vocab_size == 257 and tok.eot_id == 256
    assert tok.encode(f"a{END_OF_TEXT}b") == [97, 256, 98]


def test_a_token_that_splits_a_character_is_decoded_with_its_neighbours(trained):
    ids = trained.encode("뷁")  # rare: its three bytes stay single tokens
    assert "".join(trained.token_text(i) for i in ids) != "뷁" and trained.decode(ids) == "뷁"


@pytest.mark.parametrize("text", ["  leading spaces", "trailing   ", "a\n\n b", "x  \ty", "12345 6.78", "1,000",
                                  "it's we're I'll they've I'm he'd isn't", "(a) [b] {c} -- ... !!",
                                  "한국어 토큰 만들기", "mixed한글text 🙂emoji", "tabs\tand\u00a0nbsp", "Don'T 'S"])
def test_the_pre_tokenizer_agrees_with_hugging_faces_byte_level(text):
    from tokenizers import pre_tokenizers

    theirs = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True).pre_tokenize_str(text)
    byte_of = {ch: b for b, ch in tokenizer.bytes_to_unicode().items()}
    theirs_text = [bytes(byte_of[ch] for ch in piece).decode("utf-8") for piece, _ in theirs]
    ours = tokenizer.pretokenize(text)
    assert ours == theirs_text and "".join(ours) == text


def test_the_pre_tokenizer_on_edge_cases():
    assert tokenizer.pretokenize("a  b") == ["a", " ", " b"]  # a run of spaces leaves its last to the next word
    assert tokenizer.pretokenize("GPT-2's 50,257") == ["GPT", "-", "2", "'s", " 50", ",", "257"]
    assert tokenizer.pretokenize(" 한국어는") == [" 한국어는"]  # Hangul is \p{L}: one word with its space
    assert tokenizer.pretokenize("end.\n\n") == ["end", ".", "\n\n"]
    with pytest.raises(ValueError, match="str"):
        tokenizer.pretokenize(b"bytes")  # type: ignore[arg-type]


def test_the_tie_rule_takes_the_smallest_pair():
    # (2, 3) and (1, 2) both occur twice, (1, 2) first seen later: the smallest pair wins, not the first counted
    words = [[2, 3], [5, 1, 2], [2, 3], [1, 2]]
    assert tokenizer.most_frequent_pair(tokenizer.pair_counts(words)) == (1, 2)
    assert tokenizer.train_merges(words, 1) == [(1, 2)]
    assert tokenizer.train_bpe(Counter(tuple(w) for w in words), 1) == [(1, 2)]
    # GPT-2's order of bytes: a space (Ġ, 220) after letters, so the tie goes the other way
    tie = Counter({(32, 84): 1, (108, 101): 1})
    assert tokenizer.train_bpe(tie, 1) == [(32, 84)] and tokenizer.train_bpe(tie, 1, ties="gpt2") == [(108, 101)]


def test_merge_and_pair_counts_on_runs():
    assert tokenizer.merge([97, 97, 97], (97, 97), 256) == [256, 97]
    assert tokenizer.merge([97, 97, 97, 97], (97, 97), 256) == [256, 256]
    assert tokenizer.pair_counts([[97, 97, 97], [97]]) == {(97, 97): 2}
    assert tokenizer.pair_counts([[1, 2], [3, 4]]) == {(1, 2): 1, (3, 4): 1}  # never (2, 3)


def test_the_fast_trainer_learns_what_the_plain_loop_learns():
    rng = random.Random(1)
    for _ in range(20):
        words = [[rng.randint(97, 101) for _ in range(rng.randint(1, 8))] for _ in range(rng.randint(1, 30))]
        counts = Counter(tuple(w) for w in words)
        expanded = [list(w) for w, c in counts.items() for _ in range(c)]
        assert tokenizer.train_bpe(counts, 40) == tokenizer.train_merges(expanded, 40)


def test_bad_input_gets_a_clear_message():
    with pytest.raises(ValueError, match="vocab_size must be an int >= 257"):
        BPETokenizer().train("text", 256)
    with pytest.raises(ValueError, match="num_merges"):
        tokenizer.train_merges([[1, 2]], -1)
    with pytest.raises(ValueError, match="ties"):
        tokenizer.train_bpe({(1, 2): 1}, 1, ties="alphabetical")
    with pytest.raises(ValueError, match="token ids must be ints in 0 … 256"):
        BPETokenizer().decode([257])
    with pytest.raises(ValueError, match="no pairs"):
        tokenizer.most_frequent_pair({})


def test_gpt2_byte_ids_are_the_sorted_characters_of_bytes_to_unicode():
    from tokenizers import pre_tokenizers

    chars = tokenizer.bytes_to_unicode()
    assert sorted(chars.values()) == sorted(pre_tokenizers.ByteLevel.alphabet())
    ids = tokenizer.gpt2_byte_ids()
    assert sorted(ids) == list(range(256)) and ids[ord("!")] == 0 and chars[32] == "Ġ" and ids[32] == 220


def hf_bpe(text: str, vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 1, min_frequency=0, special_tokens=[], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator(tokenizer.documents(text), trainer)
    hf.add_special_tokens([END_OF_TEXT])
    return hf


@pytest.mark.parametrize("vocab_size", [400, 1100])
def test_equal_to_hugging_faces_tokenizers(texts, vocab_size):
    train, held = texts
    hf = hf_bpe(train, vocab_size)
    ours = BPETokenizer().train(train, vocab_size, ties="gpt2")
    chars = tokenizer.bytes_to_unicode()
    byte_of = {ch: bytes([b]) for b, ch in chars.items()}
    theirs = [tuple(b"".join(byte_of[c] for c in part) for part in pair)
              for pair in json.loads(hf.to_str())["model"]["merges"]]
    assert len(ours.merges) == vocab_size - 257
    assert [(ours.vocab[a], ours.vocab[b]) for a, b in ours.merges] == theirs
    to_hf = [hf.token_to_id("".join(chars[b] for b in token)) for token in ours.vocab] + [vocab_size - 1]
    assert [to_hf[i] for i in ours.encode(held)] == hf.encode(held).ids
    # with the bytes' own order the tie rule differs: the merges agree up to a tie, then part
    plain = BPETokenizer().train(train, vocab_size)
    first = next(k for k, (a, b) in enumerate(zip(plain.merges, ours.merges)) if a != b)
    assert first > 50


def test_bits_per_byte():
    assert tokenizer.bits_per_byte(math.log(256), 100, 100) == pytest.approx(8.0)  # uniform over bytes
    assert tokenizer.bits_per_byte(math.log(2), 10, 20) == pytest.approx(0.5)  # a bit per token, 2 bytes per token
    # a unigram model of uniform counts over a vocabulary of 4 (add-one): 2 bits per token
    assert tokenizer.unigram_bits_per_byte([0, 1, 2, 3], [0, 1, 2, 3], 4, 4) == pytest.approx(2.0)
    skewed = tokenizer.unigram_bits_per_byte([0] * 97 + [1, 2, 3], [0] * 10, 4, 10)
    assert skewed == pytest.approx(-math.log2(98 / 104))
    rng = random.Random(0)
    noise = bytes(rng.randrange(256) for _ in range(4096))
    assert tokenizer.zlib_bits_per_byte(noise) > 8.0 > tokenizer.zlib_bits_per_byte(b"ab" * 2048)
    with pytest.raises(ValueError, match="positive"):
        tokenizer.bits_per_byte(1.0, 0, 10)



def test_the_snapshot_is_documents_of_prose():
    for name, least in (("course_text_train.txt", 400), ("course_text_heldout.txt", 30)):
        text = (DATA / name).read_text(encoding="utf-8")
        assert len(tokenizer.documents(text)) >= least and len(text.encode("utf-8")) < 400_000
