"""Input generators shared by the tests and the benchmarks: fresh random data
with outliers, never zeros (design.md, Numerics and tests)."""

import torch


def randn_with_outliers(*shape, dtype=torch.float32, device="cpu", outlier_frac=0.002, outlier_scale=20.0, generator=None):
    """Standard normal values with a few entries scaled up by outlier_scale,
    the way LLM activations and weights have a handful of large channels."""
    x = torch.randn(*shape, dtype=torch.float32, device=device, generator=generator)
    mask = torch.rand(*shape, device=device, generator=generator) < outlier_frac
    x = torch.where(mask, x * outlier_scale, x)
    return x.to(dtype)


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64."""
    out, ref = out.double(), ref.double()
    return ((out - ref).norm() / ref.norm()).item()
