"""CUDA layout of 2:4 sparse weights (``Sparse24Layout::kCuda``).

The CUDA kernel (csrc/cuda/sparse24/) feeds W to ``mma.sp.m16n8k32`` as the
sparse A operand, 16 rows of W by 32 dense k per instruction. This layout
stores the canonical kept values and metadata (formats/sparse24.py,
csrc/common/sparse24_params.h) in the order in which the lanes of a warp
hold them in registers, so a kernel copies contiguous 16-byte chunks and
each lane reads its operands with one conflict-free shared-memory load.
Only the order of bytes changes: shapes and dtypes are the canonical ones
(values ``[n, k/2]`` in dtype, or packed int4 uint8 ``[n, k/4]``; meta uint8
``[n, k/8]``). It needs ``n % 16 == 0`` and ``k % 64 == 0``.

Tiles. W is cut into tiles of 16 rows by 64 dense columns (32 kept values,
8 metadata bytes per row). Tile ``(R, T)`` covers rows ``16R .. 16R+15`` and
dense columns ``64T .. 64T+63``; tiles are stored in the order ``R`` major,
``T`` minor, so tile row ``R`` occupies exactly the bytes that canonical rows
``16R .. 16R+15`` occupy. Inside a tile:

- dense column ``64T + 32s + 4G + i`` (step ``s`` in 0..1, group ``G`` in
  0..7 of the step, ``i`` in 0..3) belongs to kept slot ``e`` (0 or 1) of
  group ``G`` of step ``s``;
- tile row ``rr = 8h + gr`` (``h`` in 0..1, ``gr`` in 0..7);
- lane ``L = 4 gr + tg`` with ``tg = G % 4``, register ``reg = 2 (G // 4) + h``.

Values, bits = 16 (1024 bytes a tile): element index in the tile
``s*256 + L*8 + reg*2 + e``: for each step, 32 lanes x 16 bytes, lane ``L``'s
16 bytes being the mma's A registers a0..a3 (a0: row gr, group tg; a1: row
gr + 8, group tg; a2: row gr, group tg + 4; a3: row gr + 8, group tg + 4),
each register the two kept values (slot 0 in the low half).

Values, bits = 4 (256 bytes a tile): byte ``L*8 + s*4 + b`` (``b`` in 0..3)
holds ``v[b]`` in its low nibble and ``v[b + 4]`` in its high nibble, where
``v[2*reg + e]`` is lane ``L``'s kept value (q in 0..15) of register ``reg``,
slot ``e``, step ``s``. The kernel turns one 32-bit word into the four
registers of a step with a byte permute and a masked OR each (magic-number
dequantisation). Scales and zeros are not reordered: they stay float32
``[n, k / group_size]`` (``group_size`` a multiple of 64).

Metadata (128 bytes a tile): 32 little-endian 32-bit words, word ``L`` for
lane ``L = 4 gr + 2 s + c`` (``c`` in 0..1). Its bits 0-15 are the 4-bit group
fields (``i0 | i1 << 2``, the canonical nibble) of row ``gr``, dense columns
``64T + 32s + 16c .. + 15``, group ``j`` of those four in bits ``4j .. 4j+3``;
bits 16-31 the same for row ``gr + 8``. In canonical bytes: word ``L`` is
``meta[16R + gr, 8T + 4s + 2c : +2]`` followed by
``meta[16R + gr + 8, 8T + 4s + 2c : +2]``. This is what ``mma.sp`` m16n8k32
(16-bit types) reads: lanes ``4gr + 2*sel`` and ``4gr + 2*sel + 1`` supply the
metadata with sparsity selector ``sel``, so step ``s`` uses selector ``s`` and
one register serves both steps.

All functions are plain tensor ops (CPU or CUDA), exact, and inverse of each
other.
"""

import torch

TILE_ROWS = 16
TILE_K = 64


