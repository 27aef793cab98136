"""LowRankLinear: an nn.Linear replacement whose weight is the product U @ V."""

import math
from fractions import Fraction
from numbers import Real

import torch
from torch import nn

from .. import ops
from .factorize import low_rank_factors

METHODS = ("svd", "asvd")


class LowRankLinear(nn.Module):
    """``y = (x @ V^T) @ U^T + bias`` on the slimops fused low-rank kernel.

    ``V`` is ``[rank, in_features]``, ``U`` is ``[out_features, rank]``; both
    (and ``bias``) are trainable parameters, unlike QuantLinear's frozen
    buffers, because fine-tuning the factors after truncation is the usual way
    to win back accuracy. ``x``, ``V`` and ``U`` must share one float dtype, as
    for ``nn.Linear``: convert the layer with ``.to(dtype)`` rather than paying
    a cast of the factors on every call.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True, *, device=None, dtype=None):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features), ("rank", rank)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"LowRankLinear: {name} must be a positive int, got {v!r}")
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        kw = {"device": device, "dtype": dtype}
        self.V = nn.Parameter(torch.empty(rank, in_features, **kw))
        self.U = nn.Parameter(torch.empty(out_features, rank, **kw))
        self.bias = nn.Parameter(torch.empty(out_features, **kw)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        # A layer built from scratch (not from_linear) should train like an
        # nn.Linear: each factor keeps unit variance through its matmul, so
        # U @ V starts with about nn.Linear's output scale, never all zeros.
        bound_v, bound_u = 1 / math.sqrt(self.in_features), 1 / math.sqrt(self.rank)
        nn.init.uniform_(self.V, -bound_v, bound_v)
        nn.init.uniform_(self.U, -bound_u, bound_u)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound_v, bound_v)

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        rank: int | None = None,
        param_ratio: float | None = None,
        method: str = "svd",
        calib: torch.Tensor | None = None,
        alpha: float = 0.5,
    ) -> "LowRankLinear":
        """Factor ``linear``'s weight into a rank-``rank`` LowRankLinear.

        Give exactly one of ``rank`` or ``param_ratio``; ``param_ratio=p``
        keeps ``r = floor(p * N * K / (N + K))`` (at least 1), so the factors
        hold at most ``p`` times the dense weight's parameters.

        ``method="svd"`` is the truncated SVD, the best rank-r approximation
        of W in Frobenius norm. ``method="asvd"`` (Yuan et al. 2023, ASVD)
        instead minimises the error on the layer's *outputs* for typical
        inputs: it scales input channel k by ``s_k = (mean |x_k|) ** alpha``,
        truncates the SVD of ``W diag(s)`` and folds ``diag(s)^-1`` into V,
        so channels that carry large activations are kept more exactly.
        ``calib`` is then either activations ``[..., K]`` (2-D or more; a
        single row is ``[1, K]``) or the precomputed statistic ``mean |x_k|``
        as a 1-D ``[K]`` tensor.
        """
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"LowRankLinear.from_linear expects an nn.Linear, got {type(linear).__name__}")
        w = linear.weight.detach()
        n, k = w.shape
        r = _choose_rank(n, k, rank, param_ratio)
        if method not in METHODS:
            raise ValueError(f"LowRankLinear.from_linear: method must be one of {METHODS}, got {method!r}")
        scale = None
        if method == "asvd":
            scale = asvd_input_scale(calib, k, alpha, w.device, torch.float64 if w.device.type == "cpu" else torch.float32)
        elif calib is not None:
            raise ValueError("LowRankLinear.from_linear: calib is only used by method='asvd'; drop it for 'svd'")
        u, v = low_rank_factors(w, r, scale)
        layer = cls(k, n, r, bias=linear.bias is not None, device=linear.weight.device, dtype=linear.weight.dtype)
        with torch.no_grad():
            layer.V.copy_(v)
            layer.U.copy_(u)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias.detach())
        return layer

    def dequantize(self) -> torch.Tensor:
        """The float32 ``[out_features, in_features]`` weight ``U @ V`` the layer
        computes with (detached: a snapshot, as QuantLinear.dequantize is)."""
        with torch.no_grad():
            return self.U.float() @ self.V.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.lowrank_linear(x, self.V, self.U, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
            f"bias={self.bias is not None}"
        )


def _choose_rank(n: int, k: int, rank, param_ratio) -> int:
    who = "LowRankLinear.from_linear"
    if (rank is None) == (param_ratio is None):
        raise ValueError(f"{who}: give exactly one of rank or param_ratio, got rank={rank!r}, param_ratio={param_ratio!r}")
    if rank is not None:
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(n, k):
            raise ValueError(f"{who}: rank must be an int in [1, min(N, K)] = [1, {min(n, k)}], got {rank!r}")
        return rank
    if isinstance(param_ratio, bool) or not isinstance(param_ratio, Real) or not 0 < param_ratio <= 1:
        raise ValueError(f"{who}: param_ratio must be a number in (0, 1], got {param_ratio!r}")
    # Exact rational arithmetic on the ratio as written: with floats,
    # 0.5 * N * K / (N + K) can land a hair under an integer and lose a rank.
    ratio = Fraction(str(float(param_ratio)))
    # r (N + K) <= p N K keeps the factors within the budget; since
    # N K / (N + K) < min(N, K), r never exceeds the full rank.
    return max(1, math.floor(ratio * n * k / (n + k)))


def asvd_input_scale(calib, k: int, alpha, device, dtype) -> torch.Tensor:
    """The per-input-channel scale s = (mean |x|) ** alpha of ASVD, [K]."""
    who = "LowRankLinear.from_linear(method='asvd')"
    if calib is None:
        raise ValueError(f"{who}: needs calib, activations [..., K] or the statistic mean |x| as [K]")
    if not isinstance(calib, torch.Tensor) or not calib.is_floating_point() or calib.dim() < 1 or calib.shape[-1] != k:
        got = f"{calib.dtype} of shape {list(calib.shape)}" if isinstance(calib, torch.Tensor) else type(calib).__name__
        raise ValueError(f"{who}: calib must be a float tensor [..., K] with K = {k}, got {got}")
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0 <= alpha < math.inf:
        raise ValueError(f"{who}: alpha must be a finite number >= 0, got {alpha!r}")
    calib = calib.detach().to(device=device, dtype=dtype)
    if not torch.isfinite(calib).all():
        raise ValueError(f"{who}: calib has inf or nan entries")
    if calib.dim() == 1:
        stat = calib
        if (stat < 0).any():
            raise ValueError(f"{who}: a 1-D calib is the statistic mean |x_k| and must be >= 0; pass activations as [1, K]")
    else:
        stat = calib.abs().reshape(-1, k).mean(0)
    top = stat.max()
    if top <= 0:
        raise ValueError(f"{who}: calib is all zeros, so it says nothing about the input channels")
    # A channel never seen active would get s = 0 and an infinite 1/s in V;
    # a floor far below the largest channel keeps it finite and unimportant.
    return stat.clamp_min(top * 1e-6) ** alpha
