"""`slimops bench lowrank`: the fused low-rank projection (x @ V^T) @ U^T
against what a user would run instead: torch's two matmuls
F.linear(F.linear(x, V), U), and the dense layer F.linear(x, U @ V) it
replaces (which it must beat for the factorisation to pay off in time)."""

import argparse

import torch
import torch.nn.functional as F

from ..ops import lowrank_linear
from ..testing import randn_with_outliers, rel_error
from .runner import DTYPES, Impl, Problem, parse_dtypes, register_family

# design.md's 4096 and 8192 Llama layers, at a quarter of the rank
# N K / (N + K) where the factors stop saving parameters (25% kept).
CUDA_SHAPES = "4096x4096x512,8192x8192x1024"
CUDA_MS = "1,16,64,256"
CUDA_DTYPES = "bf16"
CPU_SHAPES = "4096x4096x512"
CPU_MS = "1,16,64"
CPU_DTYPES = "fp32,bf16"



def _parse_shapes(text: str) -> list[tuple[int, int, int]]:
    # A type= for argparse: a malformed list fails at parse time with usage.
    out = []
    for item in text.split(","):
        try:
            k, n, r = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"shapes are KxNxr, e.g. 4096x4096x512; got {item!r}") from None
        if min(k, n, r) < 1:
            raise argparse.ArgumentTypeError(f"K, N and r must be positive, got {item!r}")
        out.append((k, n, r))
    return out



def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("--shapes", type=_parse_shapes, default=None, help=f"K x N x r list (default cuda: {CUDA_SHAPES}; cpu: {CPU_SHAPES})")
    p.add_argument("--m", default=None, help=f"rows of x (default cuda: {CUDA_MS}; cpu: {CPU_MS})")
    p.add_argument("--dtype", type=parse_dtypes, default=None, help=f"dtypes of x, V, U (default cuda: {CUDA_DTYPES}; cpu: {CPU_DTYPES})")


def _verify(x, v, u) -> float:
    # Float64 ground truth from the very inputs the timed closures use.
    ref = (x.double() @ v.double().T) @ u.double().T
    return rel_error(lowrank_linear(x, v, u), ref)


def build_problems(args) -> tuple[str, list[Problem]]:
    cuda = args.device == "cuda"
    shapes = args.shapes or _parse_shapes(CUDA_SHAPES if cuda else CPU_SHAPES)
    ms = [int(m) for m in (args.m or (CUDA_MS if cuda else CPU_MS)).split(",")]
    dtypes = args.dtype or parse_dtypes(CUDA_DTYPES if cuda else CPU_DTYPES)
    dev = torch.device(args.device)
    gen = torch.Generator(device=dev).manual_seed(0)
    problems = []
    for k, n, r in shapes:
        # Scaled so each matmul keeps values O(1): no bf16/fp16 overflow, and
        # a rel err that means the same at every shape.
        v32 = randn_with_outliers(r, k, device=dev, generator=gen) * k**-0.5
        u32 = randn_with_outliers(n, r, device=dev, generator=gen) * r**-0.5
        w32 = u32 @ v32
        for dname in dtypes:
            dt = DTYPES[dname]
            v, u, w = v32.to(dt), u32.to(dt), w32.to(dt)
            es = v.element_size()
            for m in ms:
                x = randn_with_outliers(m, k, dtype=dt, device=dev, generator=gen)
                impls = [
                    Impl("torch 2 matmuls", lambda x=x, v=v, u=u: F.linear(F.linear(x, v), u)),
                    Impl("torch dense", lambda x=x, w=w: F.linear(x, w)),
                    Impl("slimops lowrank", lambda x=x, v=v, u=u: lowrank_linear(x, v, u), ours=True),
                ]
                # Both factors and x read once, y written once; the [M, r]
                # intermediate never leaves the chip.
                bytes_moved = (r * k + n * r + m * k + m * n) * es
                label = {"K x N x r": f"{k}x{n}x{r}", "dtype": dname, "M": m}
                problems.append(Problem(label, impls, bytes_moved, lambda x=x, v=v, u=u: _verify(x, v, u)))
    return f"low-rank projection (x @ V^T) @ U^T, {args.device}", problems


register_family("lowrank", add_arguments, build_problems)
