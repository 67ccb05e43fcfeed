"""`course bench`: the course's performance benchmark.

Every row of the table is a ratio of two things measured in the same run with the tools of
`helpers.measure` (medians of interleaved repeats after a warm-up). Run it on a quiet machine
when the numbers matter.

    run_benchmark(...)       the rows of `course bench`; format_table(rows) prints them
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from helpers.data import Batch
from helpers.measure import median_times, peak_memory
from helpers.measure import threads as using_threads  # `threads` is run_benchmark's argument

# ---- the table -------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the benchmark: what was compared, the two measurements, their ratio and the target."""

    group: str  # sdpa, mha, training, time to accuracy, decoding, chunked memory, chunked time, notebooks
    name: str
    ours: str = ""
    reference: str = ""
    ratio: float | None = None
    target: str = "—"  # e.g. "≤ 1.25×"
    met: bool | None = None  # None: no target, or not measured
    note: str = ""

    @property
    def met_text(self) -> str:
        return {True: "✅ yes", False: "❌ no", None: "—"}[self.met]


@dataclass
class Config:
    """Sizes and repeats of a benchmark run (`quick` shrinks everything so the run takes seconds)."""

    quick: bool = False
    repeats: int = 5
    warmup: int = 1
    min_sample: float = 0.02
    sdpa_lengths: tuple[int, ...] = (128, 256, 512, 1024, 2048)
    sdpa_heads: int = 8
    d_k: int = 64
    mha: tuple[int, int, int, int] = (8, 128, 512, 8)  # batch, n, d_model, heads
    model: tuple[int, int, int, int] = (64, 4, 2, 256)  # d_model, heads, layers, d_ff: notebook 09's model
    train_batch: int = 64
    decode_batch: int = 16
    decode_tokens: int = 128
    chunked_lengths: tuple[int, ...] = (4096, 8192)
    block_size: int = 128
    # Time to accuracy: notebook 09's date model and recipe (tests/test_bench.py keeps them equal to the notebook's).
    date_steps: int = 800
    date_batch: int = 48
    date_lr: float = 3e-3
    date_train: int = 30000
    date_test: int = 1000
    date_target: float = 0.995
    date_every: int = 25  # exact match is measured every `date_every` steps (not counted in the time),
    date_from: int = 300  # from this step on: fewer evaluations (an earlier success counts as here, for both)
    date_repeats: int = 3  # seeds, one training of each model per seed

    @classmethod
    def quick_config(cls) -> Config:
        return cls(quick=True, repeats=3, warmup=1, min_sample=0.002, sdpa_lengths=(64, 128), sdpa_heads=2, d_k=16,
                   mha=(2, 16, 32, 4), model=(32, 4, 1, 64), train_batch=8, decode_batch=4, decode_tokens=16,
                   chunked_lengths=(512, 1024), date_steps=20, date_train=200, date_test=20, date_target=0.0,
                   date_every=10, date_from=10, date_repeats=1)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _mib(nbytes: int) -> str:
    mib = nbytes / 2**20
    return f"{mib:.3g} MiB" if mib < 1000 else f"{mib:.0f} MiB"


def _ratio_row(group: str, name: str, ours: float, reference: float, limit: float | None, *,
               speedup: bool = False) -> Row:
    """ratio = ours / reference (lower is better), or reference / ours for a speed-up (higher is better)."""
    ratio = reference / ours if speedup else ours / reference
    if limit is None:
        return Row(group, name, _ms(ours), _ms(reference), ratio)
    met = ratio >= limit if speedup else ratio <= limit
    return Row(group, name, _ms(ours), _ms(reference), ratio, f"{'≥' if speedup else '≤'} {limit:g}×", met)


def _sdpa_row(cfg: Config, device: torch.device, n: int) -> Row:
    from helpers.attention import scaled_dot_product_attention

    q, k, v = (torch.randn(1, cfg.sdpa_heads, n, cfg.d_k, device=device) for _ in range(3))
    ours, theirs = median_times(
        [lambda: scaled_dot_product_attention(q, k, v), lambda: nn.functional.scaled_dot_product_attention(q, k, v)],
        cfg.repeats, cfg.warmup, device, cfg.min_sample)
    name = f"scaled_dot_product_attention, (1, {cfg.sdpa_heads}, n = {n}, {cfg.d_k}) (vs torch's)"
    return _ratio_row("sdpa", name, ours, theirs, None)


