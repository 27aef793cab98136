#!/usr/bin/env python3
"""One weight-only GEMM call, repeated: a target for ncu / nsys.
Usage: wo_gemm_one.py K N M [bits] [reps]; the path comes from
SLIMOPS_CUDA_WO_GEMM / SLIMOPS_WGMMA_BM as in the library."""
import sys

import torch

import ab_table  # tools/probes/ab_table.py (this folder is on sys.path)

k, n, m = (int(v) for v in sys.argv[1:4])
bits = int(sys.argv[4]) if len(sys.argv) > 4 else 4
reps = int(sys.argv[5]) if len(sys.argv) > 5 else 5
call = ab_table.wo_gemm_call(k, n, m, bits)
for _ in range(reps):
    call()
torch.cuda.synchronize()
