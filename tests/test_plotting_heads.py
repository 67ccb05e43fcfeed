"""helpers.plotting's notebook-05 diagram: it draws every number once per stage and rejects other shapes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.colors import to_hex

from helpers.plotting import HEAD_COLOURS, split_heads_diagram


def stages() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.arange(18.0).view(1, 3, 6)
    x_view = x.view(1, 3, 2, 3)
    return x, x_view, x_view.transpose(1, 2)


def test_the_diagram_draws_18_cells_per_stage_coloured_by_head():
    fig, ax = plt.subplots()
    split_heads_diagram(*stages(), words=["the", "cat", "sat"], ax=ax)
    assert len(ax.patches) == 3 * 18
    colours = [to_hex(p.get_facecolor()) for p in ax.patches]
    # In the first stage, columns 0-2 belong to head 0 and columns 3-5 to head 1.
    assert colours[:6] == [HEAD_COLOURS[0]] * 3 + [HEAD_COLOURS[1]] * 3
    plt.close(fig)


def test_other_shapes_are_refused_with_the_expected_shape():
    x, x_view, x_heads = stages()
    with pytest.raises(ValueError, match=r"x_heads: expected shape \(1, 2, 3, 3\)"):
        split_heads_diagram(x, x_view, x_view, words=["the", "cat", "sat"])
    with pytest.raises(ValueError, match="one word per token"):
        split_heads_diagram(x, x_view, x_heads, words=["the"])