def bench_sdpa(cfg: Config, device: torch.device) -> list[Row]:
    """helpers' scaled_dot_product_attention against torch's fused one, (1, h, n, d_k), n = 128 … 2048."""
    return [_sdpa_row(cfg, device, n) for n in cfg.sdpa_lengths]


def bench_mha(cfg: Config, device: torch.device) -> list[Row]:
    """helpers' MultiHeadAttention forward + backward against nn.MultiheadAttention with copied weights."""
    from helpers.attention import MultiHeadAttention

    batch, n, d_model, heads = cfg.mha
    theirs = nn.MultiheadAttention(d_model, heads, batch_first=True).to(device)
    ours = MultiHeadAttention.from_torch(theirs)
    x = torch.randn(batch, n, d_model, device=device, requires_grad=True)

    def step_ours() -> None:
        out, _ = ours(x, x, x)
        out.sum().backward()
        x.grad = None
        ours.zero_grad(set_to_none=True)

    def step_theirs() -> None:
        # The same outputs as ours: per-head weights are returned, so torch cannot skip computing them.
        out, _ = theirs(x, x, x, need_weights=True, average_attn_weights=False)
        out.sum().backward()
        x.grad = None
        theirs.zero_grad(set_to_none=True)

    t_ours, t_theirs = median_times([step_ours, step_theirs], cfg.repeats, cfg.warmup, device, cfg.min_sample)
    name = f"MultiHeadAttention fwd+bwd, B={batch} n={n} d_model={d_model} h={heads} (vs nn.MultiheadAttention)"
    return [_ratio_row("mha", name, t_ours, t_theirs, 1.25)]


class TorchSeq2Seq(nn.Module):
    """nn.Transformer with the course's embeddings (× √d_model, sinusoidal positions) and output layer:
    the same model as helpers' Transformer(share_embeddings=True), built from torch's layers (its attention is
    torch's fused kernel; its initialisation is nn.Transformer's, but for the embeddings)."""

    def __init__(self, vocab: int, d_model: int, heads: int, layers: int, d_ff: int, dropout: float = 0.1,
                 pad_id: int = 0) -> None:
        super().__init__()
        from helpers.positional import PositionalEncoding

        self.d_model, self.pad_id = d_model, pad_id
        self.embedding = nn.Embedding(vocab, d_model)
        self.positional = PositionalEncoding(d_model, 512, dropout)
        self.transformer = nn.Transformer(d_model, heads, layers, layers, d_ff, dropout, batch_first=True)
        self.output = nn.Linear(d_model, vocab)
        self.output.weight = self.embedding.weight
        # As helpers' Transformer starts its embeddings (× √d_model in forward): nn.Embedding's own N(0, 1) would
        # start them 8 times larger at d_model = 64, a different model (notebook 09 shows why).
        nn.init.normal_(self.embedding.weight, std=d_model**-0.5)
        # helpers' post-LN stacks end without a LayerNorm: so does this one (nn.Transformer adds one to each).
        self.transformer.encoder.norm = self.transformer.decoder.norm = None
        # In eval mode the encoder would pack padded batches into nested tensors (a prototype API that warns);
        # padded tensors give the same outputs, and training never packs.
        self.transformer.encoder.use_nested_tensor = False

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        scale = math.sqrt(self.d_model)
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1], device=tgt.device, dtype=torch.bool)
        out = self.transformer(
            self.positional(self.embedding(src) * scale), self.positional(self.embedding(tgt) * scale),
            tgt_mask=causal, src_key_padding_mask=src == self.pad_id, tgt_key_padding_mask=tgt == self.pad_id,
            memory_key_padding_mask=src == self.pad_id)
        return self.output(out)


def _course_model(cfg: Config, device: torch.device, dropout: float = 0.1) -> nn.Module:
    from helpers.data import VOCAB
    from helpers.transformer import Transformer

    d_model, heads, layers, d_ff = cfg.model
    return Transformer(len(VOCAB), len(VOCAB), d_model, heads, layers, d_ff, dropout, share_embeddings=True).to(device)


