"""2:4 sparse weights: pruning, and the compressed format of the kernels.

A weight ``W [N, K]`` is 2:4 sparse when every group of 4 consecutive weights
along K (columns ``4g .. 4g + 3`` of a row) has at most 2 non-zeros. The
canonical compressed form (csrc/common/sparse24_params.h; the CPU kernels
read it as is):

- ``values`` ``[N, K / 2]``, W's dtype: the two kept weights of each group,
  in column order (a group with fewer than two non-zeros keeps zeros);
- ``meta`` uint8 ``[N, K / 8]``: byte ``j`` describes dense columns
  ``8j .. 8j + 7``: its low nibble group ``2j``, its high nibble group
  ``2j + 1``; a group's nibble is ``i0 | i1 << 2`` with ``i0 < i1`` the
  positions (0..3) of its kept values.

K must be a multiple of 8. ``compress`` / ``decompress`` are exact inverses
on 2:4 weights. The CUDA kernels read the same contents reordered
(``sparse24_cuda.to_cuda_layout``).

int4 + 2:4 (``bits = 4``): the kept values ``[N, K / 2]`` quantised to int4
(``q`` in 0..15, ``w = (q - zero) * scale``, zero = 8 when symmetric) and
packed like the int4 weight-only format (``formats.int4``: uint8
``[N, K / 4]``, blocks of 32 kept values), with float32 scales (and zeros)
``[N, K / group_size]`` per group of ``group_size`` *dense* columns
(``group_size / 2`` kept values), group_size a multiple of 64.
"""

from typing import NamedTuple

import torch

from .int4 import pack_int4, unpack_int4


class Sparse24Weight(NamedTuple):
    values: torch.Tensor  # [N, K/2] float (bits 16) or packed int4 uint8 [N, K/4] (bits 4)
    meta: torch.Tensor  # uint8 [N, K/8]
    scales: torch.Tensor | None = None  # float32 [N, K/group_size], bits 4 only
    zeros: torch.Tensor | None = None  # float32 [N, K/group_size] or None (symmetric), bits 4 only


def _check_weight(w: torch.Tensor, what: str):
    if w.dim() != 2 or not w.is_floating_point():
        raise ValueError(f"{what} must be a 2-D float tensor [N, K], got {w.dtype} {tuple(w.shape)}")
    if w.shape[1] % 8 != 0:
        raise ValueError(f"2:4 sparsity needs K divisible by 8, got K={w.shape[1]}")


