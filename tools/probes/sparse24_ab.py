#!/usr/bin/env python3
"""A/B of one build-time-free knob of the CUDA 2:4 matmul, in one process
with the bench runner's timing (L2 flushed, medians): cuBLAS bf16 and
Sparse24Linear with the env var at each value, timed round-robin per shape
and M (time_cuda_interleaved).
Usage: sparse24_ab.py ENV_VAR [--values 0,1] [--m 1,4] [--bits 4] [--reps 30]"""

import torch
import torch.nn.functional as F

import ab_table  # tools/probes/ab_table.py (this folder is on sys.path)
from slimops.bench.timing import L2Flusher, time_cuda_interleaved
from slimops.testing import rel_error

SHAPES = [(4096, 4096), (4096, 14336), (8192, 8192), (8192, 28672)]

args = ab_table.parse_args(m_default="1,4", bits_default="4")
torch.inference_mode().__enter__()
flush = L2Flusher(torch.device("cuda"))
values = args.values
ab_table.print_header(args.var, values, "rel err vs dense (each)")
for bits in (int(b) for b in args.bits.split(",")):
    for k, n in SHAPES:
        layer, w = ab_table.sparse24_layer(k, n, bits)
        for m in (int(v) for v in args.m.split(",")):
            x = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
            x[:, ::97] *= 20  # outliers
            ref = F.linear(x.float(), w.float())
            errs = []
            for v in values:
                names = ab_table.set_knobs(args.var, v)
                errs.append(rel_error(layer(x), ref))
                ab_table.clear_knobs(names)
            fns = {"cuBLAS": lambda: F.linear(x, w)}
            fns.update({v: ab_table.with_knobs(args.var, v, lambda: layer(x)) for v in values})
            t = time_cuda_interleaved(fns, reps=args.reps, flush=flush)
            ab_table.print_row(bits, k, n, m, t["cuBLAS"], [t[v] for v in values], " ".join(f"{e:.1e}" for e in errs))
