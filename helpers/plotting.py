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


# ---- notebook 10: efficient attention ----
# Each takes the measured numbers the notebook computed (seconds, bytes) and draws them; nothing is measured here.


def _log_axis_at(ax: Axes, lengths: Sequence[int]) -> None:
    """Ticks exactly at the measured lengths, labelled by their values (no minor ticks of a log axis)."""
    ax.minorticks_off()
    ax.set_xticks(list(lengths), labels=[str(n) for n in lengths])


def plot_attention_vs_linear(cuts: Sequence[int], measured: Sequence[tuple[float, float]], d_model: int) -> None:
    """Time of the attention core and of the linear layers (projections + feed-forward) against n.

    `measured[i]` is `(attention seconds, linear seconds)` for sequences of length `cuts[i]`; the
    dashed line is `n = 6·d_model`, where both do the same number of multiply-adds.
    """
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.semilogx(cuts, [a * 1e3 for a, _ in measured], "o-", label="attention core (softmax(QKᵀ/√d_k) V)")
    ax.semilogx(cuts, [lin * 1e3 for _, lin in measured], "s-", label="projections + feed-forward")
    ax.axvline(6 * d_model, color="grey", linestyle="--", label="n = 6·d_model (equal multiply-adds)")
    _log_axis_at(ax, cuts)
    ax.set(xlabel="sequence length n (4096 tokens in all)", ylabel="time (ms)",
           title="Short sequences: linear layers; long: attention")
    ax.legend()


def plot_peak_memory(lengths: Sequence[int], peak_exact: Sequence[float], peak_chunked: Sequence[float]) -> None:
    """Peak bytes of exact and of chunked attention (block 128) against n, in MiB on log-log axes."""
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.loglog(lengths, [b / 2**20 for b in peak_exact], "o-", label="exact attention (helpers)")
    ax.loglog(lengths, [b / 2**20 for b in peak_chunked], "s-", label="chunked attention, block 128")
    _log_axis_at(ax, lengths)
    ax.set(xlabel="sequence length n", ylabel="peak memory (MiB)", title="Online softmax: memory linear in n")
    ax.legend()


def plot_attention_race(lengths: Sequence[int], race: Sequence[Sequence[float]]) -> None:
    """Bars of seconds per length: `race[i]` is (exact, chunked, torch fused) at `lengths[i]`, drawn in ms."""
    width = 0.27
    fig, ax = plt.subplots(figsize=(10, 5))
    for i, label in enumerate(["exact (helpers)", "chunked (helpers)", "torch fused"]):
        ax.bar([x + (i - 1) * width for x in range(len(lengths))], [row[i] * 1e3 for row in race], width,
               label=label)
    ax.set_xticks(range(len(lengths)), labels=[f"n = {n}" for n in lengths])
    ax.set(ylabel="time (ms)", title="One head, d_k = 64: ours against torch's kernel")
    ax.legend()
