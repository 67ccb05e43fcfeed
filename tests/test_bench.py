"""`course bench`: the quick run gives a complete table (its numbers are not checked: they depend on the
machine), and the measuring tools measure what they claim."""

from __future__ import annotations

import math
import time
from pathlib import Path

import nbformat
import pytest
import torch
from torch import nn

from helpers.course import bench
from helpers.course.bench import COLUMNS, Config, Row, format_table, run_benchmark
from helpers.course.cli import main
from helpers.data import VOCAB
from helpers.measure import fused_kernel_name, median_time, median_times, peak_memory, threads


@pytest.fixture(scope="module")
def quick_run() -> tuple[str, list[Row]]:
    return run_benchmark(quick=True, notebooks=False, device="cpu", threads=1)


def test_quick_run_has_every_row_of_the_issue(quick_run):
    header, rows = quick_run
    cfg = Config.quick_config()
    groups = [r.group for r in rows]
    assert groups == (["sdpa"] * len(cfg.sdpa_lengths) + ["mha", "training", "time to accuracy", "decoding"]
                      + ["chunked memory", "chunked time"] * len(cfg.chunked_lengths) + ["notebooks"])
    assert "--quick" in header and "cpu, 1 thread ·" in header and "median of 3" in header
    for n, row in zip(cfg.sdpa_lengths, rows):
        assert f"n = {n}" in row.name and row.target == "—" and row.met is None
    for row in rows[:-1]:
        assert row.ratio is not None and math.isfinite(row.ratio) and row.ratio > 0, row
        assert row.ours and row.reference
    targets = {r.group: r.target for r in rows if r.met is not None}
    assert targets == {"mha": "≤ 1.25×", "training": "≤ 1.3×", "time to accuracy": "≤ 1×", "decoding": "≥ 3×",
                       "chunked memory": "≤ 0.125×",
                       "chunked time": "≤ 3×"}
    for row in rows:
        if row.met is not None:
            limit = float(row.target.split()[1].rstrip("×"))
            assert row.met == (row.ratio >= limit if row.target.startswith("≥") else row.ratio <= limit)
    assert rows[-1].note == "skipped (--no-notebooks)" and rows[-1].met is None


def test_table_lists_every_row_under_the_column_headings(quick_run):
    header, rows = quick_run
    table = format_table(header, rows)
    lines = table.splitlines()
    assert lines[0] == header
    assert lines[2].split() == list(COLUMNS)
    assert set(lines[3].replace(" ", "")) == {"-"}
    for row in rows:
        assert any(line.startswith(row.name) for line in lines), row.name
    assert lines[-1].endswith("(--quick: small sizes; its numbers say nothing about the targets)")
    assert "targets met" in lines[-1]


def test_format_table_marks_met_and_missed_targets():
    rows = [Row("mha", "fast enough", "1 ms", "1 ms", 1.0, "≤ 1.25×", True),
            Row("training", "too slow", "2 ms", "1 ms", 2.0, "≤ 1.3×", False),
            Row("sdpa", "informative", "3 ms", "1 ms", 3.0)]
    table = format_table("course bench · test", rows)
    assert "✅ yes" in table and "❌ no" in table
    assert table.splitlines()[-1] == "1 targets met, 1 missed."
    lines = table.splitlines()
    for line, ours, ratio in zip(lines[4:7], ("1 ms", "2 ms", "3 ms"), ("1×", "2×", "3×")):
        assert line.index(ours) == lines[2].index("ours") and line.index(ratio) == lines[2].index("ratio"), table


