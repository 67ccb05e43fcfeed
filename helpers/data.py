"""Synthetic sequence-to-sequence tasks, generated deterministically (notebook 09).

Nothing is downloaded: every example comes from a seeded generator.

- Date normalisation: "friday, 27 november 2026", "Nov 27, 2026", "27.11.2026", ... -> "2026-11-27".
- Sequence reversal: "h3kq9" -> "9qk3h", where the right alignment is known exactly.

Text is encoded character by character with a `CharVocab` that reserves PAD, BOS and EOS.
"""

from __future__ import annotations

import datetime
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

#: The special tokens, the first ids of every vocabulary: PAD = 0, BOS = 1, EOS = 2.
SPECIALS = ("<pad>", "<bos>", "<eos>")
PAD, BOS, EOS = range(len(SPECIALS))


class CharVocab:
    """Characters <-> ids; ids 0, 1, 2 are PAD, BOS and EOS."""

    def __init__(self, characters: str) -> None:
        if len(set(characters)) != len(characters):
            raise ValueError("characters must be unique")
        self.characters = characters
        self.index = {c: i + len(SPECIALS) for i, c in enumerate(characters)}

    def __len__(self) -> int:
        return len(SPECIALS) + len(self.characters)

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        ids = []
        for position, char in enumerate(text):
            if char not in self.index:
                raise ValueError(f"unknown character {char!r} at position {position} of {text!r}")
            ids.append(self.index[char])
        return ([BOS] if bos else []) + ids + ([EOS] if eos else [])

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """Text up to the first EOS; PAD and BOS are skipped."""
        chars = []
        for i in ids.tolist() if isinstance(ids, Tensor) else ids:
            if i == EOS:
                break
            if i >= len(SPECIALS):
                chars.append(self.characters[i - len(SPECIALS)])
        return "".join(chars)


#: One vocabulary for every task, so source and target can share embeddings.
VOCAB = CharVocab(string.ascii_lowercase + string.ascii_uppercase + string.digits + " ,./-")

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _formats(date: datetime.date) -> list[str]:
    d, m, y = date.day, date.month, date.year
    month, mon, weekday = MONTHS[m - 1], MONTHS[m - 1][:3], WEEKDAYS[date.weekday()]
    return [
        f"{d} {month} {y}",
        f"{d} {month.lower()} {y}",
        f"{mon} {d}, {y}",
        f"{month} {d}, {y}",
        f"{d:02d}.{m:02d}.{y}",
        f"{d}.{m}.{y}",
        f"{m:02d}/{d:02d}/{y}",
        f"{y}/{m:02d}/{d:02d}",
        f"{weekday.lower()}, {d} {month.lower()} {y}",
        f"{weekday}, {month} {d}, {y}",
        f"{weekday[:3]} {d} {mon} {y}",
        f"{d}-{mon}-{y}",
        f"{_ordinal(d)} of {month}, {y}",
        f"{month.upper()} {d} {y}",
        f"{d} {mon.upper()} {y}",
    ]


def random_dates(count: int, seed: int, start: int = 1950, end: int = 2049) -> list[datetime.date]:
    """`count` distinct dates between 1 January `start` and 31 December `end`."""
    rng = random.Random(seed)
    first = datetime.date(start, 1, 1).toordinal()
    last = datetime.date(end, 12, 31).toordinal()
    if count > last - first + 1:
        raise ValueError(f"only {last - first + 1} dates exist between {start} and {end}, asked for {count}")
    return [datetime.date.fromordinal(o) for o in rng.sample(range(first, last + 1), count)]


def date_formats(date: datetime.date) -> list[str]:
    """Every way `date_pairs` may write `date`, as a person would (each pair draws one of them)."""
    return _formats(date)


