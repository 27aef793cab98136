"""`slimops bench gemm`: the weight-only GEMM against what a user would run
instead: on CUDA cuBLAS bf16 (F.linear) and, for int4, torch's tinygemm
(_weight_int4pack_mm); on CPU F.linear in float32 and bfloat16 and torch's own
weight-only kernels (_weight_int8pack_mm, _weight_int4pack_mm_for_cpu)."""

import argparse

import torch
import torch.nn.functional as F

from ..formats.int4 import unpack_int4
from ..formats.quantize import dequantize, quantize
from ..ops import wo_gemm
from ..testing import randn_with_outliers, rel_error
from .runner import Impl, Problem, register_family

# design.md: Llama-class layers, K x N.
CUDA_SHAPES = "4096x4096,4096x14336,14336x4096,8192x8192,8192x28672"
CUDA_MS = "1,2,4,8,16,64,256,1024,4096"
CPU_SHAPES = "8192x8192"
CPU_MS = "1,16,64"


def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("--bits", type=int, default=8, choices=[4, 8], help="weight bits")
    p.add_argument("--group-size", type=int, default=None, help="-1: one scale per output channel (default: -1 for int8, 128 for int4)")
    p.add_argument("--shapes", default=None, help=f"K x N list (default cuda: {CUDA_SHAPES}; cpu: {CPU_SHAPES})")
    p.add_argument("--m", default=None, help=f"rows of x (default cuda: {CUDA_MS}; cpu: {CPU_MS})")


def _parse_shapes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        k, n = item.lower().split("x")
        out.append((int(k), int(n)))
    return out


def _verify(x, qw, bits, gs) -> float:
    ref = F.linear(x.float(), dequantize(qw.qweight, qw.scales, qw.zeros, bits, gs))
    return rel_error(wo_gemm(x, qw.qweight, qw.scales, zeros=qw.zeros, bits=bits, group_size=gs), ref)


def _tinygemm_int4(qw, gs, cuda: bool):
    """torch's int4 kernel on our symmetric int4 weights (its dequant is
    (q - 8) * scale + zero, so zero = 0 matches): a closure x -> y, or None
    where torch has no such kernel for this group size."""
    if gs not in (32, 64, 128, 256) or qw.zeros is not None:
        return None
    q = unpack_int4(qw.qweight).to(torch.int32)
    sz = torch.stack([qw.scales.t(), torch.zeros_like(qw.scales.t())], -1).to(torch.bfloat16).contiguous()
    if cuda:
        packed = torch._convert_weight_to_int4pack(((q[:, ::2] << 4) | q[:, 1::2]).to(torch.uint8), 8)
        return lambda x: torch._weight_int4pack_mm(x, packed, gs, sz)
    packed = torch._convert_weight_to_int4pack_for_cpu(q, 2)
    return lambda x: torch._weight_int4pack_mm_for_cpu(x, packed, gs, sz)


def build_problems(args) -> tuple[str, list[Problem]]:
    cuda = args.device == "cuda"
    shapes = _parse_shapes(args.shapes or (CUDA_SHAPES if cuda else CPU_SHAPES))
    ms = [int(m) for m in (args.m or (CUDA_MS if cuda else CPU_MS)).split(",")]
    bits = args.bits
    gs = args.group_size if args.group_size is not None else (-1 if bits == 8 else 128)
    dev = torch.device(args.device)
    gen = torch.Generator(device=dev).manual_seed(0)
    problems = []
    for k, n in shapes:
        w = randn_with_outliers(n, k, device=dev, generator=gen) * 0.02
        qw = quantize(w, bits, gs, symmetric=True)
        groups = qw.scales.shape[1]
        w_bf16 = w.to(torch.bfloat16)
        w_f32 = None if cuda else w
        peer_int = None
        if bits == 8 and groups == 1:
            # torch's int8 kernel takes per-channel scales in x's dtype only.
            s8 = qw.scales[:, 0].to(torch.bfloat16).contiguous()
            peer_int = ("torch int8pack bf16", lambda x, q=qw.qweight, s8=s8: torch._weight_int8pack_mm(x, q, s8))
        elif bits == 4:
            fn = _tinygemm_int4(qw, gs, cuda)
            peer_int = None if fn is None else ("torch int4 tinygemm bf16", fn)
        ours = lambda x, qw=qw: wo_gemm(x, qw.qweight, qw.scales, zeros=qw.zeros, bits=bits, group_size=gs)  # noqa: E731
        for m in ms:
            x = randn_with_outliers(m, k, device=dev, generator=gen)
            x_bf16 = x.to(torch.bfloat16)
            impls = []
            if cuda:
                impls.append(Impl("cuBLAS bf16", lambda x=x_bf16, w=w_bf16: F.linear(x, w)))
            else:
                impls.append(Impl("torch fp32", lambda x=x, w=w_f32: F.linear(x, w)))
                impls.append(Impl("torch bf16", lambda x=x_bf16, w=w_bf16: F.linear(x, w)))
            if peer_int is not None:
                impls.append(Impl(peer_int[0], lambda x=x_bf16, f=peer_int[1]: f(x)))
            if not cuda:
                impls.append(Impl(f"slimops int{bits} fp32-x", lambda x=x, f=ours: f(x), ours=True))
            impls.append(Impl(f"slimops int{bits} bf16-x" if not cuda else f"slimops int{bits}", lambda x=x_bf16, f=ours: f(x), ours=True))
            act_bytes = 2 if cuda else 4
            weight_bytes = n * k * bits // 8 + 4 * n * groups
            bytes_moved = weight_bytes + m * k * act_bytes + m * n * act_bytes
            problems.append(
                Problem({"K x N": f"{k}x{n}", "M": m}, impls, bytes_moved, lambda x=x_bf16, qw=qw: _verify(x, qw, bits, gs))
            )
    g = "per-channel" if gs == -1 else f"g{gs}"
    return f"int{args.bits} weight-only GEMM ({g}), {args.device}", problems


register_family("gemm", add_arguments, build_problems)
