"""Notebook 14's induction model on several seeds: copy losses, the drop, head scores, and one-head ablations.

Run from the repository root: `python scripts/ablation_14.py [seeds...]` (default 0 1 2 3 4). It prints the
markdown table kept in scripts/ablation_14.md, from which the notebook's margins were chosen.
"""

from __future__ import annotations

import sys

import torch

from helpers import interpret

L = 12  # segment length of the evaluation rows [BOS, s, s]


def main(seeds: list[int]) -> None:
    print("| seed | seconds | drop step | loss 1st / 2nd copy | prev-token head (score) | induction head (score) "
          "| Δloss ablating: prev head, induction head, largest other head | all of layer 1 ablated |")
    print("|---|---|---|---|---|---|---|---|")
    for seed in seeds:
        run = interpret.train_induction(seed=seed)
        model = run.model
        rows = interpret.repeated_segments(512, L, 64, seed=20_000 + seed)
        first, second = interpret.copy_losses(model, rows)
        maps = interpret.attention_maps(model, rows).mean(dim=1)  # (layers, h, n, n)
        prev = interpret.previous_token_score(maps)
        induction = interpret.induction_score(maps, L)
        table = interpret.ablation_table(model, rows)
        p_head = int(prev[0].argmax())
        i_head = int(induction[1].argmax())
        others = [table[layer, head].item() for layer in range(2) for head in range(4)
                  if prev[layer, head] < 0.3 and induction[layer, head] < 0.3]
        with interpret.ablated(model, [(1, h) for h in range(4)]):
            all_layer_1 = interpret.copy_losses(model, rows)[1] - second
        print(f"| {seed} | {run.seconds:.0f} | {run.drop_step()} | {first:.2f} / {second:.3f} "
              f"| (0, {p_head}) {prev[0, p_head]:.2f} | (1, {i_head}) {induction[1, i_head]:.2f} "
              f"| {table[0, p_head]:+.3f}, {table[1, i_head]:+.3f}, {max(others, default=float('nan')):+.3f} "
              f"| {all_layer_1:+.2f} |")
        print("  ablation table (rows: layers, columns: heads):", torch.round(table, decimals=3).tolist(),
              "· prev scores", torch.round(prev, decimals=2).tolist(), "· induction scores",
              torch.round(induction, decimals=2).tolist(), file=sys.stderr)


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [0, 1, 2, 3, 4])
