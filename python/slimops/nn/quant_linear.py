"""QuantLinear: an nn.Linear replacement with weight-only quantised weights."""

import torch
from torch import nn

from ..formats.awq import convert_awq
from ..formats.checkpoint import FLOAT_DTYPES, ImportedWeight, check_device, check_shape, check_tensor
from ..formats.gptq import convert_gptq
from ..formats.quantize import dequantize, num_groups, quantize
from ..ops import wo_gemm

SUPPORTED_BITS = (4, 8)


class QuantLinear(nn.Module):
    """``y = x @ dequant(qweight)^T + bias`` on the slimops weight-only GEMM.

    The quantised weight, scales, zero points and bias are buffers: they move
    with ``.to()`` and round-trip through ``state_dict()``; nothing here trains
    the weight (gradients do flow to the input). Layouts: :mod:`slimops.formats`.

    ``act_order=True`` adds the buffer ``perm`` (int64 ``[in_features]``) of
    layers imported from act-order GPTQ checkpoints: packed weight column ``j``
    multiplies input feature ``perm[j]``, so ``forward`` gathers ``x`` by it
    first. Loading a state_dict that has ``perm`` into a layer built without
    it adopts the permutation.
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
        act_order: bool = False,
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
        perm = torch.arange(in_features, dtype=torch.int64, device=device) if act_order else None
        self.register_buffer("perm", perm)

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

    @classmethod
    def from_gptq(cls, qweight, qzeros, scales, g_idx, bits: int, group_size: int, bias=None) -> "QuantLinear":
        """A layer from AutoGPTQ tensors (layout: :mod:`slimops.formats.gptq`);
        ``g_idx`` may be None (no act-order), ``group_size=-1`` is per channel."""
        imported = convert_gptq(qweight, qzeros, scales, g_idx, bits, group_size)
        return cls._from_imported(imported, bits, group_size, bias, "GPTQ import")

    @classmethod
    def from_awq(cls, qweight, qzeros, scales, bits: int, group_size: int, bias=None) -> "QuantLinear":
        """A layer from AutoAWQ GEMM-format tensors (layout: :mod:`slimops.formats.awq`)."""
        imported = convert_awq(qweight, qzeros, scales, bits, group_size)
        return cls._from_imported(imported, bits, group_size, bias, "AWQ import")

    @classmethod
    def _from_imported(cls, w: ImportedWeight, bits: int, group_size: int, bias, who: str) -> "QuantLinear":
        n, k = w.qweight.shape[0], w.qweight.shape[1] * (1 if bits == 8 else 2)
        if bias is not None:
            check_tensor(who, "bias", bias, FLOAT_DTYPES, 1, "[N]")
            check_shape(who, "bias", bias, (n,), "[N]")
            check_device(who, "bias", bias, w.qweight.device)
        layer = cls(
            k,
            n,
            bias=bias is not None,
            bits=bits,
            group_size=group_size,
            symmetric=w.zeros is None,
            act_order=w.perm is not None,
            device=w.qweight.device,
            # Checkpoints keep bias in their activation dtype (fp16 mostly); keep it as is.
            dtype=torch.float32 if bias is None else bias.dtype,
        )
        buffers = {"qweight": w.qweight, "scales": w.scales, "zeros": w.zeros, "perm": w.perm, "bias": bias}
        for name, t in buffers.items():
            if t is not None:
                getattr(layer, name).copy_(t.detach())
        return layer

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The permutation is data of the checkpoint, not configuration: a layer
        # built without act_order (say, from a model config) still loads it.
        if self.perm is None and prefix + "perm" in state_dict:
            self.perm = torch.empty(self.in_features, dtype=torch.int64, device=self.qweight.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def dequantize(self) -> torch.Tensor:
        """The float32 ``[out_features, in_features]`` weight the kernel effectively
        uses, in the input features' own order (``perm`` undone)."""
        w = dequantize(self.qweight, self.scales, self.zeros, self.bits, self.group_size)
        if self.perm is None:
            return w
        return torch.empty_like(w).index_copy_(1, self.perm, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.perm is not None:
            x = x.index_select(-1, self.perm)
        return wo_gemm(
            x, self.qweight, self.scales, self.bias, zeros=self.zeros, bits=self.bits, group_size=self.group_size
        )

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"bits={self.bits}, group_size={self.group_size}, symmetric={self.symmetric}, "
            f"act_order={self.perm is not None}"
        )
