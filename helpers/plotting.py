"""Figures shared by the notebooks: attention heatmaps labelled by tokens (from notebook 02 on)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch
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


# ---- notebook 05: splitting into heads ------------------------------------------------------------

HEAD_COLOURS = ("#9ecae1", "#fdae6b")  # head 0 blue, head 1 orange


def _draw_cells(ax: Axes, values: Tensor, left: float, top: float, colours: Sequence[str],
                row_labels: Sequence[str] | None = None) -> None:
    """Draw a 2-D tensor as coloured cells with their values; column c gets colours[c]."""
    from matplotlib.patches import Rectangle  # here, so that notebook 05's section stays self-contained

    rows, cols = values.shape
    for r in range(rows):
        for c in range(cols):
            ax.add_patch(Rectangle((left + c, top + r), 1, 1, facecolor=colours[c], edgecolor="black"))
            ax.text(left + c + 0.5, top + r + 0.5, f"{values[r, c]:.0f}", ha="center", va="center", fontsize=14)
        if row_labels:
            ax.text(left - 0.2, top + r + 0.5, row_labels[r], ha="right", va="center", fontsize=14)


def split_heads_diagram(x: Tensor, x_view: Tensor, x_heads: Tensor, words: Sequence[str],
                        ax: Axes | None = None) -> Axes:
    """The three stages of `split_heads` for one sentence of 3 tokens, d_model = 6 and h = 2 heads.

    `x (1, 3, 6)` -> `x_view (1, 3, 2, 3)` (each row cut into two pieces of 3, the same memory)
    -> `x_heads (1, 2, 3, 3)` (one `(n, d_k)` matrix per head). A column's colour says which
    head owns it, so the figure shows that head j is exactly the column block j of `x`.
    """
    expected = {"x": ((1, 3, 6), x), "x_view": ((1, 3, 2, 3), x_view), "x_heads": ((1, 2, 3, 3), x_heads)}
    for name, (shape, tensor) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{name}: expected shape {format_shape(shape)}, got {format_shape(tensor.shape)}")
    if len(words) != 3:
        raise ValueError(f"words: expected one word per token (3), got {len(words)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(16, 7))
    # 1. (B, n, d_model): head j owns columns 3j..3j+2
    _draw_cells(ax, x[0], 1.5, 2.25, [HEAD_COLOURS[c // 3] for c in range(6)], words)
    # 2. (B, n, h, d_k): every row cut into two pieces of 3 (the same memory, only the indexing changes)
    for j in range(2):
        _draw_cells(ax, x_view[0, :, j], 12.5 + 4 * j, 2.25, [HEAD_COLOURS[j]] * 3, words if j == 0 else None)
    # 3. (B, h, n, d_k): one (n, d_k) matrix per head
    for j in range(2):
        _draw_cells(ax, x_heads[0, j], 25.5, 0.5 + 4.5 * j, [HEAD_COLOURS[j]] * 3, words)
        ax.text(29, 2 + 4.5 * j, f"head {j}", va="center", fontsize=15)
    titles = [(4.5, "X W_Q: (B, n, d_model)\n= (1, 3, 6)"), (16, "(B, n, h, d_k)\n= (1, 3, 2, 3)"),
              (27, "(B, h, n, d_k)\n= (1, 2, 3, 3)")]
    for centre, title in titles:
        ax.text(centre, -0.6, title, ha="center", va="bottom", fontsize=16)
    for start, end, label in [(7.9, 11.1, ".view(1, 3, 2, 3)"), (19.9, 23.6, ".transpose(1, 2)")]:
        ax.annotate("", xy=(end, 3.75), xytext=(start, 3.75), arrowprops=dict(arrowstyle="->", lw=2.5))
        ax.text((start + end) / 2, 3.3, label, ha="center", va="bottom", fontsize=13, family="monospace")
    ax.text(15.5, 8.6, "merge_heads walks back: .transpose(1, 2), then .reshape(1, 3, 6)",
            ha="center", fontsize=15, style="italic")
    ax.set_xlim(0, 31)
    ax.set_ylim(9.3, -1.8)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("Splitting heads: the colour of a column says which head owns it")
    return ax


# ---- notebook 07: the encoder block ----------------------------------------------------------------


def draw_encoder_block(ax: Axes, steps: Sequence[str], skips: Sequence[tuple[int, int]], title: str) -> None:
    """Draw one encoder layer bottom-up: `steps` are boxes ("+" draws an adder); each skip `(i, j)`
    adds the signal leaving step i (-1 = the input) into the adder at step j (a green residual path)."""
    y = {i: 1.2 * (i + 1) for i in range(len(steps))}
    top = {i: y[i] + 0.3 for i in y}
    top[-1] = 0.0
    ax.text(0, -0.35, "x  (B, n, d_model)", ha="center", va="center", fontsize=14)
    for i, step in enumerate(steps):
        if step == "+":
            ax.add_patch(Circle((0, y[i]), 0.3, facecolor="white", edgecolor="black", linewidth=2))
            ax.text(0, y[i], "+", ha="center", va="center", fontsize=20)
        else:
            colour = {"LayerNorm": "#fde68a", "Feed-forward": "#bfdbfe"}.get(step, "#fecaca")
            ax.add_patch(FancyBboxPatch((-1.3, y[i] - 0.3), 2.6, 0.6, boxstyle="round,pad=0.05",
                                        facecolor=colour, edgecolor="black"))
            ax.text(0, y[i], step, ha="center", va="center", fontsize=14)
        ax.add_patch(FancyArrowPatch((0, top[i - 1]), (0, y[i] - 0.3), arrowstyle="-|>", mutation_scale=15))
    for start, end in skips:
        y0 = (top[start] + y[start + 1] - 0.3) / 2  # the branch point, between two steps
        ax.plot([0, 1.8, 1.8], [y0, y0, y[end]], color="#16a34a", linewidth=2.5)
        ax.add_patch(FancyArrowPatch((1.8, y[end]), (0.3, y[end]), arrowstyle="-|>", mutation_scale=15,
                                     color="#16a34a", linewidth=2.5, shrinkA=0, shrinkB=0))
    last = len(steps) - 1
    ax.add_patch(FancyArrowPatch((0, top[last]), (0, top[last] + 0.6), arrowstyle="-|>", mutation_scale=15))
    ax.set_xlim(-2.2, 2.2)
    ax.set_ylim(-0.7, top[last] + 0.7)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.axis("off")


# ---- notebook 08: the decoder layer ----------------------------------------------------------------


def draw_decoder_layer(ax: Axes) -> None:
    """The post-LN decoder layer, left to right: its three sub-layers, each with add & norm and a grey
    residual path, the encoder memory feeding the cross-attention, and where each mask acts."""
    def box(x: float, y0: float, w: float, h: float, text: str, colour: str) -> None:
        ax.add_patch(FancyBboxPatch((x - w / 2, y0 - h / 2), w, h, boxstyle="round,pad=0.1",
                                    facecolor=colour, edgecolor="black", linewidth=1.5))
        ax.text(x, y0, text, ha="center", va="center", fontsize=15)

    def arrow(start: tuple[float, float], end: tuple[float, float], **style: object) -> None:
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", lw=2, **style))

    sublayers = [(3.0, "masked\nself-attention", "#fdae6b"), (8.0, "cross-\nattention", "#9ecae1"),
                 (13.0, "feed-forward", "#a1d99b")]
    ax.text(0, 0, "y", ha="center", va="center", fontsize=20)
    previous = 0.3
    for k, (x, text, colour) in enumerate(sublayers, start=1):
        branch = x - 1.9
        box(x, 0, 2.2, 1.3, text, colour)
        box(x + 2.2, 0, 1.1, 1.3, f"add &\nnorm {k}", "#ffffb2")
        arrow((previous, 0), (x - 1.2, 0))
        arrow((x + 1.2, 0), (x + 1.55, 0))
        ax.plot([branch, branch, x + 2.2], [0, 1.6, 1.6], color="grey", lw=2)  # the residual path
        arrow((x + 2.2, 1.6), (x + 2.2, 0.8), color="grey")
        previous = x + 2.85
    arrow((previous, 0), (previous + 0.8, 0))
    ax.text(previous + 1.0, 0, "out", ha="left", va="center", fontsize=20)
    ax.text(5.3, 1.85, "residual connections", ha="center", fontsize=14, color="dimgrey")
    box(8.0, -2.6, 3.4, 0.9, "memory M (encoder output)", "#deebf7")
    arrow((8.0, -2.05), (8.0, -0.8))
    ax.text(8.15, -1.45, "keys, values", ha="left", va="center", fontsize=13)
    ax.text(7.85, -1.45, "source padding mask", ha="right", va="center", fontsize=13, color="tab:red")
    ax.text(8.0, 0.95, "queries from y", ha="center", fontsize=13)
    ax.text(3.0, -1.15, "causal mask", ha="center", fontsize=13, color="tab:red")
    ax.set_xlim(-0.5, 17.2)
    ax.set_ylim(-3.3, 2.3)
    ax.set_aspect("equal")
    ax.axis("off")


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


# ---- notebook 14: an interactive attention explorer ----------------------------------------------------------

#: The class of the explorer's element: `course slides` loads plotly.js into a deck that has one.
PLOTLY_CLASS = "course-plotly"
#: plotly.js's options: no tool bar (zoom, save) over the figure, whose one control is its menu.
CONFIG = '{"displayModeBar": false, "displaylogo": false}'


class AttentionExplorer:
    """An interactive map of every head: a menu inside the figure (top left) picks (layer, head); hovering a cell
    says which query token looks at which key token, and with what weight.

    Shown in JupyterLab and RISE by Plotly's JupyterLab extension (installed with the `plotly` package,
    no network), and in `course slides` decks by its HTML, which draws with the plotly.js the deck loads
    from the installed package. The element id is fixed (`div_id`) and the weights rounded, so the output
    is the same on every run (strict nbval).
    """

    def __init__(self, maps: Tensor, tokens: Sequence[str], div_id: str, title: str,
                 width: int = 900, height: int = 560) -> None:
        import plotly.graph_objects as go

        maps = torch.as_tensor(maps).detach().cpu().to(torch.float64)
        if maps.ndim != 4 or maps.shape[-2:] != (len(tokens), len(tokens)):
            raise ValueError(f"maps: expected (num_layers, h, n, n) with n = len(tokens) = {len(tokens)}, "
                             f"got {format_shape(maps.shape)}")
        labels = [f"{i} {t}" for i, t in enumerate(tokens)]  # numbered: a repeated word keeps its own row
        num_layers, num_heads = maps.shape[:2]
        names = [f"layer {layer} · head {head}" for layer in range(num_layers) for head in range(num_heads)]
        pairs = [(layer, head) for layer in range(num_layers) for head in range(num_heads)]
        traces = [go.Heatmap(z=[[round(float(w), 3) for w in row] for row in maps[layer, head]], x=labels, y=labels,
                             zmin=0, zmax=1, colorscale="Blues", visible=index == 0, name=names[index],
                             hovertemplate="query %{y} looks at %{x}<br>weight %{z:.2f}<extra></extra>")
                  for index, (layer, head) in enumerate(pairs)]
        buttons = [dict(label=name, method="update",
                        args=[{"visible": [i == index for i in range(len(names))]}, {"title.text": f"{title}: {name}"}])
                   for index, name in enumerate(names)]
        self.figure = go.Figure(traces)
        self.figure.update_layout(
            title=dict(text=f"{title}: {names[0]}", x=0.3), width=width, height=height, autosize=False,
            template="simple_white", margin=dict(l=110, r=30, t=60, b=110),
            xaxis=dict(title="key (looked at)", tickangle=-60), yaxis=dict(title="query", autorange="reversed"),
            updatemenus=[dict(buttons=buttons, direction="down", x=0.0, xanchor="left", y=1.13, yanchor="top")])
        self.div_id, self.width, self.height = div_id, width, height

    def spec(self) -> dict:
        """The figure as plotly.js reads it: `{"data": [...], "layout": {...}}`."""
        import plotly.io

        return json.loads(plotly.io.to_json(self.figure, validate=False))

    def html(self) -> str:
        """A div and the script that draws the figure into it when plotly.js is on the page."""
        spec = json.dumps(self.spec(), separators=(",", ":"))
        size = f"width:{self.width}px;height:{self.height}px"
        return (f'<div id="{self.div_id}" class="{PLOTLY_CLASS}" style="{size}"></div>\n'
                f'<script type="text/javascript">(function () {{ if (!window.Plotly) return; var spec = {spec}; '
                f'Plotly.newPlot("{self.div_id}", spec.data, spec.layout, {CONFIG}); }})();</script>')

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, object]:
        spec = self.spec()
        spec["config"] = json.loads(CONFIG)
        return {"application/vnd.plotly.v1+json": spec, "text/html": self.html(),
                "text/plain": f"AttentionExplorer: {len(self.figure.data)} heads; pick one in the menu, hover a cell"}