def bench_training(cfg: Config, device: torch.device) -> list[Row]:
    """One Adam step (forward, loss, backward, update) on a batch of dates, ours against nn.Transformer's."""
    from helpers.data import PAD, VOCAB, date_pairs, encode_pairs

    batch = encode_pairs(date_pairs(cfg.train_batch, seed=0)).to(device)
    d_model, heads, layers, d_ff = cfg.model
    ours = _course_model(cfg, device).train()
    theirs = TorchSeq2Seq(len(VOCAB), d_model, heads, layers, d_ff).to(device).train()
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD, label_smoothing=0.1)

    def stepper(model: nn.Module) -> Callable[[], None]:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)

        def step() -> None:
            logits = model(batch.src, batch.tgt_in)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), batch.tgt_out.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    t_ours, t_theirs = median_times([stepper(ours), stepper(theirs)], cfg.repeats, cfg.warmup, device,
                                    cfg.min_sample)
    name = (f"Transformer training step, d_model={d_model} h={heads} N={layers} d_ff={d_ff}, "
            f"batch {cfg.train_batch} (vs nn.Transformer)")
    return [_ratio_row("training", name, t_ours, t_theirs, 1.3)]


def _time_to_accuracy(model: nn.Module, cfg: Config, device: torch.device, data: Batch,
                      test_pairs: list[tuple[str, str]], seed: int) -> tuple[float, int | None]:
    """(training seconds until greedy exact match on `test_pairs` reaches the target, evaluations left out; the
    step it was reached at), or (the seconds of all the recipe's steps, None) when it is not reached.

    Exact match is measured every `date_every` steps from step `date_from` on: a model that reached the target
    earlier counts as reaching it at `date_from`, whichever it is."""
    from helpers.training import exact_match, train

    evaluating, reached = 0.0, None

    def evaluate(step: int) -> bool:
        nonlocal evaluating, reached
        if step < cfg.date_from:
            return False
        start = time.perf_counter()
        if exact_match(model, test_pairs, max_len=11) >= cfg.date_target:
            reached = step
        evaluating += time.perf_counter() - start
        return reached is not None

    start = time.perf_counter()
    train(model, data, steps=cfg.date_steps, batch_size=cfg.date_batch, lr=cfg.date_lr, seed=seed, device=device,
          progress=False, every=cfg.date_every, callback=evaluate)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start - evaluating, reached


def _date_data(cfg: Config) -> tuple[Batch, list[tuple[str, str]]]:
    """Notebook 09's training tensors and held-out (source, target) dates, none of them in the training data."""
    import datetime

    from helpers.data import date_pairs, encode_pairs

    test_pairs = date_pairs(cfg.date_test, seed=1)
    held_out = [datetime.date.fromisoformat(t) for _, t in test_pairs]
    return encode_pairs(date_pairs(cfg.date_train, seed=2, exclude=held_out)), test_pairs


def _date_models(cfg: Config, device: torch.device, seed: int) -> tuple[nn.Module, nn.Module]:
    """(helpers' Transformer, nn.Transformer's TorchSeq2Seq): notebook 09's date model twice, dropout 0, the first
    holding a copy of the second's weights (initialised by torch, seeded): the same function, the same start."""
    from helpers.data import VOCAB
    from helpers.transformer import DecoderLayer, EncoderLayer

    d_model, heads, layers, d_ff = cfg.model
    torch.manual_seed(seed)
    theirs = TorchSeq2Seq(len(VOCAB), d_model, heads, layers, d_ff, dropout=0.0).to(device)
    ours = _course_model(cfg, device, dropout=0.0)
    for i in range(layers):
        ours.encoder.layers[i] = EncoderLayer.from_torch(theirs.transformer.encoder.layers[i])
        ours.decoder.layers[i] = DecoderLayer.from_torch(theirs.transformer.decoder.layers[i])
    with torch.no_grad():
        ours.src_embedding.weight.copy_(theirs.embedding.weight)  # shared with tgt_embedding and output
        ours.output.bias.copy_(theirs.output.bias)
    return ours.train(), theirs.train()


