"""QuantLinear: an nn.Linear replacement with weight-only quantised weights."""

import torch
from torch import nn

from ..formats.int8 import dequantize_int8, quantize_int8
from ..ops import wo_gemm

SUPPORTED_BITS = (8,)


class QuantLinear(nn.Module):
    """``y = x @ dequant(qweight)^T + bias`` on the slimops weight-only GEMM.

    The quantised weight, scales and bias are buffers: they move with
    ``.to()`` and round-trip through ``state_dict()``; nothing here trains
    the weight (gradients do flow to the input).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        bits: int = 8,
        group_size: int = -1,
        device=None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if bits not in SUPPORTED_BITS:
            raise ValueError(f"QuantLinear: bits must be one of {SUPPORTED_BITS}, got {bits}")
        if group_size != -1 and (group_size <= 0 or in_features % group_size != 0):
            raise ValueError(
                f"QuantLinear: group_size must be -1 (per channel) or divide in_features={in_features}, "
                f"got {group_size}"
            )
        self.in_features = in_features
        self.out_features = out_features
        self.bits = bits
        self.group_size = group_size
        groups = 1 if group_size == -1 else in_features // group_size
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8, device=device))
        self.register_buffer("scales", torch.ones(out_features, groups, dtype=torch.float32, device=device))
        self.register_buffer("bias", torch.zeros(out_features, dtype=dtype, device=device) if bias else None)

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: int = 8, group_size: int = -1) -> "QuantLinear":
        """Quantise ``linear``'s weight (round to nearest, symmetric) into a new QuantLinear."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"QuantLinear.from_linear expects an nn.Linear, got {type(linear).__name__}")
        w = linear.weight
        layer = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            bits=bits,
            group_size=group_size,
            device=w.device,
            dtype=w.dtype,
        )
        qweight, scales = quantize_int8(w, group_size)
        layer.qweight.copy_(qweight)
        layer.scales.copy_(scales)
        if linear.bias is not None:
            layer.bias.copy_(linear.bias.detach())
        return layer

    def dequantize(self) -> torch.Tensor:
        """The float32 ``[out_features, in_features]`` weight the kernel effectively uses."""
        return dequantize_int8(self.qweight, self.scales, self.group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return wo_gemm(x, self.qweight, self.scales, self.bias, bits=self.bits, group_size=self.group_size)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, bits={self.bits}, group_size={self.group_size}"
        )
