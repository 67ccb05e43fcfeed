"""The ❌ hints of notebooks 04-06 name the learner's mistake without printing the solution's code."""

from __future__ import annotations

import pytest

from helpers.checks import nb04_softmax, nb05_multi_head, nb06_positional

MISTAKE_TABLES = {
    "04 softmax": nb04_softmax.SOFTMAX_MISTAKES,
    "04 scaled_dot_product_attention": nb04_softmax.ATTENTION_MISTAKES,
    "04 causal_mask": nb04_softmax.CAUSAL_MISTAKES,
    "04 padding_mask": nb04_softmax.PADDING_MISTAKES,
    "05 split_heads": nb05_multi_head.SPLIT_MISTAKES,
    "05 merge_heads": nb05_multi_head.MERGE_MISTAKES,
    "05 multi_head_attention": nb05_multi_head.MHA_MISTAKES,
    "05 MultiHeadAttention": nb05_multi_head.MODULE_MISTAKES,
    "06 sinusoidal_positional_encoding": nb06_positional.MISTAKES,
    "06 PositionalEncoding": nb06_positional.MODULE_MISTAKES,
}
OTHER_HINTS = [nb04_softmax.SOFTMAX_IN_PLACE, nb04_softmax.ON_ONE_SEQUENCE.hint, nb05_multi_head.NOT_A_MODULE,
               nb06_positional.BUFFER_HINT]

# Pieces of the exercises' solutions: a hint that contains one hands the answer over.
SOLUTION_CODE = ["amax(dim=dim", "sum(dim=dim", "masked_fill(~mask", "tril()", "torch.tril", "transpose(1, 2)",
                 "transpose(-2, -1)", ".view(", ".reshape(", "unsqueeze(", "!= pad_id", "== pad_id", "math.sqrt",
                 "@ v", "@ W_o", "mask.any(", "nan_to_num(", "torch.where(", "torch.sin(", "torch.cos("]

HINTS = [(f"{table}: {m.hint[:30]}", m.hint) for table, ms in MISTAKE_TABLES.items() for m in ms] + \
        [(f"other: {h[:30]}", h) for h in OTHER_HINTS]


@pytest.mark.parametrize(("where", "hint"), HINTS, ids=[w for w, _ in HINTS])
def test_no_hint_prints_solution_code(where, hint):
    leaked = [piece for piece in SOLUTION_CODE if piece in hint]
    assert not leaked, f"{where}: the hint prints {leaked}: {hint}"
