"""Round-to-nearest quantisation into the slimops weight formats, and the
dequantisation that defines them (the reference the kernels are held to)."""

from typing import NamedTuple

import torch

from .int4 import BLOCK as INT4_BLOCK
from .int4 import pack_int4, unpack_int4


class QuantizedWeight(NamedTuple):
    qweight: torch.Tensor  # int8 [N, K] (bits=8) or packed uint8 [N, K/2] (bits=4)
    scales: torch.Tensor  # float32 [N, K / group_size]
    zeros: torch.Tensor | None  # float32 [N, K / group_size], None when symmetric


# Integer range of each format and its symmetric zero point.
QRANGE = {8: (-128, 127), 4: (0, 15)}
SYMMETRIC_ZERO = {8: 0.0, 4: 8.0}


def num_groups(k: int, group_size: int, bits: int = 8) -> int:
    """Groups along K; validates group_size (and the int4 block constraint)."""
    gs = k if group_size == -1 else group_size
    if gs <= 0 or k % gs != 0:
        raise ValueError(f"group_size must be -1 (per channel) or a positive divisor of K={k}, got {group_size}")
    if bits == 4 and (k % INT4_BLOCK or gs % INT4_BLOCK):
        raise ValueError(f"int4 needs K and group_size divisible by {INT4_BLOCK}, got K={k}, group_size={gs}")
    return k // gs


def quantize(weight: torch.Tensor, bits: int = 8, group_size: int = -1, symmetric: bool = True) -> QuantizedWeight:
    """Round-to-nearest quantisation of a float ``[N, K]`` weight.

    Symmetric: ``scale = absmax / 127`` (int8, q in [-127, 127]) or
    ``absmax / 7.5`` (int4, q - 8 in [-7.5, 7.5] rounded into [0, 15]).
    Asymmetric: ``scale = (max - min) / (2^bits - 1)``, ``zero = round(-min / scale)``
    shifted into the format's range. All-equal groups get scale 1 (finite, exact).
    """
    if bits not in QRANGE:
        raise ValueError(f"bits must be 4 or 8, got {bits}")
    if weight.dim() != 2 or not weight.is_floating_point():
        raise ValueError(f"weight must be a 2-D float tensor [N, K], got {weight.dtype} {tuple(weight.shape)}")
    n, k = weight.shape
    g = num_groups(k, group_size, bits)
    w = weight.detach().to(torch.float32).reshape(n, g, k // g)
    lo, hi = QRANGE[bits]
    if symmetric:
        half_range = 127.0 if bits == 8 else 7.5
        absmax = w.abs().amax(dim=-1)
        scales = torch.where(absmax > 0, absmax / half_range, torch.ones_like(absmax))
        zeros = torch.full_like(scales, SYMMETRIC_ZERO[bits])
    else:
        wmin, wmax = w.amin(dim=-1).clamp(max=0), w.amax(dim=-1).clamp(min=0)
        span = wmax - wmin
        scales = torch.where(span > 0, span / (hi - lo), torch.ones_like(span))
        zeros = (lo - torch.round(wmin / scales)).clamp(lo, hi)
    q = torch.round(w / scales.unsqueeze(-1) + zeros.unsqueeze(-1)).clamp_(lo, hi).reshape(n, k)
    qweight = q.to(torch.int8).contiguous() if bits == 8 else pack_int4(q.to(torch.uint8))
    return QuantizedWeight(qweight, scales.contiguous(), None if symmetric else zeros.contiguous())


def unpack(qweight: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer values [N, K] of a packed weight, as int16."""
    return (qweight if bits == 8 else unpack_int4(qweight)).to(torch.int16)


def dequantize(qweight, scales, zeros=None, bits: int = 8, group_size: int = -1) -> torch.Tensor:
    """The float32 ``[N, K]`` weight the kernels compute with: ``(q - zero) * scale``."""
    q = unpack(qweight, bits)
    n, k = q.shape
    g = num_groups(k, group_size, bits)
    if tuple(scales.shape) != (n, g):
        raise ValueError(f"scales must have shape [N, K // group_size] = [{n}, {g}], got {tuple(scales.shape)}")
    z = SYMMETRIC_ZERO[bits] if zeros is None else zeros.to(torch.float32).unsqueeze(-1)
    w = (q.to(torch.float32).reshape(n, g, k // g) - z) * scales.to(torch.float32).unsqueeze(-1)
    return w.reshape(n, k)
