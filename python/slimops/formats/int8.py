"""int8 weight-only format (``bits=8``).

Layout, the same on every backend:

- ``qweight``: int8 ``[N, K]``, row-major, contiguous; symmetric, values in
  ``[-127, 127]`` (``-128`` is never produced, so negation is exact).
- ``scales``: float32 ``[N, K // group_size]``, contiguous; one scale per
  output channel when ``group_size == -1`` (stored as ``[N, 1]``).
- ``w[n, k] = qweight[n, k] * scales[n, k // group_size]``.
"""

import torch

QMAX = 127


def _groups(k: int, group_size: int) -> int:
    if group_size == -1:
        return 1
    if group_size <= 0 or k % group_size != 0:
        raise ValueError(
            f"group_size must be -1 (per channel) or a positive divisor of K={k}, got {group_size}"
        )
    return k // group_size


def quantize_int8(weight: torch.Tensor, group_size: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """Round-to-nearest symmetric int8 quantisation of a float ``[N, K]`` weight.

    Returns ``(qweight, scales)`` in the layout above. All-zero groups get
    scale 1 so that dequantisation stays exact (zeros) and finite.
    """
    if weight.dim() != 2 or not weight.is_floating_point():
        raise ValueError(f"weight must be a 2-D float tensor [N, K], got {weight.dtype} {tuple(weight.shape)}")
    n, k = weight.shape
    g = _groups(k, group_size)
    w = weight.detach().to(torch.float32).reshape(n, g, k // g)
    absmax = w.abs().amax(dim=-1)
    scales = torch.where(absmax > 0, absmax / QMAX, torch.ones_like(absmax))
    q = torch.round(w / scales.unsqueeze(-1)).clamp_(-QMAX, QMAX).to(torch.int8)
    return q.reshape(n, k).contiguous(), scales.contiguous()


def dequantize_int8(qweight: torch.Tensor, scales: torch.Tensor, group_size: int = -1) -> torch.Tensor:
    """The float32 ``[N, K]`` weight the kernels compute with."""
    n, k = qweight.shape
    g = _groups(k, group_size)
    if tuple(scales.shape) != (n, g):
        raise ValueError(f"scales must have shape [N, K // group_size] = [{n}, {g}], got {tuple(scales.shape)}")
    w = qweight.to(torch.float32).reshape(n, g, k // g) * scales.to(torch.float32).unsqueeze(-1)
    return w.reshape(n, k)