def _check(values: torch.Tensor, meta: torch.Tensor, bits: int):
    if bits not in (4, 16):
        raise ValueError(f"bits must be 4 or 16, got {bits}")
    if meta.dtype != torch.uint8 or meta.dim() != 2:
        raise ValueError(f"meta must be a 2-D uint8 tensor, got {meta.dtype} with shape {tuple(meta.shape)}")
    n, k8 = meta.shape
    k = k8 * 8
    if n % TILE_ROWS != 0 or k % TILE_K != 0:
        raise ValueError(f"the CUDA layout needs n % 16 == 0 and k % 64 == 0, got n={n}, k={k}")
    want = (n, k // 2) if bits == 16 else (n, k // 4)
    if tuple(values.shape) != want:
        raise ValueError(f"values must have shape {want} for bits={bits}, got {tuple(values.shape)}")
    if bits == 4 and values.dtype != torch.uint8:
        raise ValueError(f"bits=4 values must be packed uint8, got {values.dtype}")
    return n, k


# Kept values of a row-tile / k-tile: canonical order is
#   [R, h, gr, T, s, c4, tg, e]     (row = 16R + 8h + gr, kept = 32T + 16s + 2(4 c4 + tg) + e)
# and the lane order is
#   [R, T, s, gr, tg, c4, h, e]     (lane = 4 gr + tg, reg = 2 c4 + h).
_V_TO_LANES = (0, 3, 4, 2, 6, 5, 1, 7)
_V_FROM_LANES = tuple(_V_TO_LANES.index(i) for i in range(8))
# Metadata bytes: canonical [R, h, gr, T, s, c, b] (byte 8T + 4s + 2c + b of
# row 16R + 8h + gr), lane order [R, T, gr, s, c, h, b].
_M_TO_LANES = (0, 3, 2, 4, 5, 1, 6)
_M_FROM_LANES = tuple(_M_TO_LANES.index(i) for i in range(7))


def _values_to_lanes(v: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """[n, k/2] kept values (any dtype) -> [n/16, k/64, 2, 32, 8] lane order."""
    v = v.reshape(n // 16, 2, 8, k // 64, 2, 2, 4, 2).permute(*_V_TO_LANES)
    return v.reshape(n // 16, k // 64, 2, 32, 8)


def _values_from_lanes(v: torch.Tensor, n: int, k: int) -> torch.Tensor:
    v = v.reshape(n // 16, k // 64, 2, 8, 4, 2, 2, 2).permute(*_V_FROM_LANES)
    return v.reshape(n, k // 2)


def _unpack_int4(packed: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """Canonical packed int4 [n, k/4] -> q [n, k/2] uint8 (blocks of 32 kept values)."""
    b = packed.reshape(n, k // 64, 1, 16)
    return torch.cat([b & 0x0F, b >> 4], dim=2).reshape(n, k // 2)


def _pack_int4(q: torch.Tensor, n: int, k: int) -> torch.Tensor:
    blocks = q.reshape(n, k // 64, 2, 16)
    return (blocks[:, :, 0] | (blocks[:, :, 1] << 4)).reshape(n, k // 4)


def to_cuda_layout(values: torch.Tensor, meta: torch.Tensor, bits: int):
    """Canonical (values, meta) -> (values, meta) in the CUDA layout above."""
    n, k = _check(values, meta, bits)
    if bits == 16:
        v = _values_to_lanes(values, n, k).reshape(n, k // 2)
    else:
        lanes = _values_to_lanes(_unpack_int4(values, n, k), n, k)  # [R, T, s, L, 8]
        byte = lanes[..., :4] | (lanes[..., 4:] << 4)  # [R, T, s, L, 4]
        v = byte.permute(0, 1, 3, 2, 4).reshape(n, k // 4)  # [R, T, L, s, 4]
    m = meta.reshape(n // 16, 2, 8, k // 64, 2, 2, 2).permute(*_M_TO_LANES).reshape(n, k // 8)
    return v.contiguous(), m.contiguous()


def from_cuda_layout(values: torch.Tensor, meta: torch.Tensor, bits: int):
    """(values, meta) in the CUDA layout -> canonical (values, meta); inverse of to_cuda_layout."""
    n, k = _check(values, meta, bits)
    if bits == 16:
        v = _values_from_lanes(values, n, k)
    else:
        byte = values.reshape(n // 16, k // 64, 32, 2, 4).permute(0, 1, 3, 2, 4)  # [R, T, s, L, 4]
        lanes = torch.cat([byte & 0x0F, byte >> 4], dim=-1)  # [R, T, s, L, 8]
        v = _pack_int4(_values_from_lanes(lanes, n, k), n, k)
    m = meta.reshape(n // 16, k // 64, 8, 2, 2, 2, 2).permute(*_M_FROM_LANES).reshape(n, k // 8)
    return v.contiguous(), m.contiguous()
