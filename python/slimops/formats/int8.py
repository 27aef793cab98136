"""int8 weight-only format (``bits=8``).

Layout, the same on every backend:

- ``qweight``: int8 ``[N, K]``, row-major, contiguous. Symmetric quantisation
  uses ``[-127, 127]`` (so negation is exact); asymmetric uses ``[-128, 127]``
  with float32 ``zeros``.
- ``scales``: float32 ``[N, K // group_size]``, contiguous; one scale per
  output channel when ``group_size == -1`` (stored as ``[N, 1]``).
- ``w[n, k] = (qweight[n, k] - zero) * scales[n, k // group_size]``, zero = 0
  when symmetric.
"""

import torch

from .quantize import dequantize, quantize


def quantize_int8(weight: torch.Tensor, group_size: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric round-to-nearest int8: ``(qweight, scales)``."""
    qweight, scales, _ = quantize(weight, bits=8, group_size=group_size, symmetric=True)
    return qweight, scales


def dequantize_int8(qweight: torch.Tensor, scales: torch.Tensor, group_size: int = -1) -> torch.Tensor:
    """The float32 ``[N, K]`` weight of a symmetric int8 layer."""
    return dequantize(qweight, scales, None, 8, group_size)