def test_cli_prints_the_table(monkeypatch, capsys):
    calls = {}

    def fake_run(**kwargs):
        calls.update(kwargs)
        return "course bench · fake", [Row("mha", "MultiHeadAttention", "1 ms", "1 ms", 1.0, "≤ 1.25×", True)]

    monkeypatch.setattr(bench, "run_benchmark", fake_run)
    assert main(["bench", "--quick", "--no-notebooks", "--threads", "1", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("course bench · fake") and "MultiHeadAttention" in out and "✅ yes" in out
    assert calls["quick"] is True and calls["notebooks"] is False and calls["threads"] == 1 and calls["repeats"] == 2


def test_cli_reports_a_bad_device_in_one_line(capsys):
    assert main(["bench", "--quick", "--no-notebooks", "--device", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("course bench:") and "nonsense" in err


def test_median_times_measures_in_proportion():
    slow, fast = median_times([lambda: time.sleep(0.006), lambda: time.sleep(0.002)], repeats=3, min_sample=0.01)
    assert 0.006 <= slow < 0.05 and 0.002 <= fast < 0.05
    assert 1.5 < slow / fast < 4
    assert median_time(lambda: time.sleep(0.003), repeats=1) >= 0.003
    with pytest.raises(ValueError, match="repeats"):
        median_times([lambda: None], repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        median_times([lambda: None], warmup=0)


def test_peak_memory_counts_the_tensors_alive_at_once(capfd):
    mib = 2**20

    def one_at_a_time():
        for _ in range(3):
            torch.ones(mib // 4)  # 1 MiB each, freed at once

    def three_at_once():
        kept = [torch.ones(mib // 4) for _ in range(3)]
        return sum(float(t[0]) for t in kept)

    assert mib <= peak_memory(one_at_a_time) < 1.5 * mib
    assert 3 * mib <= peak_memory(three_at_once) < 3.5 * mib
    assert "profiler" not in capfd.readouterr().err, "the profiler's native log lines are silenced"


def test_threads_restores_the_thread_count():
    before = torch.get_num_threads()
    with threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_fused_kernel_name_names_an_aten_kernel_or_math():
    q = torch.randn(1, 2, 16, 8)
    name = fused_kernel_name(q, q, q, is_causal=True)
    assert name == "math" or name.startswith("_scaled_dot_product")


def test_notebooks_row_times_each_notebook_and_reports_failures(tmp_path):
    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1 + 1)")])
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise RuntimeError('broken')")])
    nbformat.write(good, tmp_path / "00_good.ipynb")
    nbformat.write(bad, tmp_path / "01_bad.ipynb")
    summary, first, second = bench.bench_notebooks(limit=300, folder=tmp_path)
    assert summary.name == "execute all 2 notebooks" and summary.target == "< 300 s"
    assert summary.met is False, "a failing notebook fails the row"
    assert first.name.strip() == "00_good" and first.note == ""
    assert second.name.strip() == "01_bad" and second.note.startswith("failed")


def test_time_to_accuracy_uses_notebook_09s_date_model_recipe_and_data():
    """The row measures what notebook 09 trains: its steps, batch, peak rate, training and held-out dates."""
    import json
    import re

    cfg = Config()
    cells = json.loads((Path(__file__).parent.parent / "notebooks" / "09_full_transformer.ipynb").read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert f"DATE_STEPS = {cfg.date_steps}\n" in code
    call = re.search(r"losses = train\(model, train_data, steps=DATE_STEPS, batch_size=(\d+), lr=([0-9.e-]+),", code)
    assert call and (int(call[1]), float(call[2])) == (cfg.date_batch, cfg.date_lr), call
    assert f"test_pairs = date_pairs({cfg.date_test}, seed=1)" in code
    assert f"train_pairs = date_pairs({cfg.date_train}, seed=2, exclude=held_out)" in code
    assert "assert accuracy >= 0.995" in code and cfg.date_target == 0.995
    assert tuple(cfg.model) == (64, 4, 2, 256) and "d_model=64, num_heads=4, num_layers=2, d_ff=256" in code


def test_time_to_accuracy_trains_on_notebook_09s_dates_and_tests_on_its_held_out_ones():
    from helpers.data import date_pairs

    cfg = Config.quick_config()
    data, test_pairs = bench._date_data(cfg)
    assert test_pairs == date_pairs(cfg.date_test, seed=1) and len(data) == cfg.date_train
    trained = {"".join(VOCAB.decode(row)) for row in data.tgt_out}
    assert not trained & {target for _, target in test_pairs}, "a held-out date is in the training data"


@pytest.mark.usefixtures("one_thread")
def test_the_two_date_models_are_one_function_from_the_same_weights():
    """helpers' Transformer and nn.Transformer's, as the row trains them: equal logits, equal gradients, no dropout."""
    from helpers.data import date_pairs, encode_pairs

    ours, theirs = bench._date_models(Config(), torch.device("cpu"), seed=1)
    assert all(m.training for m in (ours, theirs))
    assert all(module.p == 0.0 for model in (ours, theirs) for module in model.modules()
               if isinstance(module, nn.Dropout))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    batch = encode_pairs(date_pairs(16, seed=3))  # rows of different lengths: the padding masks matter
    out_ours, out_theirs = ours(batch.src, batch.tgt_in), theirs(batch.src, batch.tgt_in)
    torch.testing.assert_close(out_ours, out_theirs, rtol=1e-5, atol=1e-5)
    out_ours.square().mean().backward()
    out_theirs.square().mean().backward()
    torch.testing.assert_close(ours.src_embedding.weight.grad, theirs.embedding.weight.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.usefixtures("one_thread")  # tiny models: more threads only spin against each other
def test_time_to_accuracy_counts_training_until_the_target_and_not_the_evaluations(monkeypatch):
    """Evaluations are left out of the time, none before `date_from`; training stops at the target."""
    cfg = Config.quick_config()
    (row,) = bench.bench_time_to_accuracy(cfg, torch.device("cpu"))
    assert row.group == "time to accuracy" and row.met is not None and math.isfinite(row.ratio)
    assert "nn.Transformer" in row.name and f"{cfg.date_test:,} held-out dates" in row.name
    assert row.note.startswith(f"steps to the target per seed, ours: {cfg.date_every}; nn.Transformer: "
                               f"{cfg.date_every}; ")

    calls = []
    clock = [0.0]  # seconds each evaluation adds to the clock bench reads

    def slow_exact_match(model, pairs, max_len):
        calls.append(len(pairs))
        clock[0] += 1000.0  # an evaluation far slower than any training: it must not count
        return 1.0 if cfg.date_target == 0.0 else 0.0

    monkeypatch.setattr("helpers.training.exact_match", slow_exact_match)
    monkeypatch.setattr(bench.time, "perf_counter", lambda: time.monotonic() + clock[0])
    seconds, step = bench._time_to_accuracy(bench._course_model(cfg, torch.device("cpu"), dropout=0.0), cfg,
                                            torch.device("cpu"), *bench._date_data(cfg), seed=0)
    assert calls == [cfg.date_test] and step == cfg.date_every, (calls, step)  # stopped at the first evaluation
    assert 0 < seconds < 1000.0, seconds
    calls.clear()
    late = Config.quick_config()
    late.date_from, late.date_target = 15, 0.5  # evaluated at steps 20 only (every 10, from 15), never reached
    cfg = late
    seconds, step = bench._time_to_accuracy(bench._course_model(late, torch.device("cpu"), dropout=0.0), late,
                                            torch.device("cpu"), *bench._date_data(late), seed=0)
    assert step is None and calls == [late.date_test] and 0 < seconds < 1000.0, (calls, seconds)


def fixed_runs(monkeypatch, results: dict[str, list[tuple[float, int | None]]]) -> list[tuple[str, int]]:
    """Make every training of the row return `results[who][seed]`; return the order the trainings ran in."""
    order = []

    def fake(model, cfg, device, data, test_pairs, seed):
        who = "theirs" if isinstance(model, bench.TorchSeq2Seq) else "ours"
        order.append((who, seed))
        return results[who][seed]

    monkeypatch.setattr(bench, "_time_to_accuracy", fake)
    return order


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(("ours", "theirs", "ratio", "met", "note"), [
    ([(4.0, 400), (6.0, 600), (5.0, 500)], [(5.0, 450), (4.0, 400), (10.0, 700)], 1.0, True, "steps to the target"),
    ([(9.0, 400), (6.0, 600), (5.0, 500)], [(5.0, 450), (4.0, 400), (2.0, 200)], 1.5, False, "steps to the target"),
    ([(4.0, 400), (6.0, 600), (5.0, 500)], [(8.0, None), (4.0, 400), (9.0, None)], 5 / 8, True,
     "nn.Transformer missed the target on 2 seed(s): the ratio is at most this"),
    ([(4.0, 400), (6.0, 600), (5.0, 500)], [(3.0, None), (4.0, 400), (2.0, 200)], 5 / 3, None,
     "nn.Transformer missed the target on 1 seed(s): the ratio is at most this"),
    ([(4.0, 400), (8.0, None), (5.0, 500)], [(3.0, 300), (4.0, 400), (2.0, 200)], None, False,
     "ours missed the target on 1 seed(s)"),
], ids=["both reach it, as fast", "both reach it, ours slower", "theirs misses, bound under 1",
        "theirs misses, bound over 1", "ours misses"])
def test_time_to_accuracy_row_from_its_trainings(monkeypatch, ours, theirs, ratio, met, note):
    """Medians over the seeds, alternating order, and what a missed target makes of the ratio and the verdict."""
    order = fixed_runs(monkeypatch, {"ours": ours, "theirs": theirs})
    cfg = Config.quick_config()
    cfg.date_repeats = 3
    (row,) = bench.bench_time_to_accuracy(cfg, torch.device("cpu"))
    assert order == [("ours", 0), ("theirs", 0), ("theirs", 1), ("ours", 1), ("ours", 2), ("theirs", 2)]
    assert row.ratio == pytest.approx(ratio) if ratio is not None else row.ratio is None
    assert row.met is met and note in row.note and "median of 3 seeds" in row.name, row
    assert row.ours.startswith("> ") == any(step is None for _, step in ours)
    assert row.reference.startswith("> ") == any(step is None for _, step in theirs)


def test_train_calls_back_every_few_steps_and_after_the_last_and_stops_when_told():
    from helpers.data import date_pairs, encode_pairs
    from helpers.training import train

    cfg = Config.quick_config()
    data = encode_pairs(date_pairs(64, seed=0))
    steps_seen: list[tuple[int, bool]] = []
    model = bench._course_model(cfg, torch.device("cpu"))

    def evaluate(step: int) -> bool:  # as an evaluation does: leaves the model in eval mode
        steps_seen.append((step, model.training))
        model.eval()
        return False

    train(model, data, steps=25, batch_size=8, progress=False, every=10, callback=evaluate)
    assert steps_seen == [(10, True), (20, True), (25, True)], "called back, in train mode, every 10 and at the end"
    losses = train(bench._course_model(cfg, torch.device("cpu")), data, steps=25, batch_size=8, progress=False,
                   every=5, callback=lambda step: step == 10)
    assert len(losses) == 10
    with pytest.raises(ValueError, match="every >= 1"):
        train(bench._course_model(cfg, torch.device("cpu")), data, steps=5, progress=False, callback=lambda s: True)
