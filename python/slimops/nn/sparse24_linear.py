"""Sparse24Linear: an nn.Linear replacement with a 2:4 sparse weight."""

import torch
from torch import nn

from ..formats import sparse24, sparse24_cuda
from ..ops import sparse24_gemm
from ._float32_buffers import apply_keeping_float32


def _cuda_kernel_takes(n: int, k: int, bits: int, dtype: torch.dtype) -> bool:
    return n % 16 == 0 and k % 64 == 0 and (bits == 4 or dtype in (torch.float16, torch.bfloat16))


class Sparse24Linear(nn.Module):
    """``y = x @ W^T + bias`` with W 2:4 sparse, on the slimops sparse kernels.

    Buffers (they move with ``.to()`` and round-trip through ``state_dict``):
    ``values`` (kept weights ``[N, K/2]`` in the layer's dtype, or packed int4
    ``[N, K/4]`` for ``bits=4`` with float32 ``scales`` per ``group_size``
    dense columns), ``meta`` (uint8 ``[N, K/8]``) and ``bias``. On a CUDA
    device the kept values and metadata are held in the CUDA kernel's order
    (:mod:`slimops.formats.sparse24_cuda`), on the CPU in the canonical one
    (:mod:`slimops.formats.sparse24`); ``.to()`` re-lays them out, and
    ``state_dict`` always holds the canonical order. On CUDA the kernel needs
    N % 16 == 0, K % 64 == 0 and fp16/bf16 (or int4) values; other layers
    stay canonical and run as a dense F.linear of the decompressed weight.
    Every M runs on the op: on Hopper its wgmma.sp kernel serves large M, so
    the layer keeps no second (cuSPARSELt) copy of the weight.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, bits: int = 16,
                 group_size: int = 128, device=None, dtype: torch.dtype = torch.float32):
        super().__init__()
        if bits not in (4, 16):
            raise ValueError(f"Sparse24Linear: bits must be 16 (values in the layer's dtype) or 4 (int4), got {bits}")
        if in_features % 8:
            raise ValueError(f"Sparse24Linear: in_features must be divisible by 8 for 2:4 metadata, got {in_features}")
        if bits == 4 and (group_size % 64 or in_features % group_size):
            raise ValueError(f"Sparse24Linear: int4 needs group_size a multiple of 64 dividing in_features={in_features}, got {group_size}")
        self.in_features, self.out_features = in_features, out_features
        self.bits, self.group_size, self.dtype = bits, group_size, dtype
        n, k = out_features, in_features
        values = (torch.zeros(n, k // 2, dtype=dtype, device=device) if bits == 16
                  else torch.zeros(n, k // 4, dtype=torch.uint8, device=device))
        self.register_buffer("values", values)
        # Positions 0 and 1 of every group (nibble 0b0100): a valid empty 2:4 weight.
        self.register_buffer("meta", torch.full((n, k // 8), 0x44, dtype=torch.uint8, device=device))
        self.register_buffer("scales", torch.ones(n, k // group_size, dtype=torch.float32, device=device) if bits == 4 else None)
        self.register_buffer("bias", torch.zeros(n, dtype=dtype, device=device) if bias else None)
        self.cuda_layout = False
        self._sync_layout()

    @classmethod
    def from_linear(cls, linear: nn.Linear, prune: bool = True, *, bits: int = 16, group_size: int = 128,
                    scores: torch.Tensor | None = None) -> "Sparse24Linear":
        """A layer from ``linear``: its weight pruned to 2:4 by magnitude (or by
        ``scores``, e.g. Wanda's |W| * ||x||) when ``prune``; with
        ``prune=False`` a weight that is not already 2:4 is an error.
        ``bits=4`` quantises the kept values to int4 (RTN, symmetric, scales per
        ``group_size`` dense columns)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"Sparse24Linear.from_linear expects an nn.Linear, got {type(linear).__name__}")
        w = linear.weight.detach()
        if prune:
            w, _ = sparse24.prune_2_4(w, scores)
        elif not sparse24.is_2_4(w):
            raise ValueError("Sparse24Linear.from_linear(prune=False): the weight is not 2:4 sparse "
                             "(more than two non-zeros in some group of 4 along K); pass prune=True")
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, bits=bits,
                    group_size=group_size, device=torch.device("cpu"), dtype=w.dtype)
        # On the weight's own device: for a model already on the GPU, compressing
        # 8B parameters on the CPU took a minute; the copies below bring the
        # results to the layer's CPU buffers and .to() re-lays them out.
        c = sparse24.compress(w)
        if bits == 16:
            layer.values.copy_(c.values)
        else:
            packed, scales, _ = sparse24.quantize_kept_int4(c.values, group_size)
            layer.values.copy_(packed)
            layer.scales.copy_(scales)
        layer.meta.copy_(c.meta)
        if linear.bias is not None:
            layer.bias.copy_(linear.bias.detach())
        return layer.to(w.device)

    def _canonical(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.cuda_layout:
            return self.values, self.meta
        return sparse24_cuda.from_cuda_layout(self.values, self.meta, self.bits)

    def dequantize(self) -> torch.Tensor:
        """The dense 2:4 weight ``[N, K]`` in the layer's dtype (int4: dequantised)."""
        values, meta = self._canonical()
        return sparse24.dense_weight(sparse24.Sparse24Weight(values, meta, self.scales), self.bits, self.dtype)

    def _sync_layout(self):
        """Holds values/meta in the order the current device's kernel reads."""
        want = self.values.is_cuda and _cuda_kernel_takes(self.out_features, self.in_features, self.bits, self.dtype)
        if want == self.cuda_layout:
            return
        convert = sparse24_cuda.to_cuda_layout if want else sparse24_cuda.from_cuda_layout
        values, meta = convert(self.values, self.meta, self.bits)
        self.values, self.meta = values, meta
        self.cuda_layout = want

    def _apply(self, fn, recurse=True):
        # .to()/.cuda()/.cpu() move the buffers; the layout follows the device.
        out = apply_keeping_float32(self, fn, recurse, ("scales",), super()._apply)
        if self.bits == 16:
            self.dtype = self.values.dtype  # .to(dtype) cast the kept values
        elif self.bias is not None:
            self.dtype = self.bias.dtype
        self._sync_layout()
        return out

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.cuda_layout:  # the file holds the canonical order, whatever the device
            values, meta = self._canonical()
            destination[prefix + "values"], destination[prefix + "meta"] = values, meta

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        was_cuda = self.cuda_layout
        if was_cuda:  # load the canonical tensors into canonical buffers, then re-lay out
            self.values, self.meta = self._canonical()
            self.cuda_layout = False
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._sync_layout()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and not self.cuda_layout:
            b = None if self.bias is None else self.bias.to(x.dtype)
            return nn.functional.linear(x, self.dequantize().to(x.dtype), b)
        return sparse24_gemm(x, self.values, self.meta, self.bias, scales=self.scales, bits=self.bits,
                             group_size=self.group_size, layout=1 if self.cuda_layout else 0)

    def extra_repr(self) -> str:
        q = f", bits=4, group_size={self.group_size}" if self.bits == 4 else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}{q}"
