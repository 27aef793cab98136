#!/usr/bin/env python3
"""Does the timing method move the 2:4 rows' ratios? cuBLAS bf16 against
Sparse24Linear (bf16 and int4 kept values) at large M, timed three ways in
one process: each contender's 30 calls in one block (the runner before
session 14), round-robin (time_cuda_interleaved, the env-knob A/B probes),
and two blocks of 15, each after 50 ms of the contender's own calls, the
lower block median (time_cuda_blocks, the runner since; in session 14, when
this probe ran, the blocks went in A B B A order, now A B A B).
L2 flushed and medians throughout.
Usage: timing_method_ab.py [--m 1024,4096] [--reps 30]"""
import argparse

import torch
import torch.nn.functional as F

import ab_table  # tools/probes/ab_table.py (this folder is on sys.path)
from slimops.bench.timing import L2Flusher, time_cuda, time_cuda_blocks, time_cuda_interleaved

ap = argparse.ArgumentParser()
ap.add_argument("--m", default="1024,4096")
ap.add_argument("--reps", type=int, default=30)
args = ap.parse_args()
torch.inference_mode().__enter__()
flush = L2Flusher(torch.device("cuda"))
print("| bits | K x N | M | method | cuBLAS us | ours us | x cuBLAS |\n|---|---|---|---|---|---|---|")
for bits in (16, 4):
    for k, n in [(8192, 8192), (8192, 28672), (4096, 14336)]:
        layer, w = ab_table.sparse24_layer(k, n, bits)
        for m in (int(v) for v in args.m.split(",")):
            x = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
            fns = {"cuBLAS": lambda: F.linear(x, w), "ours": lambda: layer(x)}
            runs = {
                "one block each": {name: time_cuda(fn, reps=args.reps, flush=flush) for name, fn in fns.items()},
                "round-robin": time_cuda_interleaved(fns, reps=args.reps, flush=flush),
                "two blocks": time_cuda_blocks(fns, reps=args.reps, flush=flush),
            }
            for method, t in runs.items():
                print(f"| {bits} | {k}x{n} | {m} | {method} | {t['cuBLAS']*1e3:.1f} | {t['ours']*1e3:.1f} | "
                      f"{t['cuBLAS']/t['ours']:.2f}x |", flush=True)