def bench_time_to_accuracy(cfg: Config, device: torch.device) -> list[Row]:
    """Notebook 09's date model trained with its recipe until it reaches the target exact match, the course's
    Transformer against nn.Transformer starting from the same weights; one training of each per seed, the order
    alternating (ours first on even seeds); the medians over the seeds."""
    import statistics

    data, test_pairs = _date_data(cfg)
    runs: dict[str, list[tuple[float, int | None]]] = {"ours": [], "theirs": []}
    for seed in range(cfg.date_repeats):
        ours, theirs = _date_models(cfg, device, seed)
        order = [("ours", ours), ("theirs", theirs)]
        for who, model in order if seed % 2 == 0 else order[::-1]:
            runs[who].append(_time_to_accuracy(model, cfg, device, data, test_pairs, seed))
    # A training that missed the target counts its whole budget: a lower bound of its time to the target.
    t_ours, t_theirs = (statistics.median(t for t, _ in runs[who]) for who in ("ours", "theirs"))
    missed = {who: sum(step is None for _, step in runs[who]) for who in runs}
    name = (f"training time to {cfg.date_target:.1%} exact match on {cfg.date_test:,} held-out dates, notebook 09's "
            f"recipe ({cfg.date_steps} steps at most, batch {cfg.date_batch}, peak {cfg.date_lr:g}), "
            f"median of {cfg.date_repeats} seed{'s' * (cfg.date_repeats != 1)} (vs nn.Transformer)")
    steps = "; ".join(f"{label}: " + ", ".join("—" if step is None else str(step) for _, step in runs[who])
                      for who, label in (("ours", "ours"), ("theirs", "nn.Transformer")))
    per_step = [statistics.median(t / (step or cfg.date_steps) for t, step in runs[who]) for who in runs]
    note = f"steps to the target per seed, {steps}; {_ms(per_step[0])} and {_ms(per_step[1])} per step"
    shown = [("> " if missed[who] else "") + _ms(t) for who, t in (("ours", t_ours), ("theirs", t_theirs))]
    if missed["ours"]:  # ours' time is a lower bound: the ratio cannot be bounded from above
        return [Row("time to accuracy", name, *shown, None, "≤ 1×", False,
                    f"ours missed the target on {missed['ours']} seed(s); " + note)]
    row = _ratio_row("time to accuracy", name, t_ours, t_theirs, 1.0)
    row.ours, row.reference = shown
    if missed["theirs"]:  # nn.Transformer's time is a lower bound: the ratio is at most this, maybe less
        row.met = True if row.ratio <= 1.0 else None
        note = f"nn.Transformer missed the target on {missed['theirs']} seed(s): the ratio is at most this; " + note
    row.note = note
    return [row]


def bench_decoding(cfg: Config, device: torch.device) -> list[Row]:
    """Greedy decoding of `decode_tokens` tokens, with the KV cache against without."""
    from helpers.data import BOS, date_pairs, encode_pairs
    from helpers.efficient import greedy_decode_cached

    model = _course_model(cfg, device, dropout=0.0).eval()
    src = encode_pairs(date_pairs(cfg.decode_batch, seed=1)).src.to(device)
    tokens = cfg.decode_tokens
    # eos_id = -1 never occurs, so every row decodes exactly `tokens` tokens.
    cached, uncached = median_times(
        [lambda: greedy_decode_cached(model, src, BOS, -1, tokens), lambda: model.greedy_decode(src, BOS, -1, tokens)],
        max(3, cfg.repeats - 2), cfg.warmup, device, cfg.min_sample)
    name = f"greedy decoding of {tokens} tokens, batch {cfg.decode_batch}: speed-up of the KV cache"
    return [_ratio_row("decoding", name, cached, uncached, 3.0, speedup=True)]


def _chunked_rows(cfg: Config, device: torch.device, n: int) -> list[Row]:
    from helpers.attention import scaled_dot_product_attention
    from helpers.efficient import chunked_attention

    q, k, v = (torch.randn(1, 1, n, cfg.d_k, device=device) for _ in range(3))

    def chunked() -> torch.Tensor:
        return chunked_attention(q, k, v, block_size=cfg.block_size)

    chunked()  # warm-up: first calls allocate more than later ones
    ours = peak_memory(chunked, device)
    naive = peak_memory(lambda: scaled_dot_product_attention(q, k, v), device)
    memory = Row("chunked memory", f"chunked_attention, n = {n}, block {cfg.block_size}: peak memory "
                 "(vs helpers' exact attention)", _mib(ours), _mib(naive), ours / naive, "≤ 0.125×",
                 ours / naive <= 1 / 8)
    t_ours, t_fused = median_times([chunked, lambda: nn.functional.scaled_dot_product_attention(q, k, v)],
                                   max(3, cfg.repeats - 2), cfg.warmup, device, cfg.min_sample)
    time_row = _ratio_row("chunked time", f"chunked_attention, n = {n}, block {cfg.block_size}: time "
                          "(vs torch's fused kernel)", t_ours, t_fused, 3.0)
    return [memory, time_row]


