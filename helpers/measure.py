"""Measuring time and memory (notebook 10), used also by `course bench`.

Compare two things measured in the same run, one right after the other (interleaved, so that a
machine that gets busier half-way affects both alike), each the median of several repeats after
a warm-up. Such ratios survive a noisy machine far better than absolute times do.

    median_times(fns, ...)      medians of interleaved timings (seconds per call)
    median_time(fn, ...)        the same for one function
    peak_memory(fn, ...)        bytes allocated at the peak of fn() beyond what existed before
    fused_kernel_name(q, k, v)  which kernel torch's scaled_dot_product_attention runs here
    threads(count)              a block that runs with `count` torch threads
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from helpers.tensors import require_int


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds_per_call(fn: Callable[[], object], number: int, device: torch.device) -> float:
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(number):
        fn()
    _synchronize(device)
    return (time.perf_counter() - start) / number


def median_times(
    fns: Sequence[Callable[[], object]],
    repeats: int = 5,
    warmup: int = 1,
    device: torch.device | str = "cpu",
    min_sample: float = 0.02,
) -> list[float]:
    """Seconds per call of each function: the median of `repeats` samples after `warmup` calls.

    The functions are timed in turn within every repeat (the order alternating between
    repeats), so a change in the machine's load touches all of them alike. A fast function is
    called several times per sample, so that one sample lasts about `min_sample` seconds; the
    last warm-up call is timed to choose that number.
    """
    device = torch.device(device)
    require_int("repeats", repeats)
    require_int("warmup", warmup)
    numbers = []
    for fn in fns:
        for _ in range(warmup - 1):
            fn()
        once = _seconds_per_call(fn, 1, device)  # the last warm-up call
        numbers.append(max(1, min(1000, math.ceil(min_sample / max(once, 1e-9)))))
    samples: list[list[float]] = [[] for _ in fns]
    for repeat in range(repeats):
        order = range(len(fns)) if repeat % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            samples[i].append(_seconds_per_call(fns[i], numbers[i], device))
    return [statistics.median(s) for s in samples]


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, device: torch.device | str = "cpu",
                min_sample: float = 0.02) -> float:
    """Seconds per call of `fn`: the median of `repeats` samples after `warmup` calls."""
    return median_times([fn], repeats, warmup, device, min_sample)[0]


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    """Run the block with `count` CPU threads for torch, then restore the previous number.

    On a machine shared with other work, one thread gives the steadiest timings: with several,
    every operation waits for its slowest thread, and a thread that the system pauses stalls
    them all.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what C++ libraries write straight to file descriptor 2 (the profiler logs its start
    and stop with a timestamp there, which Jupyter would show under the cell)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def peak_memory(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Bytes allocated at the peak of `fn()`, beyond the tensors that existed before it ran.

    On a GPU, CUDA's allocator statistics (`torch.cuda.max_memory_allocated`). On the CPU,
    `torch.profiler` with `profile_memory=True`: it records every tensor allocation and release
    with a timestamp; replaying them in order gives the live bytes at each moment, and the
    maximum is the peak. (Scratch memory that a single operation frees before it returns is
    not seen, which is the same for every function measured.)
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    from torch.profiler import ProfilerActivity, profile

    with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    changes = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events() if e.self_cpu_memory_usage)
    live = peak = 0
    for _, change in changes:
        live += change
        peak = max(peak, live)
    return int(peak)


def fused_kernel_name(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs: object) -> str:
    """The aten kernel that `F.scaled_dot_product_attention(q, k, v, **kwargs)` runs here, e.g.
    `_scaled_dot_product_flash_attention_for_cpu`; "math" when it falls back to the plain formula."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if q.is_cuda else [])
    with _quiet_native_stderr(), profile(activities=activities) as prof:
        nn.functional.scaled_dot_product_attention(q, k, v, **kwargs)
    names = [e.name.removeprefix("aten::") for e in prof.events() if e.name.startswith("aten::_scaled_dot_product")]
    return names[0] if names else "math"
