"""Notebook 09's reversal model, its race and its capstone at chosen budgets and seeds: do its claims hold?

An authors' script (not course content, not run by the tests), beside sweep_09.py; one run per call, one thread:

    python scripts/sweep_09_others.py rev 250 3e-3 0        # reversal: steps, peak rate, seed [, batch = 48]
    python scripts/sweep_09_others.py race 150 3e-3 0 32    # the race: with and without the causal mask
    python scripts/sweep_09_others.py own 300 1e-2 1        # the capstone's model, every component the reference

It prints one JSON line: the reversal's anti-diagonal share and exact match, or the race's held-out losses and
exact matches, or the capstone's exact match (the notebook claims anti-diagonal >= 95 %, exact match >= 90 %;
>= 30 % with the mask; the capstone >= 90 %; its rate and batch are yours.train_own_model's: lr is ignored).
"""

from __future__ import annotations

import datetime
import json
import sys

import torch

from helpers.data import VOCAB, date_pairs, encode_pairs, reversal_pairs
from helpers.training import exact_match, teacher_forced_loss, train
from helpers.transformer import Transformer


def make_model(seed: int, causal: bool = True) -> Transformer:
    """Notebook 09's model (make_model), seeded."""
    torch.manual_seed(seed)
    return Transformer(len(VOCAB), len(VOCAB), d_model=64, num_heads=4, num_layers=2, d_ff=256, dropout=0.0,
                       share_embeddings=True, causal=causal)


def reversal(steps: int, lr: float, seed: int, batch: int) -> dict:
    train_data = encode_pairs(reversal_pairs(20000, seed=3, min_len=4, max_len=10))
    test = reversal_pairs(200, seed=4, min_len=4, max_len=10)
    model = make_model(seed)
    train(model, train_data, steps=steps, batch_size=batch, lr=lr, progress=False, seed=seed)
    hits = total = 0
    for source, target in test:  # as the notebook measures it: the last layer's cross-attention, heads averaged
        pair = encode_pairs([(source, target)])
        model(pair.src, pair.tgt_in)
        looked_at = model.decoder.layers[-1].cross_weights[0].mean(dim=0).argmax(dim=-1)
        n = len(source)
        hits += sum(int(looked_at[i]) == n - 1 - i for i in range(n))
        total += n
    return dict(anti_diagonal=hits / total, exact_match=exact_match(model, test, max_len=11))


def race(steps: int, lr: float, seed: int, batch: int) -> dict:
    test_pairs = date_pairs(1000, seed=1)
    held_out = [datetime.date.fromisoformat(t) for _, t in test_pairs]
    train_data = encode_pairs(date_pairs(30000, seed=2, exclude=held_out))
    test_data = encode_pairs(test_pairs)
    result = {}
    for name, causal in (("with_mask", True), ("without", False)):
        model = make_model(seed, causal)
        train(model, train_data, steps=steps, batch_size=batch, lr=lr, progress=False, seed=seed)
        result[f"loss_{name}"] = teacher_forced_loss(model, test_data)
        result[f"exact_match_{name}"] = exact_match(model, test_pairs, max_len=11)
    return result


def own_model(steps: int, lr: float, seed: int, batch: int) -> dict:
    import tempfile

    from helpers import yours

    with tempfile.TemporaryDirectory() as empty:  # no notebooks: every component is the reference
        table = yours.resolve(empty)
    return dict(exact_match=yours.train_own_model(table, steps=steps, seed=seed).accuracy)


def main() -> None:
    torch.set_num_threads(1)
    what, steps, lr, seed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 48
    run = {"rev": reversal, "race": race, "own": own_model}[what]
    print(json.dumps(dict(what=what, steps=steps, lr=lr, seed=seed, batch=batch, **run(steps, lr, seed, batch))))


if __name__ == "__main__":
    main()
