#!/usr/bin/env python3
"""A/B of one build-time-free knob of the tensor-core wo_gemm at small M, in
one process with the bench runner's timing (L2 flushed, medians): cuBLAS
and the op with the env var at each value, timed round-robin per shape.
Usage: wo_gemm_ab.py ENV_VAR [--values 0,1] [--m 1,16] [--reps 30]"""

import torch
import torch.nn.functional as F

import ab_table  # tools/probes/ab_table.py (this folder is on sys.path)
from slimops.bench.timing import L2Flusher, time_cuda_interleaved
from slimops.formats.quantize import quantize
from slimops.ops import wo_gemm
from slimops.testing import randn_with_outliers, rel_error

SHAPES = [(4096, 4096), (4096, 14336), (14336, 4096), (8192, 8192), (8192, 28672)]

args = ab_table.parse_args(m_default="1,16", bits_default="4,8")
torch.inference_mode().__enter__()
flush = L2Flusher(torch.device("cuda"))
values = args.values
ab_table.print_header(args.var, values, "max rel err vs first")
for bits in (int(b) for b in args.bits.split(",")):
    gs = 128 if bits == 4 else -1
    for k, n in SHAPES:
        gen = torch.Generator(device="cuda").manual_seed(0)
        w = randn_with_outliers(n, k, device="cuda", generator=gen) * 0.02
        qw = quantize(w, bits, gs, symmetric=True)
        wb = w.to(torch.bfloat16)
        for m in (int(v) for v in args.m.split(",")):
            x = randn_with_outliers(m, k, device="cuda", generator=gen).to(torch.bfloat16)
            call = lambda: wo_gemm(x, qw.qweight, qw.scales, zeros=qw.zeros, bits=bits, group_size=gs)
            outs = []
            for v in values:
                names = ab_table.set_knobs(args.var, v)
                outs.append(call())
                ab_table.clear_knobs(names)
            fns = {"cuBLAS": lambda: F.linear(x, wb)}
            fns.update({v: ab_table.with_knobs(args.var, v, call) for v in values})
            t = time_cuda_interleaved(fns, reps=args.reps, flush=flush)
            err = max(rel_error(o, outs[0]) for o in outs)
            ab_table.print_row(bits, k, n, m, t["cuBLAS"], [t[v] for v in values], f"{err:.1e}")
