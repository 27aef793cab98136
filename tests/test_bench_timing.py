"""The CUDA timers of the bench runner (they need a GPU; the CPU timers are
exercised by the CPU bench tests in test_cli.py)."""

import pytest
import torch

from conftest import requires_cuda
from slimops.bench.timing import L2Flusher, time_cuda, time_cuda_abba, time_cuda_interleaved


@requires_cuda
@pytest.mark.parametrize("timer", [time_cuda_interleaved, time_cuda_abba])
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
    # Seven timed calls each, after one warm-up call (ABBA: one before each
    # of its two blocks).
    assert calls == ({"big": 8, "small": 8} if timer is time_cuda_interleaved else {"big": 9, "small": 9})


@requires_cuda
def test_single_cuda_timer_is_positive():
    x = torch.randn(1024, device="cuda")
    assert time_cuda(lambda: x * 2, reps=3, warmup=1, warmup_ms=0.0) > 0
