"""helpers.data: deterministic synthetic tasks, the character vocabulary and padding."""

from __future__ import annotations

import datetime

import pytest
import torch

from helpers.data import BOS, EOS, PAD, VOCAB, CharVocab, batches, date_pairs, encode_pairs, reversal_pairs


def test_vocab_round_trip_and_specials():
    ids = VOCAB.encode("Nov 27, 2026", bos=True, eos=True)
    assert ids[0] == BOS and ids[-1] == EOS
    assert VOCAB.decode(ids) == "Nov 27, 2026"
    assert VOCAB.decode([BOS, *VOCAB.encode("ab"), EOS, *VOCAB.encode("zz")]) == "ab"
    assert len({PAD, BOS, EOS}) == 3 and min(VOCAB.index.values()) == 3


def test_unknown_character_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown character '€' at position 3 of 'abc€'"):
        VOCAB.encode("abc€")
    with pytest.raises(ValueError, match="unique"):
        CharVocab("aa")


def test_dates_are_deterministic_valid_and_varied():
    pairs = date_pairs(2000, seed=7)
    assert pairs == date_pairs(2000, seed=7)
    assert pairs != date_pairs(2000, seed=8)
    for source, target in pairs:
        date = datetime.date.fromisoformat(target)
        assert str(date.year) in source
        VOCAB.encode(source)  # every character is in the vocabulary
    sources = [s for s, _ in pairs]
    assert any("," in s for s in sources) and any("." in s for s in sources) and any("/" in s for s in sources)
    assert any(s[0].islower() for s in sources) and any(s.isupper() for s in sources if s[0].isalpha())
    assert len({t for _, t in pairs}) == 2000, "distinct dates"


def test_weekday_names_are_correct():
    for source, target in date_pairs(3000, seed=3):
        date = datetime.date.fromisoformat(target)
        for weekday in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"):
            if source.lower().startswith(weekday):
                assert date.strftime("%A").lower() == weekday


def test_held_out_dates_never_appear_in_training():
    test = date_pairs(500, seed=1)
    held_out = [datetime.date.fromisoformat(t) for _, t in test]
    train = date_pairs(5000, seed=2, exclude=held_out)
    assert not {t for _, t in test} & {t for _, t in train}
    assert len(train) == 5000


def test_reversal_pairs():
    pairs = reversal_pairs(100, seed=0, min_len=3, max_len=6)
    assert all(t == s[::-1] and 3 <= len(s) <= 6 for s, t in pairs)


def test_encode_pairs_pads_and_shifts_the_target():
    batch = encode_pairs([("ab", "xyz"), ("abcd", "x")])
    assert batch.src.shape == (2, 4) and batch.tgt_in.shape == (2, 4) and batch.tgt_out.shape == (2, 4)
    assert batch.src[0, 2:].tolist() == [PAD, PAD]
    assert batch.tgt_in[0, 0] == BOS and torch.equal(batch.tgt_in[0, 1:], batch.tgt_out[0, :-1])
    assert batch.tgt_out[1].tolist() == [VOCAB.index["x"], EOS, PAD, PAD]
    with pytest.raises(ValueError, match="more than max_len = 3"):
        encode_pairs([("abcd", "x")], max_len=3)
    with pytest.raises(ValueError, match="no pairs"):
        encode_pairs([])


def test_batches_cover_every_example_once():
    data = encode_pairs(reversal_pairs(103, seed=1))
    epoch = batches(data, 10, torch.Generator().manual_seed(0))
    assert [len(b) for b in epoch] == [10] * 10 + [3]
    seen = torch.cat([b.src for b in epoch])
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, data.src.tolist()))


def test_bucketed_batches_cover_every_example_once_with_less_padding():
    data = encode_pairs(date_pairs(500, seed=0))
    plain = batches(data, 20, torch.Generator().manual_seed(0))
    epoch = batches(data, 20, torch.Generator().manual_seed(0), bucket=True, pool=5)
    rows = sorted(tuple(int(t) for t in row if t != PAD) for b in epoch for row in b.src)
    assert rows == sorted(tuple(int(t) for t in row if t != PAD) for row in data.src)
    assert sum(b.src.numel() for b in epoch) < 0.8 * sum(b.src.numel() for b in plain)
    for b in epoch:  # trimmed: the last column holds a real token in some row
        assert (b.src[:, -1] != PAD).any() and (b.tgt_out[:, -1] != PAD).any()


def test_trimmed_keeps_every_real_token():
    data = encode_pairs([("ab", "x"), ("abc", "xy")])[:1]
    assert data.trimmed().src.tolist() == [VOCAB.encode("ab")] and data.trimmed().tgt_out.shape == (1, 2)
