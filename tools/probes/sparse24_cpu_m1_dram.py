#!/usr/bin/env python3
"""CPU 2:4 at M = 1 from DRAM: three 8192^2 Sparse24Linear copies and two
dense ones, each call on the next copy, so the large LLC of the box holds
none of them between calls; medians per round of REPS calls, five rounds,
the ratio dense fp32 / 2:4 fp32 per round. For A/B of the row kernel with
the .so swapped between runs (the bench's own round-robin leaves part of
the sparse weight in the LLC on some boxes).
Usage: sparse24_cpu_m1_dram.py [REPS] [THREADS]"""
import sys
import time

import torch
import torch.nn.functional as F

from slimops.nn import Sparse24Linear
from slimops.testing import randn_with_outliers

reps = int(sys.argv[1]) if len(sys.argv) > 1 else 30
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
k = n = 8192
gen = torch.Generator().manual_seed(0)
layers, dense = [], []
for i in range(3):
    lin = torch.nn.Linear(k, n, bias=False)
    with torch.no_grad():
        lin.weight.copy_(randn_with_outliers(n, k, generator=gen) * k**-0.5)
    layers.append(Sparse24Linear.from_linear(lin))
    if i < 2:
        dense.append(layers[-1].dequantize().contiguous())
x = randn_with_outliers(1, k, generator=gen)


def median_time(fns):
    ts = []
    for i in range(reps):
        t0 = time.perf_counter()
        fns[i % len(fns)]()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


ratios = []
for _ in range(5):
    a = median_time([lambda l=l: l(x) for l in layers])
    b = median_time([lambda w=w: F.linear(x, w) for w in dense])
    ratios.append(b / a)
    sparse_bytes = n * k / 2 * 4 + n * k / 8
    print(f"2:4 {a * 1e3:.2f} ms ({sparse_bytes / a / 1e9:.1f} GB/s), dense {b * 1e3:.2f} ms "
          f"({n * k * 4 / b / 1e9:.1f} GB/s): {b / a:.2f}x", flush=True)
print(f"median {sorted(ratios)[2]:.2f}x")
