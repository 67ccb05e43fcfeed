"""Figures shared by the notebooks: attention heatmaps labelled by tokens (from notebook 02 on)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from torch import Tensor

from helpers.tensors import format_shape


def attention_heatmap(
    matrix: Tensor,
    query_labels: Sequence[str],
    key_labels: Sequence[str],
    ax: Axes | None = None,
    title: str | None = None,
    annotate: bool = True,
    fmt: str = "{:.2f}",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
) -> Axes:
    """Draw an `(n_q, n_k)` matrix with query tokens down the side and key tokens along the top.

    Row i is what query token i sees: one cell per key token. Values are written in the
    cells when `annotate` (readable up to about 12 × 12).
    """
    values = torch.as_tensor(matrix).detach().cpu().to(torch.float64)
    if values.ndim != 2 or values.shape != (len(query_labels), len(key_labels)):
        raise ValueError(
            f"matrix: expected shape (len(query_labels), len(key_labels)) = "
            f"{format_shape((len(query_labels), len(key_labels)))}, got {format_shape(values.shape)}"
        )
    if ax is None:
        _, ax = plt.subplots()
    image = ax.imshow(values.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, aspect="equal")
    ax.set_xticks(range(len(key_labels)), labels=list(key_labels), rotation=45, ha="left")
    ax.set_yticks(range(len(query_labels)), labels=list(query_labels))
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.grid(False)
    if annotate:
        low, high = image.get_clim()
        middle = (low + high) / 2
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                value = float(values[i, j])
                # Dark text on the bright end of viridis, light text on the dark end.
                colour = "black" if value > middle else "white"
                ax.text(j, i, fmt.format(value), ha="center", va="center", color=colour, fontsize=13)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.8)
    if title:
        ax.set_title(title, pad=12)
    return ax
