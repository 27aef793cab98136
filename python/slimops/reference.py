"""Plain-PyTorch references of every slimops op: the ground truth of the tests.

Each computes in float32 from the dequantised weights and returns the op's
output dtype, so a test compares the kernel against exactly the function it
claims to compute.
"""

import torch

from .formats.quantize import dequantize


def wo_gemm(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    bits: int = 8,
    group_size: int = -1,
) -> torch.Tensor:
    """``x @ dequant(qweight)^T + bias`` in float32, returned in x's dtype."""
    w = dequantize(qweight.cpu(), scales.cpu(), None if zeros is None else zeros.cpu(), bits, group_size)
    b = None if bias is None else bias.to(torch.float32)
    return torch.nn.functional.linear(x.to(torch.float32), w.to(x.device), b).to(x.dtype)


def lowrank_linear(
    x: torch.Tensor, V: torch.Tensor, U: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``(x @ V^T) @ U^T + bias`` in float64 (the intermediate unrounded, as
    the fused kernels keep it in float32), returned in x's dtype."""
    t = x.to(torch.float64) @ V.to(torch.float64).T
    out = t @ U.to(torch.float64).T
    if bias is not None:
        out = out + bias.to(torch.float64)
    return out.to(x.dtype)
