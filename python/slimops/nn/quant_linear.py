"""QuantLinear: an nn.Linear replacement with weight-only quantised weights."""

import torch
from torch import nn

from ..formats.quantize import dequantize, num_groups, quantize
from ..ops import wo_gemm

SUPPORTED_BITS = (4, 8)


class QuantLinear(nn.Module):
    """``y = x @ dequant(qweight)^T + bias`` on the slimops weight-only GEMM.

    The quantised weight, scales, zero points and bias are buffers: they move
    with ``.to()`` and round-trip through ``state_dict()``; nothing here trains
    the weight (gradients do flow to the input). Layouts: :mod:`slimops.formats`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        bits: int = 8,
        group_size: int = -1,
        symmetric: bool = True,
        device=None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if bits not in SUPPORTED_BITS:
            raise ValueError(f"QuantLinear: bits must be one of {SUPPORTED_BITS}, got {bits}")
        try:
            groups = num_groups(in_features, group_size, bits)
        except ValueError as e:
            raise ValueError(f"QuantLinear(in_features={in_features}, bits={bits}): {e}") from None
        self.in_features = in_features
        self.out_features = out_features
        self.bits = bits
        self.group_size = group_size
        self.symmetric = symmetric
        if bits == 8:
            qweight = torch.zeros(out_features, in_features, dtype=torch.int8, device=device)
        else:
            qweight = torch.zeros(out_features, in_features // 2, dtype=torch.uint8, device=device)
        self.register_buffer("qweight", qweight)
        self.register_buffer("scales", torch.ones(out_features, groups, dtype=torch.float32, device=device))
        zeros = None if symmetric else torch.zeros(out_features, groups, dtype=torch.float32, device=device)
        self.register_buffer("zeros", zeros)
        self.register_buffer("bias", torch.zeros(out_features, dtype=dtype, device=device) if bias else None)

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, bits: int = 8, group_size: int = -1, symmetric: bool = True
    ) -> "QuantLinear":
        """Quantise ``linear``'s weight (round to nearest) into a new QuantLinear."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"QuantLinear.from_linear expects an nn.Linear, got {type(linear).__name__}")
        w = linear.weight
        layer = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            bits=bits,
            group_size=group_size,
            symmetric=symmetric,
            device=w.device,
            dtype=w.dtype,
        )
        qw = quantize(w, bits=bits, group_size=group_size, symmetric=symmetric)
        layer.qweight.copy_(qw.qweight)
        layer.scales.copy_(qw.scales)
        if qw.zeros is not None:
            layer.zeros.copy_(qw.zeros)
        if linear.bias is not None:
            layer.bias.copy_(linear.bias.detach())
        return layer

    def dequantize(self) -> torch.Tensor:
        """The float32 ``[out_features, in_features]`` weight the kernel effectively uses."""
        return dequantize(self.qweight, self.scales, self.zeros, self.bits, self.group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return wo_gemm(
            x, self.qweight, self.scales, self.bias, zeros=self.zeros, bits=self.bits, group_size=self.group_size
        )

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"bits={self.bits}, group_size={self.group_size}, symmetric={self.symmetric}"
        )
