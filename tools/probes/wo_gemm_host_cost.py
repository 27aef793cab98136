#!/usr/bin/env python3
"""Host-side cost of one wo_gemm call against its GPU time: whether a
microsecond row of the bench times the kernel or the host.
Usage: wo_gemm_host_cost.py K N M [bits] [calls]"""
import sys
import time

import torch

from slimops.formats.quantize import quantize
from slimops.ops import wo_gemm
from slimops.testing import randn_with_outliers

k, n, m = (int(v) for v in sys.argv[1:4])
bits = int(sys.argv[4]) if len(sys.argv) > 4 else 4
calls = int(sys.argv[5]) if len(sys.argv) > 5 else 200
gs = 128 if bits == 4 else -1
gen = torch.Generator(device="cuda").manual_seed(0)
qw = quantize(randn_with_outliers(n, k, device="cuda", generator=gen) * 0.02, bits, gs, symmetric=True)
x = randn_with_outliers(m, k, device="cuda", generator=gen).to(torch.bfloat16)
call = lambda: wo_gemm(x, qw.qweight, qw.scales, zeros=qw.zeros, bits=bits, group_size=gs)
for _ in range(20):
    call()
torch.cuda.synchronize()
torch.cuda._sleep(100_000_000)  # the host queues every call while the GPU sleeps
t0 = time.perf_counter()
for _ in range(calls):
    call()
host_us = (time.perf_counter() - t0) / calls * 1e6
torch.cuda.synchronize()
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
start.record()
for _ in range(calls):
    call()
end.record()
torch.cuda.synchronize()
print(f"| {k}x{n} | M={m} | int{bits} | host {host_us:.1f} us a call | GPU back to back {start.elapsed_time(end) / calls * 1e3:.1f} us a call |")
