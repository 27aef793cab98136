"""`slimops bench gemm`: the weight-only GEMM against what a user would run
instead: on CUDA cuBLAS bf16 (F.linear); on CPU F.linear in float32 and
bfloat16 and torch's own int8 weight-only kernel (_weight_int8pack_mm)."""

import argparse

import torch
import torch.nn.functional as F

from ..formats.int8 import dequantize_int8, quantize_int8
from ..ops import wo_gemm
from ..testing import randn_with_outliers, rel_error
from .runner import Impl, Problem, register_family

# design.md: Llama-class layers, K x N.
CUDA_SHAPES = "4096x4096,4096x14336,14336x4096,8192x8192,8192x28672"
CUDA_MS = "1,4,16,64,256,1024,4096"
CPU_SHAPES = "8192x8192"
CPU_MS = "1,16,64"


def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("--bits", type=int, default=8, choices=[8], help="weight bits (int4 arrives with its own issue)")
    p.add_argument("--group-size", type=int, default=-1, help="-1: one scale per output channel")
    p.add_argument("--shapes", default=None, help=f"K x N list (default cuda: {CUDA_SHAPES}; cpu: {CPU_SHAPES})")
    p.add_argument("--m", default=None, help=f"rows of x (default cuda: {CUDA_MS}; cpu: {CPU_MS})")


def _parse_shapes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        k, n = item.lower().split("x")
        out.append((int(k), int(n)))
    return out


def _verify(x, q, s, gs) -> float:
    ref = F.linear(x.float(), dequantize_int8(q, s, gs))
    return rel_error(wo_gemm(x, q, s, group_size=gs), ref)


def build_problems(args) -> tuple[str, list[Problem]]:
    cuda = args.device == "cuda"
    shapes = _parse_shapes(args.shapes or (CUDA_SHAPES if cuda else CPU_SHAPES))
    ms = [int(m) for m in (args.m or (CUDA_MS if cuda else CPU_MS)).split(",")]
    gs = args.group_size
    dev = torch.device(args.device)
    gen = torch.Generator(device=dev).manual_seed(0)
    problems = []
    for k, n in shapes:
        w = randn_with_outliers(n, k, device=dev, generator=gen) * 0.02
        q, s = quantize_int8(w, gs)
        groups = s.shape[1]
        w_bf16 = w.to(torch.bfloat16)
        w_f32 = None if cuda else w
        # torch's int8 kernel takes per-channel scales in x's dtype only.
        s_int8pack = s[:, 0].to(torch.bfloat16).contiguous() if groups == 1 else None
        for m in ms:
            x = randn_with_outliers(m, k, device=dev, generator=gen)
            x_bf16 = x.to(torch.bfloat16)
            impls = []
            if cuda:
                impls.append(Impl("cuBLAS bf16", lambda x=x_bf16, w=w_bf16: F.linear(x, w)))
                impls.append(Impl("slimops int8", lambda x=x_bf16, q=q, s=s: wo_gemm(x, q, s, group_size=gs), ours=True))
            else:
                impls.append(Impl("torch fp32", lambda x=x, w=w_f32: F.linear(x, w)))
                impls.append(Impl("torch bf16", lambda x=x_bf16, w=w_bf16: F.linear(x, w)))
                if s_int8pack is not None:
                    impls.append(Impl("torch int8pack bf16", lambda x=x_bf16, q=q, s8=s_int8pack: torch._weight_int8pack_mm(x, q, s8)))
                impls.append(Impl("slimops int8 fp32-x", lambda x=x, q=q, s=s: wo_gemm(x, q, s, group_size=gs), ours=True))
                impls.append(Impl("slimops int8 bf16-x", lambda x=x_bf16, q=q, s=s: wo_gemm(x, q, s, group_size=gs), ours=True))
            act_bytes = 2 if cuda else 4
            bytes_moved = n * k + 4 * n * groups + m * k * act_bytes + m * n * act_bytes
            problems.append(
                Problem({"K x N": f"{k}x{n}", "M": m}, impls, bytes_moved, lambda x=x_bf16, q=q, s=s: _verify(x, q, s, gs))
            )
    g = "per-channel" if gs == -1 else f"g{gs}"
    return f"int{args.bits} weight-only GEMM ({g}), {args.device}", problems


register_family("gemm", add_arguments, build_problems)
