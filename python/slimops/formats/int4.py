"""int4 weight-only format (``bits=4``).

Layout, the same on CPU and CUDA: every kernel reads it as it is, the CUDA
tensor-core ones included (a lane's mma / wgmma fragment words are 16-bit
pieces of a block's 16 bytes; csrc/cuda/wo_gemm/), so ``QuantLinear.to()``
moves the tensors without repacking:

- ``qweight``: uint8 ``[N, K // 2]``, contiguous. K is cut into blocks of 32;
  block ``b`` of row ``n`` is the 16 bytes ``qweight[n, 16*b : 16*b + 16]``,
  and byte ``j`` holds weight ``32*b + j`` in its low nibble and weight
  ``32*b + 16 + j`` in its high nibble. This keeps the AVX2 unpack to one AND
  and one shift per 32 weights, with both halves in order.
- values ``q`` in ``[0, 15]``; ``w = (q - zero) * scale`` per group, with
  ``zero = 8`` when symmetric (``zeros`` is None) or a float32 ``[N, K // group_size]``
  tensor (asymmetric; integral for RTN, any float for imported checkpoints).
- ``scales``: float32 ``[N, K // group_size]``. K and the group size must be
  multiples of 32.
"""

import torch

BLOCK = 32


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Pack integer values in [0, 15], shape [N, K] (K % 32 == 0), into the layout above."""
    n, k = q.shape
    if k % BLOCK != 0:
        raise ValueError(f"int4 packing needs K divisible by {BLOCK}, got K={k}")
    if q.numel() and (int(q.min()) < 0 or int(q.max()) > 15):
        raise ValueError("int4 values must lie in [0, 15]")
    blocks = q.to(torch.uint8).reshape(n, k // BLOCK, 2, BLOCK // 2)
    return (blocks[:, :, 0] | (blocks[:, :, 1] << 4)).reshape(n, k // 2).contiguous()


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """The uint8 [N, K] values in [0, 15] that ``pack_int4`` packed."""
    n, half = packed.shape
    b = packed.reshape(n, half * 2 // BLOCK, 1, BLOCK // 2)
    return torch.cat([b & 0x0F, b >> 4], dim=2).reshape(n, half * 2)
