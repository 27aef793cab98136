"""`slimops bench int4-lr`: int4 with a low-rank correction of its error
(QuantLinear(lowrank_rank=r), slimops.wo_gemm_lowrank) against the same int4
GEMM without the correction (the price of the correction is the ratio), the
two-op form (wo_gemm, then lowrank_linear, added: what the fused kernel
replaces) and what torch offers: tinygemm int4 plus two matmuls."""

import argparse

import torch
import torch.nn.functional as F

from ..formats.quantize import quantize
from ..ops import lowrank_linear, wo_gemm, wo_gemm_lowrank
from ..reference import wo_gemm_lowrank as reference
from ..testing import randn_with_outliers, rel_error
from .gemm import _tinygemm_int4
from .lowrank import _parse_shapes  # K x N x r lists
from .runner import Impl, Problem, register_family

# The shape (an 8192 Llama layer, g128, r = 64) and a 4096 one.
CUDA_SHAPES = "8192x8192x64,4096x4096x64"
CUDA_MS = "1,4,16"
CPU_SHAPES = "4096x4096x64"
CPU_MS = "1,16"
GROUP_SIZE = 128


def add_arguments(p: argparse.ArgumentParser):
    p.add_argument(
        "--shapes", type=_parse_shapes, default=None, help=f"K x N x r list (default cuda: {CUDA_SHAPES}; cpu: {CPU_SHAPES})"
    )
    p.add_argument("--m", default=None, help=f"rows of x (default cuda: {CUDA_MS}; cpu: {CPU_MS})")


def build_problems(args) -> tuple[str, list[Problem]]:
    cuda = args.device == "cuda"
    shapes = args.shapes or _parse_shapes(CUDA_SHAPES if cuda else CPU_SHAPES)
    ms = [int(m) for m in (args.m or (CUDA_MS if cuda else CPU_MS)).split(",")]
    dev = torch.device(args.device)
    gen = torch.Generator(device=dev).manual_seed(0)
    dt = torch.bfloat16 if cuda else torch.float32
    problems = []
    for k, n, r in shapes:
        qw = quantize(randn_with_outliers(n, k, device=dev, generator=gen) * 0.02, 4, GROUP_SIZE, symmetric=True)
        # Factors of a fitted correction's size: a tenth of the weight.
        a = (randn_with_outliers(n, r, device=dev, generator=gen) * 0.002 * r**-0.5).to(dt)
        b = randn_with_outliers(r, k, device=dev, generator=gen).to(dt)
        a_bf16, b_bf16 = a.to(torch.bfloat16), b.to(torch.bfloat16)
        q, s = qw.qweight, qw.scales
        tinygemm = _tinygemm_int4(qw, GROUP_SIZE, cuda)
        # Default arguments bind this shape's weights and functions: the
        # closures run after the loop has moved on.

        def int4_alone(x, q=q, s=s):
            return wo_gemm(x, q, s, bits=4, group_size=GROUP_SIZE)

        def two_ops(x, q=q, s=s, a=a, b=b):
            return wo_gemm(x, q, s, bits=4, group_size=GROUP_SIZE) + lowrank_linear(x, b, a)

        def torch_peer(x, f=tinygemm, a=a_bf16, b=b_bf16):
            return f(x) + F.linear(F.linear(x, b), a)

        def fused(x, q=q, s=s, a=a, b=b):
            return wo_gemm_lowrank(x, q, s, a, b, bits=4, group_size=GROUP_SIZE)

        for m in ms:
            x = randn_with_outliers(m, k, device=dev, generator=gen).to(dt)
            impls = [Impl("slimops int4 alone", lambda x=x, f=int4_alone: f(x))]
            if cuda:  # on the CPU the op is these two ops
                impls.append(Impl("slimops 2 ops", lambda x=x, f=two_ops: f(x)))
            if tinygemm is not None:
                impls.append(Impl("torch tinygemm + 2 matmuls", lambda x=x.to(torch.bfloat16), f=torch_peer: f(x)))
            impls.append(Impl("slimops int4+lr", lambda x=x, f=fused: f(x), ours=True))
            es = x.element_size()
            bytes_moved = n * k // 2 + 4 * n * (k // GROUP_SIZE) + (n * r + r * k) * es + m * (k + n) * es
            verify = lambda x=x, q=q, s=s, a=a, b=b, f=fused: rel_error(  # noqa: E731
                f(x), reference(x, q, s, None, None, a, b, 4, GROUP_SIZE)
            )
            problems.append(Problem({"K x N x r": f"{k}x{n}x{r}", "M": m}, impls, bytes_moved, verify))
    return f"int4 g{GROUP_SIZE} + rank-r correction, {args.device}", problems


register_family("int4-lr", add_arguments, build_problems)
