#!/usr/bin/env python3
"""Host-side cost of one wo_gemm call against its GPU time: whether a
microsecond row of the bench times the kernel or the host.
Usage: wo_gemm_host_cost.py K N M [bits] [calls]"""
import sys
import time

import torch

import ab_table  # tools/probes/ab_table.py (this folder is on sys.path)

k, n, m = (int(v) for v in sys.argv[1:4])
bits = int(sys.argv[4]) if len(sys.argv) > 4 else 4
calls = int(sys.argv[5]) if len(sys.argv) > 5 else 200
call = ab_table.wo_gemm_call(k, n, m, bits)
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
