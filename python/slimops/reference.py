"""Plain-PyTorch references of every slimops op: the ground truth of the tests.

Each computes in float32 from the dequantised weights and returns the op's
output dtype, so a test compares the kernel against exactly the function it
claims to compute.
"""

import torch

from .formats.int8 import dequantize_int8


def wo_gemm(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    bias: torch.Tensor | None = None,
    bits: int = 8,
    group_size: int = -1,
) -> torch.Tensor:
    """``x @ dequant(qweight)^T + bias`` in float32, returned in x's dtype."""
    if bits != 8:
        raise ValueError(f"reference.wo_gemm: bits must be 8, got {bits}")
    w = dequantize_int8(qweight, scales, group_size)
    b = None if bias is None else bias.to(torch.float32)
    return torch.nn.functional.linear(x.to(torch.float32), w, b).to(x.dtype)
