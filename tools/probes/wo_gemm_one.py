#!/usr/bin/env python3
"""One weight-only GEMM call, repeated: a target for ncu / nsys.
Usage: wo_gemm_one.py K N M [bits] [reps]; the path comes from
SLIMOPS_CUDA_WO_GEMM / SLIMOPS_WGMMA_BM as in the library."""
import sys

import torch

from slimops.formats.quantize import quantize
from slimops.ops import wo_gemm
from slimops.testing import randn_with_outliers

k, n, m = (int(v) for v in sys.argv[1:4])
bits = int(sys.argv[4]) if len(sys.argv) > 4 else 4
reps = int(sys.argv[5]) if len(sys.argv) > 5 else 5
gs = 128 if bits == 4 else -1
gen = torch.Generator(device="cuda").manual_seed(0)
qw = quantize(randn_with_outliers(n, k, device="cuda", generator=gen) * 0.02, bits, gs, symmetric=True)
x = randn_with_outliers(m, k, device="cuda", generator=gen).to(torch.bfloat16)
for _ in range(reps):
    wo_gemm(x, qw.qweight, qw.scales, zeros=qw.zeros, bits=bits, group_size=gs)
torch.cuda.synchronize()
