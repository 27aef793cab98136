"""QuantLinear: an nn.Linear replacement with weight-only quantised weights."""

import torch
from torch import nn

from ..formats.awq import convert_awq
from ..formats.checkpoint import FLOAT_DTYPES, ImportedWeight, check_device, check_shape, check_tensor
from ..formats.gptq import convert_gptq
from ..formats.quantize import dequantize, num_groups, quantize
from ..ops import wo_gemm, wo_gemm_lowrank
from ._float32_buffers import apply_keeping_float32
from .factorize import low_rank_factors
from .lowrank_linear import asvd_input_scale

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
        lowrank_rank: int = 0,
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
        # Low-rank correction of the quantisation error: W ~ dequant(Wq) + lr_a @ lr_b.
        if isinstance(lowrank_rank, bool) or not isinstance(lowrank_rank, int) or lowrank_rank < 0:
            raise ValueError(f"QuantLinear: lowrank_rank must be an int >= 0, got {lowrank_rank!r}")
        self.lowrank_rank = lowrank_rank
        kw = {"dtype": dtype, "device": device}
        self.register_buffer("lr_a", torch.zeros(out_features, lowrank_rank, **kw) if lowrank_rank else None)
        self.register_buffer("lr_b", torch.zeros(lowrank_rank, in_features, **kw) if lowrank_rank else None)

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        bits: int = 8,
        group_size: int = -1,
        symmetric: bool = True,
        *,
        lowrank_rank: int = 0,
        calib: torch.Tensor | None = None,
    ) -> "QuantLinear":
        """Quantise ``linear``'s weight (round to nearest) into a new QuantLinear.

        ``lowrank_rank=r > 0`` adds a rank-r correction ``lr_a [N, r] @ lr_b [r, K]``
        fitted to the quantisation error ``W - dequant(Wq)`` by truncated SVD;
        with ``calib`` (activations ``[..., K]`` or the statistic ``mean |x_k|``
        ``[K]``) the fit weighs input channels by their activation size, as
        ASVD does, so the error is cut where the inputs are large.
        """
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"QuantLinear.from_linear expects an nn.Linear, got {type(linear).__name__}")
        w = linear.weight
        if lowrank_rank > min(w.shape):
            raise ValueError(f"QuantLinear.from_linear: lowrank_rank must be <= min(N, K) = {min(w.shape)}, got {lowrank_rank}")
        if calib is not None and not lowrank_rank:
            raise ValueError("QuantLinear.from_linear: calib is only used to fit a low-rank correction (lowrank_rank > 0)")
        layer = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            bits=bits,
            group_size=group_size,
            symmetric=symmetric,
            lowrank_rank=lowrank_rank,
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
        if lowrank_rank:
            err = w.detach().double() - dequantize(qw.qweight, qw.scales, qw.zeros, bits, group_size).double()
            scale = None
            if calib is not None:
                scale = asvd_input_scale(calib, w.shape[1], 0.5, w.device, torch.float64)
            a, b = low_rank_factors(err, lowrank_rank, scale)
            layer.lr_a.copy_(a)
            layer.lr_b.copy_(b)
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

    def _apply(self, fn, recurse=True):
        # .to(dtype) casts the weights' float companions (bias, lr_a/lr_b), never the scales.
        return apply_keeping_float32(self, fn, recurse, ("scales", "zeros"), super()._apply)

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
        if self.perm is not None:
            w = torch.empty_like(w).index_copy_(1, self.perm, w)
        if self.lr_a is not None:
            w = w + self.lr_a.float() @ self.lr_b.float()
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = x if self.perm is None else x.index_select(-1, self.perm)
        kw = dict(zeros=self.zeros, bits=self.bits, group_size=self.group_size)
        if self.lr_a is None:
            return wo_gemm(xq, self.qweight, self.scales, self.bias, **kw)
        # One op: on CUDA at small M, one kernel (the correction joins the GEMM's split-K sum).
        # It sees xq, so lr_b's columns follow the same permutation.
        lr_b = self.lr_b if self.perm is None else self.lr_b.index_select(1, self.perm)
        return wo_gemm_lowrank(xq, self.qweight, self.scales, self.lr_a.to(x.dtype), lr_b.to(x.dtype), self.bias, **kw)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"bits={self.bits}, group_size={self.group_size}, symmetric={self.symmetric}, "
            f"act_order={self.perm is not None}" + (f", lowrank_rank={self.lowrank_rank}" if self.lowrank_rank else "")
        )