def prune_2_4(weight: torch.Tensor, scores: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Keeps, in each group of 4 along K, the 2 entries with the largest
    ``scores`` (default ``|weight|``; ties go to the lower column). Returns
    ``(pruned_weight, mask)``, the mask bool ``[N, K]`` with two Trues per group."""
    if weight.dim() != 2 or weight.shape[1] % 4 != 0:
        raise ValueError(f"prune_2_4 needs a 2-D weight [N, K] with K divisible by 4, got {tuple(weight.shape)}")
    if scores is None:
        scores = weight.detach().abs()
    elif scores.shape != weight.shape:
        raise ValueError(f"scores must have the weight's shape {tuple(weight.shape)}, got {tuple(scores.shape)}")
    n, k = weight.shape
    s = scores.detach().to(torch.float32).reshape(n, k // 4, 4)
    # A stable sort: among equal scores the lower column wins (topk's order is unspecified).
    keep = s.argsort(dim=-1, descending=True, stable=True)[..., :2]
    mask = torch.zeros(n, k // 4, 4, dtype=torch.bool, device=weight.device).scatter_(-1, keep, True).reshape(n, k)
    return weight * mask, mask


def is_2_4(weight: torch.Tensor) -> bool:
    """Whether every group of 4 along K has at most 2 non-zeros."""
    n, k = weight.shape
    return k % 4 == 0 and bool(((weight.reshape(n, k // 4, 4) != 0).sum(-1) <= 2).all())


def _kept_positions(weight: torch.Tensor) -> torch.Tensor:
    """[N, K/4, 2] positions (sorted) of the kept entries: the non-zeros,
    padded with the lowest zero positions when a group has fewer than two."""
    n, k = weight.shape
    nz = (weight.reshape(n, k // 4, 4) != 0).to(torch.int8)
    # Non-zeros first (key 0), then zeros (key 1), each by column: a stable
    # order, so the two smallest keys are the positions to keep.
    key = (1 - nz) * 4 + torch.arange(4, device=weight.device, dtype=torch.int8)
    pos = key.argsort(dim=-1)[..., :2]
    return pos.sort(dim=-1).values


def compress(weight: torch.Tensor) -> Sparse24Weight:
    """The canonical (values, meta) of a 2:4 sparse weight; a ValueError
    names the first group with more than two non-zeros."""
    _check_weight(weight, "weight")
    n, k = weight.shape
    if not is_2_4(weight):
        bad = ((weight.reshape(n, k // 4, 4) != 0).sum(-1) > 2).nonzero()[0].tolist()
        raise ValueError(
            f"weight is not 2:4 sparse: row {bad[0]}, columns {4 * bad[1]}..{4 * bad[1] + 3} hold more than two "
            "non-zeros (prune it first: slimops.prune_2_4)"
        )
    pos = _kept_positions(weight)  # [N, K/4, 2]
    values = weight.reshape(n, k // 4, 4).gather(-1, pos).reshape(n, k // 2).contiguous()
    nibble = (pos[..., 0] | (pos[..., 1] << 2)).to(torch.uint8)  # [N, K/4]
    meta = (nibble[:, 0::2] | (nibble[:, 1::2] << 4)).contiguous()
    return Sparse24Weight(values, meta)


def kept_positions(meta: torch.Tensor) -> torch.Tensor:
    """Dense column of every kept value: int64 [N, K/2]."""
    n, kb = meta.shape
    nib = torch.stack([meta & 0xF, meta >> 4], dim=-1).reshape(n, kb * 2).to(torch.int64)  # [N, K/4]
    pos = torch.stack([nib & 3, nib >> 2], dim=-1)  # [N, K/4, 2]
    base = torch.arange(kb * 2, device=meta.device).view(1, -1, 1) * 4
    return (base + pos).reshape(n, kb * 4)


def decompress(values: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
    """The dense ``[N, K]`` weight of canonical (values, meta), values' dtype."""
    n, half = values.shape
    if meta.dtype != torch.uint8 or tuple(meta.shape) != (n, half // 4):
        raise ValueError(f"meta must be uint8 [N, K/8] = [{n}, {half // 4}], got {meta.dtype} {tuple(meta.shape)}")
    dense = torch.zeros(n, half * 2, dtype=values.dtype, device=values.device)
    return dense.scatter_(1, kept_positions(meta), values)


def quantize_kept_int4(values: torch.Tensor, group_size: int = 128, symmetric: bool = True):
    """RTN int4 of canonical kept values ``[N, K/2]`` with scales per
    ``group_size`` dense columns: returns (packed uint8 [N, K/4], scales, zeros|None)."""
    n, half = values.shape
    k = half * 2
    if group_size <= 0 or group_size % 64 or k % group_size:
        raise ValueError(f"int4 + 2:4 needs group_size a multiple of 64 dividing K={k}, got {group_size}")
    g = k // group_size
    v = values.detach().to(torch.float32).reshape(n, g, group_size // 2)
    if symmetric:
        absmax = v.abs().amax(-1)
        scales = torch.where(absmax > 0, absmax / 7.5, torch.ones_like(absmax))
        zeros = torch.full_like(scales, 8.0)
    else:
        lo, hi = v.amin(-1).clamp(max=0), v.amax(-1).clamp(min=0)
        scales = torch.where(hi > lo, (hi - lo) / 15, torch.ones_like(hi))
        zeros = (-torch.round(lo / scales)).clamp(0, 15)
    q = torch.round(v / scales.unsqueeze(-1) + zeros.unsqueeze(-1)).clamp_(0, 15).reshape(n, half)
    return pack_int4(q.to(torch.uint8)), scales.contiguous(), None if symmetric else zeros.contiguous()


def dequantize_kept_int4(packed, scales, zeros=None) -> torch.Tensor:
    """float32 kept values [N, K/2] of packed int4 kept values."""
    q = unpack_int4(packed).to(torch.float32)
    n, half = q.shape
    g = scales.shape[1]
    z = 8.0 if zeros is None else zeros.to(torch.float32).unsqueeze(-1)
    return ((q.reshape(n, g, half // g) - z) * scales.to(torch.float32).unsqueeze(-1)).reshape(n, half)


def dense_weight(w: Sparse24Weight, bits: int = 16, dtype=torch.float32) -> torch.Tensor:
    """The dense weight a canonical Sparse24Weight stands for (the reference)."""
    values = w.values if bits == 16 else dequantize_kept_int4(w.values, w.scales, w.zeros)
    return decompress(values.to(dtype), w.meta)
