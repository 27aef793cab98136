"""Timing that can be trusted (design.md, Benchmarks).

GPU: CUDA events around each call, warm-up first, the L2 cache flushed before
every call so no call finds the previous call's weights on chip, median of
many (the runner: the lower median of two blocks, time_cuda_blocks). CPU: wall
clock around each call after warm-up, median of many.
"""

import statistics
import time
from typing import Callable

import torch


class L2Flusher:
    """Overwrites a buffer twice the size of the L2 cache."""

    def __init__(self, device: torch.device):
        props = torch.cuda.get_device_properties(device)
        size = max(2 * getattr(props, "L2_cache_size", 50 << 20), 64 << 20)
        self.buf = torch.empty(size, dtype=torch.uint8, device=device)

    def __call__(self):
        self.buf.zero_()


# ~100 us at H100 clocks: longer than any call's host-side cost seen here.
_HOST_LEAD_CYCLES = 200_000


def _warm_up_cuda(fns: list[Callable[[], object]], warmup: int, warmup_ms: float) -> None:
    """At least `warmup` calls of each fn and `warmup_ms` of GPU time: a few
    microsecond-long calls do not bring an idle GPU's clocks up, and rows
    timed right after a pause then read several times slow (seen on H100)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    while (time.perf_counter() - t0) * 1e3 < warmup_ms:
        for _ in range(10):
            for fn in fns:
                fn()
        torch.cuda.synchronize()


def _timed_cuda_call(fn: Callable[[], object], flush: L2Flusher | None) -> tuple:
    """Queues one timed call of fn; returns its (start, end) events."""
    if flush is not None:
        flush()
    # Keep the GPU busy while the host queues the start event and fn's
    # kernels: for microsecond-long ops the host-side cost of a call (a
    # custom op's dispatch and Python autograd wrapper) can outlast the
    # flush, and the interval would then time the host, not the kernel.
    torch.cuda._sleep(_HOST_LEAD_CYCLES)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    return start, end


def _medians(events: dict[str, list[tuple]]) -> dict[str, float]:
    torch.cuda.synchronize()
    return {name: statistics.median(s.elapsed_time(e) for s, e in ev) for name, ev in events.items()}


def time_cuda(
    fn: Callable[[], object], reps: int = 30, warmup: int = 5, flush: L2Flusher | None = None, warmup_ms: float = 50.0
) -> float:
    """Median milliseconds of fn() on the current CUDA stream, `reps` calls
    in a row (probes of one kernel; the runner uses time_cuda_blocks)."""
    _warm_up_cuda([fn], warmup, warmup_ms)
    return _medians({"fn": [_timed_cuda_call(fn, flush) for _ in range(reps)]})["fn"]


def time_cuda_blocks(
    fns: dict[str, Callable[[], object]],
    reps: int = 30,
    warmup: int = 5,
    flush: L2Flusher | None = None,
    warmup_ms: float = 50.0,
) -> dict[str, float]:
    """Milliseconds of each fn on the current CUDA stream: its calls in two
    blocks, the contenders in the same order both times (A B C A B C); the
    lower of its two block medians. The GPU has slow spells that last many
    calls (a block's median has read 2-6x slow on H100): timed in one
    block, a contender hit by one reads slow however many calls its median
    took. The order repeats rather than reverses (A B B A, session 14), which
    ran the last contender's two blocks back to back, so that one spell
    could hit both: one int8 row read 0.32 ms against 0.015 ms at the next M
    (bench/results/gemm_int8_cuda_h100_adjacent_blocks.md). Each block
    follows `warmup_ms` of the contender's own calls: over tens of
    milliseconds a GPU settles into the power state and clocks of what it
    runs, as it does serving a model with it, and at large M that moves the
    ratio (H100, int4 2:4 against cuBLAS at M = 4096: 1.02-1.17x timed in
    blocks after each one's own calls, 0.89-0.99x timed in turns). Both:
    bench/results/timing_method_h100.md."""
    events: dict[str, list[list[tuple]]] = {name: [] for name in fns}
    for half in range(2):
        for name in fns:
            _warm_up_cuda([fns[name]], warmup, warmup_ms)
            n = reps // 2 if half == 0 else reps - reps // 2
            events[name].append([_timed_cuda_call(fns[name], flush) for _ in range(max(n, 1))])
    torch.cuda.synchronize()
    return {name: min(statistics.median(s.elapsed_time(e) for s, e in block) for block in blocks)
            for name, blocks in events.items()}


def time_cuda_interleaved(
    fns: dict[str, Callable[[], object]],
    reps: int = 30,
    warmup: int = 5,
    flush: L2Flusher | None = None,
    warmup_ms: float = 50.0,
) -> dict[str, float]:
    """Median milliseconds of each fn on the current CUDA stream, timed
    round-robin (the order rotating every round): the most robust ratio
    between variants of one kernel (env-knob A/B), whose power draw is
    alike. Between a sparse kernel and a dense GEMM at large M it measures
    each in the other's power state (see time_cuda_blocks)."""
    names = list(fns)
    _warm_up_cuda([fns[name] for name in names], warmup, warmup_ms)
    events: dict[str, list[tuple]] = {name: [] for name in names}
    for r in range(reps):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            events[name].append(_timed_cuda_call(fns[name], flush))
    return _medians(events)


def time_cpu(fn: Callable[[], object], reps: int = 15, warmup: int = 2) -> float:
    """Median milliseconds of fn() by wall clock."""
    return time_cpu_interleaved({"fn": fn}, reps, warmup)["fn"]


def time_cpu_interleaved(fns: dict[str, Callable[[], object]], reps: int = 15, warmup: int = 2) -> dict[str, float]:
    """Median milliseconds of each fn by wall clock, timed round-robin (the
    order rotating every round): on a shared CPU box a burst of outside load
    then slows every contender alike, instead of whichever one was being
    timed at the moment. Each contender makes one untimed call right before
    its timed one, so it meets the caches as a run of its own calls would
    (its weights L3-resident when they fit, as in design.md's peer figures)
    rather than as the previous contender left them."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            fns[name]()
            t0 = time.perf_counter()
            fns[name]()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}
