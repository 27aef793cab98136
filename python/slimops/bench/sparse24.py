"""`slimops bench sparse24`: the 2:4 sparse matmul against what a user would
run instead: cuBLAS dense bf16 (F.linear) and torch's own 2:4 path
(to_sparse_semi_structured, its cuSPARSELt and CUTLASS backends) on CUDA;
torch dense float32 and bfloat16 on the CPU. int4 + 2:4 rows (CUDA) stand
against cuBLAS bf16 alone.

Weights are random with outliers, pruned to 2:4 by magnitude; every peer
multiplies by the very same pruned weight.
"""

import argparse

import torch
import torch.nn.functional as F

from ..nn.sparse24_linear import Sparse24Linear
from ..testing import randn_with_outliers, rel_error
from .runner import DTYPES, Impl, Problem, parse_dtypes, register_family

CUDA_SHAPES = "8192x8192,8192x28672,4096x14336"
CUDA_MS = "1,4,16,64,256,1024,4096"
CPU_SHAPES = "8192x8192"
CPU_MS = "1,16"


def _parse_shapes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        try:
            k, n = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"shapes are KxN, e.g. 8192x8192; got {item!r}") from None
        out.append((k, n))
    return out


def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("--shapes", type=_parse_shapes, default=None, help=f"K x N list (default cuda: {CUDA_SHAPES}; cpu: {CPU_SHAPES})")
    p.add_argument("--m", default=None, help=f"rows of x (default cuda: {CUDA_MS}; cpu: {CPU_MS})")
    p.add_argument("--no-int4", action="store_true", help="skip the int4 + 2:4 rows (CUDA)")


def _torch_semi_structured(w: torch.Tensor, cutlass: bool):
    """torch's 2:4 weight with the given backend, or None where it does not run."""
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    before = SparseSemiStructuredTensor._FORCE_CUTLASS
    try:
        SparseSemiStructuredTensor._FORCE_CUTLASS = cutlass
        return to_sparse_semi_structured(w)
    except (RuntimeError, ValueError, NotImplementedError):
        return None
    finally:
        SparseSemiStructuredTensor._FORCE_CUTLASS = before


def _runs(fn) -> bool:
    try:
        fn()
        return True
    except (RuntimeError, ValueError, NotImplementedError):
        return False


def build_problems(args) -> tuple[str, list[Problem]]:
    cuda = args.device == "cuda"
    dev = torch.device(args.device)
    shapes = args.shapes or _parse_shapes(CUDA_SHAPES if cuda else CPU_SHAPES)
    ms = [int(m) for m in (args.m or (CUDA_MS if cuda else CPU_MS)).split(",")]
    gen = torch.Generator(device=dev).manual_seed(0)
    problems = []
    for k, n in shapes:
        lin = torch.nn.Linear(k, n, bias=False, device=dev)
        with torch.no_grad():
            lin.weight.copy_(randn_with_outliers(n, k, device=dev, generator=gen) * k**-0.5)
        if cuda:
            lin = lin.to(torch.bfloat16)
            ours = Sparse24Linear.from_linear(lin)
            ours4 = None if args.no_int4 else Sparse24Linear.from_linear(lin, bits=4, group_size=128)
            w = ours.dequantize()  # the pruned dense weight every peer uses
            ws = {"cuSPARSELt": _torch_semi_structured(w, False), "CUTLASS": _torch_semi_structured(w, True)}
            for m in ms:
                x = randn_with_outliers(m, k, dtype=torch.bfloat16, device=dev, generator=gen)
                impls = [Impl("cuBLAS bf16", lambda x=x, w=w: F.linear(x, w))]
                for name, wsp in ws.items():
                    if wsp is not None and _runs(lambda x=x, wsp=wsp: F.linear(x, wsp)):
                        impls.append(Impl(f"torch 2:4 {name}", lambda x=x, wsp=wsp: F.linear(x, wsp)))
                impls.append(Impl("slimops 2:4", lambda x=x, ours=ours: ours(x), ours=True))
                verify = lambda x=x, w=w, ours=ours: rel_error(ours(x), F.linear(x.float(), w.float()))  # noqa: E731
                # Kept values (bf16) and 2-bit positions: 9/16 of the dense bytes.
                problems.append(Problem({"K x N": f"{k}x{n}", "weights": "2:4 bf16", "M": m}, impls, n * k * 9 // 8 + 2 * m * (k + n), verify))
                if ours4 is not None:
                    w4 = ours4.dequantize()
                    impls4 = [Impl("cuBLAS bf16", lambda x=x, w=w: F.linear(x, w)), Impl("slimops int4+2:4", lambda x=x, ours4=ours4: ours4(x), ours=True)]
                    verify4 = lambda x=x, w4=w4, ours4=ours4: rel_error(ours4(x), F.linear(x.float(), w4.float()))  # noqa: E731
                    # int4 kept values, positions, fp32 scales per 128: ~0.41 bytes per weight.
                    problems.append(Problem({"K x N": f"{k}x{n}", "weights": "int4+2:4", "M": m}, impls4,
                                            n * k // 4 + n * k // 8 + n * (k // 128) * 4 + 2 * m * (k + n), verify4))
        else:
            for dname in ("fp32", "bf16"):
                dt = DTYPES[dname]
                layer = Sparse24Linear.from_linear(lin.to(dt))
                w = layer.dequantize()
                w32, w16 = w.float(), w.to(torch.bfloat16)
                es = torch.finfo(dt).bits // 8
                for m in ms:
                    x = randn_with_outliers(m, k, dtype=dt, generator=gen)
                    x32, x16 = x.float(), x.to(torch.bfloat16)
                    impls = [
                        Impl("torch dense fp32", lambda x32=x32, w32=w32: F.linear(x32, w32)),
                        Impl("torch dense bf16", lambda x16=x16, w16=w16: F.linear(x16, w16)),
                        Impl(f"slimops 2:4 {dname}", lambda x=x, layer=layer: layer(x), ours=True),
                    ]
                    verify = lambda x=x, w=w, layer=layer: rel_error(layer(x), F.linear(x.float(), w.float()))  # noqa: E731
                    problems.append(Problem({"K x N": f"{k}x{n}", "weights": f"2:4 {dname}", "M": m}, impls,
                                            n * k // 2 * es + n * k // 8 + m * (k + n) * es, verify))
    return f"2:4 sparse matmul x @ W^T, {args.device}", problems


register_family("sparse24", add_arguments, build_problems)
