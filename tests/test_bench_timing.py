"""The CUDA timers of the bench runner (they need a GPU; the CPU timers are
exercised by the CPU bench tests in test_cli.py)."""

import pytest
import torch

from conftest import requires_cuda
from slimops.bench.timing import L2Flusher, time_cuda, time_cuda_blocks, time_cuda_interleaved


@requires_cuda
@pytest.mark.parametrize("timer", [time_cuda_interleaved, time_cuda_blocks])
def test_multi_cuda_timers_order_by_work(timer):
    a = torch.randn(2048, 2048, device="cuda")
    small = torch.randn(64, 64, device="cuda")
    calls = {"big": 0, "small": 0}

    def big():
        calls["big"] += 1
        return a @ a

    def tiny():
        calls["small"] += 1
        return small @ small

    t = timer({"big": big, "small": tiny}, reps=7, warmup=1, flush=L2Flusher(torch.device("cuda")), warmup_ms=0.0)
    assert set(t) == {"big", "small"}
    # A 2048^3 matmul does 32768x the work of a 64^3 one.
    assert t["big"] > t["small"] > 0
    # Seven timed calls each, after one warm-up call (blocks: one before
    # each of its two blocks).
    assert calls == ({"big": 8, "small": 8} if timer is time_cuda_interleaved else {"big": 9, "small": 9})


@requires_cuda
def test_block_timer_never_runs_a_contenders_blocks_back_to_back():
    """A B C A B C: one slow spell of the GPU cannot cover both of a
    contender's blocks unless it covers the others' between them."""
    x = torch.randn(256, device="cuda")
    order = []

    def contender(name):
        def fn():
            if not order or order[-1] != name:
                order.append(name)
            return x * 2
        return fn

    time_cuda_blocks({n: contender(n) for n in "abc"}, reps=4, warmup=1, warmup_ms=0.0)
    assert order == list("abcabc")


@requires_cuda
def test_single_cuda_timer_is_positive():
    x = torch.randn(1024, device="cuda")
    assert time_cuda(lambda: x * 2, reps=3, warmup=1, warmup_ms=0.0) > 0
