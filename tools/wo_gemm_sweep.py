#!/usr/bin/env python3
"""Every CUDA weight-only GEMM path at every M, in one process, against
cuBLAS bf16: the measurements behind the binding's dispatch table
(csrc/torch/wo_gemm_cuda.cpp) and the wgmma tile choice.

Paths are switched per call through SLIMOPS_CUDA_WO_GEMM and
SLIMOPS_WGMMA_BM, which the library reads on every call. Prints a markdown
table (ms, medians, L2 flushed; rel err against float32) and writes it to
--out if given.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

from slimops.bench.timing import L2Flusher, time_cuda
from slimops.formats.quantize import dequantize, quantize
from slimops.ops import wo_gemm
from slimops.testing import randn_with_outliers, rel_error

# name: (SLIMOPS_CUDA_WO_GEMM, SLIMOPS_WGMMA_BM)
CONFIGS = {
    "mma": ("mma", None),
    "dense": ("dense", None),
    "wg64": ("wgmma", "64"),
    "wg128": ("wgmma", "128"),
    "wg256": ("wgmma", "256"),
    "auto": ("auto", None),
}


def set_path(path, bm):
    os.environ["SLIMOPS_CUDA_WO_GEMM"] = path
    if bm is None:
        os.environ.pop("SLIMOPS_WGMMA_BM", None)
    else:
        os.environ["SLIMOPS_WGMMA_BM"] = bm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=None)
    ap.add_argument("--shapes", default="8192x8192,8192x28672,4096x14336")
    ap.add_argument("--m", default="16,32,64,128,256,1024,4096")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    gs = args.group_size if args.group_size is not None else (128 if args.bits == 4 else -1)
    configs = args.configs.split(",")
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    flush = L2Flusher(dev)
    head = ["K x N", "M", "cuBLAS"] + configs + [f"{c} x" for c in configs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    print(torch.cuda.get_device_name(), f"int{args.bits} g{gs}", flush=True)
    print(lines[0], flush=True)
    for shape in args.shapes.split(","):
        k, n = (int(v) for v in shape.split("x"))
        w = randn_with_outliers(n, k, device=dev, generator=gen) * 0.02
        qw = quantize(w, args.bits, gs, symmetric=True)
        w_bf16 = w.to(torch.bfloat16)
        w_deq = dequantize(qw.qweight, qw.scales, qw.zeros, args.bits, gs)
        for m in (int(v) for v in args.m.split(",")):
            x = randn_with_outliers(m, k, device=dev, generator=gen).to(torch.bfloat16)
            ref = F.linear(x.float(), w_deq)
            t_cublas = time_cuda(lambda: F.linear(x, w_bf16), reps=args.reps, flush=flush)
            times, errs = [], []
            for c in configs:
                set_path(*CONFIGS[c])
                fn = lambda: wo_gemm(x, qw.qweight, qw.scales, zeros=qw.zeros, bits=args.bits, group_size=gs)
                try:
                    errs.append(rel_error(fn(), ref))
                    times.append(time_cuda(fn, reps=args.reps, flush=flush))
                except RuntimeError as e:
                    print(f"  {c} M={m}: {str(e).splitlines()[0]}", file=sys.stderr)
                    errs.append(float("nan"))
                    times.append(float("nan"))
            set_path("auto", None)
            row = [shape, str(m), f"{t_cublas:.4f}"]
            row += [f"{t:.4f} ({e:.0e})" for t, e in zip(times, errs)]
            row += [f"{t_cublas / t:.2f}x" for t in times]
            lines.append("| " + " | ".join(row) + " |")
            print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"{torch.cuda.get_device_name()}, int{args.bits} g{gs}, bf16, ms (rel err), medians of "
                    f"{args.reps}, L2 flushed\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
