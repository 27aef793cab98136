#!/usr/bin/env python3
"""Every CUDA 2:4 sparse matmul path at every M, in one process, against
cuBLAS bf16 and torch's cuSPARSELt: the measurements behind the binding's
dispatch (csrc/torch/sparse24_cuda.cpp) and the wgmma token tile.

Paths are switched per call through SLIMOPS_CUDA_SPARSE24 and
SLIMOPS_S24_WGMMA_BT, which the library reads on every call. Prints a
markdown table (ms, medians, L2 flushed; rel err against float32) and writes
it to --out if given.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

from slimops.bench.timing import L2Flusher, time_cuda
from slimops.formats import sparse24, sparse24_cuda
from slimops.ops import sparse24_gemm
from slimops.testing import randn_with_outliers, rel_error

# name: (SLIMOPS_CUDA_SPARSE24, SLIMOPS_S24_WGMMA_BT, SLIMOPS_S24_WGMMA_CLUSTER)
CONFIGS = {
    "mma": ("mma", None, None),
    "dense": ("dense", None, None),
    "wg64c1": ("wgmma", "64", "1"),
    "wg128c1": ("wgmma", "128", "1"),
    "wg256c1": ("wgmma", "256", "1"),
    "wg256c2": ("wgmma", "256", "2"),
    "wg256c4": ("wgmma", "256", "4"),
    "auto": ("auto", None, None),
}


def set_path(path, bt, cluster):
    os.environ["SLIMOPS_CUDA_SPARSE24"] = path
    for name, value in (("SLIMOPS_S24_WGMMA_BT", bt), ("SLIMOPS_S24_WGMMA_CLUSTER", cluster)):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def cusparselt(w):
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    SparseSemiStructuredTensor._FORCE_CUTLASS = False
    try:
        return to_sparse_semi_structured(w)
    except (RuntimeError, ValueError, NotImplementedError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="8192x8192,8192x28672,4096x14336")
    ap.add_argument("--m", default="16,64,128,256,512,1024,4096")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    configs = args.configs.split(",")
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    flush = L2Flusher(dev)
    head = ["K x N", "M", "cuBLAS", "cuSPARSELt"] + configs + ["cuSPARSELt x"] + [f"{c} x" for c in configs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    print(torch.cuda.get_device_name(), "2:4 bf16", flush=True)
    print(lines[0], flush=True)
    for shape in args.shapes.split(","):
        k, n = (int(v) for v in shape.split("x"))
        w = sparse24.prune_2_4(randn_with_outliers(n, k, device=dev, generator=gen) * k**-0.5)[0].to(torch.bfloat16)
        c = sparse24.compress(w)
        values, meta = sparse24_cuda.to_cuda_layout(c.values, c.meta, 16)
        w_lt = cusparselt(w)
        for m in (int(v) for v in args.m.split(",")):
            x = randn_with_outliers(m, k, device=dev, generator=gen).to(torch.bfloat16)
            ref = F.linear(x.float(), w.float())
            t_cublas = time_cuda(lambda: F.linear(x, w), reps=args.reps, flush=flush)
            t_lt = float("nan") if w_lt is None else time_cuda(lambda: F.linear(x, w_lt), reps=args.reps, flush=flush)
            times, errs = [], []
            for cfg in configs:
                set_path(*CONFIGS[cfg])
                fn = lambda: sparse24_gemm(x, values, meta, bits=16, layout=1)  # noqa: E731
                try:
                    errs.append(rel_error(fn(), ref))
                    times.append(time_cuda(fn, reps=args.reps, flush=flush))
                except RuntimeError as e:
                    print(f"  {cfg} M={m}: {str(e).splitlines()[0]}", file=sys.stderr)
                    errs.append(float("nan"))
                    times.append(float("nan"))
            set_path("auto", None, None)
            row = [shape, str(m), f"{t_cublas:.4f}", f"{t_lt:.4f}"]
            row += [f"{t:.4f} ({e:.0e})" for t, e in zip(times, errs)]
            row += [f"{t_cublas / t_lt:.2f}x"] + [f"{t_cublas / t:.2f}x" for t in times]
            lines.append("| " + " | ".join(row) + " |")
            print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"{torch.cuda.get_device_name()}, 2:4 bf16, ms (rel err), x = speedup over cuBLAS bf16, medians of "
                    f"{args.reps}, L2 flushed\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
