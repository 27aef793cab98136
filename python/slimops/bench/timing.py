"""Timing that can be trusted (design.md, Benchmarks).

GPU: CUDA events around each call, warm-up first, the L2 cache flushed before
every call so no call finds the previous call's weights on chip, median of
many. CPU: wall clock around each call after warm-up, median of many.
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


def time_cuda(
    fn: Callable[[], object], reps: int = 30, warmup: int = 5, flush: L2Flusher | None = None, warmup_ms: float = 50.0
) -> float:
    """Median milliseconds of fn() on the current CUDA stream.

    Warm-up runs at least `warmup` calls and `warmup_ms` of GPU time: a few
    microsecond-long calls do not bring an idle GPU's clocks up, and rows
    timed right after a pause then read several times slow (seen on H100).
    """
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    while (time.perf_counter() - t0) * 1e3 < warmup_ms:
        for _ in range(10):
            fn()
        torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        if flush is not None:
            flush()
        # Keep the GPU busy while the host queues the start event and fn's
        # kernels: for microsecond-long ops the host-side cost of a call (a
        # custom op's dispatch and Python autograd wrapper) can outlast the
        # flush, and the interval would then time the host, not the kernel.
        torch.cuda._sleep(_HOST_LEAD_CYCLES)
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends))


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