def bench_chunked(cfg: Config, device: torch.device) -> list[Row]:
    """chunked_attention against exact attention (peak memory) and against torch's fused kernel (time)."""
    return [row for n in cfg.chunked_lengths for row in _chunked_rows(cfg, device, n)]


def bench_notebooks(limit: float = 300.0, folder: Path | None = None) -> list[Row]:
    """Execute every notebook of the course (on the CPU, as the tests do); the total against `limit` seconds."""
    from helpers.course.notebooks import course_root, execute, notebook_paths, read_notebook

    folder = folder or course_root() / "notebooks"
    rows, total, failed = [], 0.0, False
    for path in notebook_paths(folder):
        start = time.perf_counter()
        note = ""
        try:
            execute(read_notebook(path), cwd=path.parent)
        except Exception as exc:  # a broken notebook is a finding of the benchmark, not a crash of it
            failed, note = True, f"failed: {type(exc).__name__}"
        seconds = time.perf_counter() - start
        total += seconds
        rows.append(Row("notebook", f"  {path.stem}", f"{seconds:.1f} s", note=note))
    summary = Row("notebooks", f"execute all {len(rows)} notebooks", f"{total:.0f} s", f"{limit:.0f} s",
                  total / limit, f"< {limit:.0f} s", total < limit and not failed and bool(rows))
    return [summary, *rows]


def run_benchmark(quick: bool = False, notebooks: bool = True, device: str | None = None,
                  threads: int | None = None, repeats: int | None = None,
                  progress: Callable[[str], None] | None = None) -> tuple[str, list[Row]]:
    """Run every benchmark; return the table's header line and its rows."""
    from helpers.environment import choose_device, seed_everything, thread_count

    cfg = Config.quick_config() if quick else Config()
    if repeats is not None:
        if repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {repeats}")
        cfg.repeats = repeats
    dev = choose_device(device)
    count = threads or thread_count()
    seed_everything(0)
    if dev.type == "cuda":
        where = f"cuda ({torch.cuda.get_device_name(dev)})"
    else:
        where = f"cpu, {count} thread{'s' * (count != 1)}"
    header = (f"course bench{' --quick' if quick else ''} · {where} · torch {torch.__version__} · "
              f"median of {cfg.repeats} after {cfg.warmup} warm-up, measured alternately in one run")
    rows: list[Row] = []
    steps: list[tuple[str, Callable[[], list[Row]]]] = [
        ("scaled_dot_product_attention", lambda: bench_sdpa(cfg, dev)),
        ("multi-head attention", lambda: bench_mha(cfg, dev)),
        ("training step", lambda: bench_training(cfg, dev)),
        ("time to accuracy", lambda: bench_time_to_accuracy(cfg, dev)),
        ("greedy decoding", lambda: bench_decoding(cfg, dev)),
        ("chunked attention", lambda: bench_chunked(cfg, dev)),
    ]
    if notebooks:
        steps.append(("notebooks", bench_notebooks))
    with using_threads(count):
        for what, step in steps:
            if progress:
                progress(f"measuring {what} ...")
            rows.extend(step())
    if not notebooks:
        rows.append(Row("notebooks", "execute all notebooks", note="skipped (--no-notebooks)"))
    return header, rows


COLUMNS = ("benchmark", "ours", "reference", "ratio", "target", "met")


def format_table(header: str, rows: Sequence[Row]) -> str:
    """The rows as one plain-text table (the `met` column last, as emoji widths vary between terminals)."""
    cells = [COLUMNS] + [
        (r.name, r.ours, r.reference, "" if r.ratio is None else f"{r.ratio:.3g}×", r.target if r.ratio is not None
         or r.met is not None else "", (r.met_text if r.ratio is not None else "") + (f" {r.note}" if r.note else ""))
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS) - 1)]
    lines = [header, ""]
    for i, c in enumerate(cells):
        lines.append("  ".join(text.ljust(w) for text, w in zip(c[:-1], widths)) + "  " + c[-1])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    lines.append("")
    lines.append(f"{sum(r.met is True for r in rows)} targets met, {sum(r.met is False for r in rows)} missed."
                 + (" (--quick: small sizes; its numbers say nothing about the targets)" if "--quick" in header
                    else ""))
    return "\n".join(line.rstrip() for line in lines)