def date_pairs(count: int, seed: int, exclude: Sequence[datetime.date] = ()) -> list[tuple[str, str]]:
    """`count` (human-written date, ISO date) pairs, each date in a randomly chosen format.

    Dates in `exclude` never appear, so a held-out set can be kept apart from training data.
    """
    rng = random.Random(seed + 1)
    excluded = set(exclude)
    dates = [d for d in random_dates(count + len(excluded), seed) if d not in excluded][:count]
    return [(rng.choice(_formats(d)), d.isoformat()) for d in dates]


def reversal_pairs(count: int, seed: int, min_len: int = 4, max_len: int = 12,
                   alphabet: str = string.ascii_lowercase + string.digits) -> list[tuple[str, str]]:
    """`count` (random string, reversed string) pairs."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(min_len, max_len)))
        pairs.append((text, text[::-1]))
    return pairs


@dataclass
class Batch:
    """`src (B, n_s)`, `tgt_in (B, n_t)` = BOS + target, `tgt_out (B, n_t)` = target + EOS; padded with PAD."""

    src: Tensor
    tgt_in: Tensor
    tgt_out: Tensor

    def __len__(self) -> int:
        return self.src.shape[0]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.src.to(device), self.tgt_in.to(device), self.tgt_out.to(device))

    def __getitem__(self, index: slice | Tensor) -> Batch:
        return Batch(self.src[index], self.tgt_in[index], self.tgt_out[index])

    def trimmed(self, pad_id: int = PAD) -> Batch:
        """The same rows without the columns that are padding in every row (masked anyway, so the
        model's outputs at the real positions are unchanged, computed over fewer positions)."""
        n_s = int((self.src != pad_id).any(dim=0).nonzero().max()) + 1
        n_t = int((self.tgt_out != pad_id).any(dim=0).nonzero().max()) + 1
        return Batch(self.src[:, :n_s], self.tgt_in[:, :n_t], self.tgt_out[:, :n_t])


def _pad(rows: list[list[int]], max_len: int | None, what: str) -> Tensor:
    longest = max(len(r) for r in rows)
    if max_len is not None and longest > max_len:
        raise ValueError(f"a {what} sequence has {longest} tokens, more than max_len = {max_len}")
    return torch.tensor([r + [PAD] * (longest - len(r)) for r in rows], dtype=torch.long)


def encode_pairs(pairs: Sequence[tuple[str, str]], vocab: CharVocab = VOCAB, max_len: int | None = None) -> Batch:
    """Encode and pad (source, target) pairs into one `Batch`."""
    if not pairs:
        raise ValueError("no pairs to encode")
    src = [vocab.encode(s) for s, _ in pairs]
    tgt = [vocab.encode(t) for _, t in pairs]
    return Batch(
        _pad(src, max_len, "source"),
        _pad([[BOS] + t for t in tgt], max_len, "target"),
        _pad([t + [EOS] for t in tgt], max_len, "target"),
    )


def batches(data: Batch, batch_size: int, generator: torch.Generator, bucket: bool = False,
            pool: int = 50) -> list[Batch]:
    """One epoch of shuffled mini-batches.

    With `bucket`, the shuffled rows are cut into pools of `pool` batches, each pool is sorted by
    source length before it is cut into batches, and the batches are shuffled: rows of similar
    length share a batch, and each batch is trimmed to its own longest row, so fewer padding
    positions are computed.
    """
    order = torch.randperm(len(data), generator=generator)
    if not bucket:
        return [data[order[i : i + batch_size]] for i in range(0, len(data), batch_size)]
    lengths = (data.src != PAD).sum(dim=1)
    out: list[Batch] = []
    for start in range(0, len(data), batch_size * pool):
        chunk = order[start : start + batch_size * pool]
        chunk = chunk[torch.sort(lengths[chunk], stable=True).indices]
        out.extend(data[chunk[i : i + batch_size]].trimmed() for i in range(0, len(chunk), batch_size))
    return [out[i] for i in torch.randperm(len(out), generator=generator).tolist()]
