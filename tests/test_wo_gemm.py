"""slimops.wo_gemm against the float32 reference, on every backend and CPU path."""

import pytest
import torch

import slimops
from slimops import reference
from slimops.formats import quantize_int8
from slimops.testing import randn_with_outliers, rel_error

from conftest import TOL, requires_cuda

# (K, N, group_size): odd N everywhere, K not a power of two, every group size.
SHAPES = [
    (96, 37, 32),
    (192, 101, 64),
    (384, 65, 128),
    (257, 33, -1),  # odd K, per-channel
    (1000, 64, -1),
    (520, 24, 8),  # K not a multiple of 16: vector tails on CUDA, groups of 8
]
MS = [1, 3, 16, 100]


def make_problem(k, n, gs, gen, device="cpu", bias=True):
    w = randn_with_outliers(n, k, generator=gen) * 0.05
    q, s = quantize_int8(w, gs)
    b = randn_with_outliers(n, generator=gen) if bias else None
    return q.to(device), s.to(device), None if b is None else b.to(device)


def check(x, q, s, b, gs):
    out = slimops.wo_gemm(x, q, s, b, group_size=gs)
    ref = reference.wo_gemm(x.float().cpu(), q.cpu(), s.cpu(), None if b is None else b.cpu(), 8, gs)
    assert out.shape == (*x.shape[:-1], q.shape[0])
    assert out.dtype == x.dtype and out.device == x.device
    assert torch.isfinite(out).all()
    err = rel_error(out.cpu(), ref)
    assert err < TOL[x.dtype], f"relative error {err:.2e} over {TOL[x.dtype]:.0e}"
    return out


@pytest.mark.parametrize("k,n,gs", SHAPES)
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_cpu_matches_reference(cpu_isa, k, n, gs, m, dtype, gen):
    q, s, b = make_problem(k, n, gs, gen, bias=m != 3)
    x = randn_with_outliers(m, k, dtype=dtype, generator=gen)
    check(x, q, s, b, gs)


def test_cpu_isa_paths_agree(gen):
    """Every vector path against the scalar one on the same inputs."""
    k, n, gs = 520, 77, 8
    q, s, b = make_problem(k, n, gs, gen)
    x = randn_with_outliers(5, k, generator=gen)
    before = slimops._C.selected_cpu_isa()
    try:
        slimops._C.set_cpu_isa("scalar")
        base = slimops.wo_gemm(x, q, s, b, group_size=gs)
        for isa in slimops._C.available_cpu_isas():
            slimops._C.set_cpu_isa(isa)
            assert rel_error(slimops.wo_gemm(x, q, s, b, group_size=gs), base) < 1e-5, isa
    finally:
        slimops._C.set_cpu_isa(before)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_cuda)])
def test_batched_and_noncontiguous(device, gen):
    k, n, gs = 256, 48, 64
    q, s, b = make_problem(k, n, gs, gen, device)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    x = randn_with_outliers(2, 3, 5, k, dtype=dtype, generator=gen).to(device)
    check(x, q, s, b, gs)
    # Column slice: rows are not contiguous (row stride 2k).
    wide = randn_with_outliers(7, 2 * k, dtype=dtype, generator=gen).to(device)
    check(wide[:, :k], q, s, b, gs)
    # Transposed view: unit stride along M, not K.
    xt = randn_with_outliers(k, 6, dtype=dtype, generator=gen).to(device).t()
    assert not xt.is_contiguous()
    check(xt, q, s, b, gs)
    # A 1-D x is one row, as in F.linear.
    check(randn_with_outliers(k, dtype=dtype, generator=gen).to(device), q, s, b, gs)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_cuda)])
def test_empty_m_returns_empty(device, gen):
    q, s, b = make_problem(64, 16, -1, gen, device)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    out = slimops.wo_gemm(torch.empty(0, 64, dtype=dtype, device=device), q, s, b)
    assert out.shape == (0, 16) and out.dtype == dtype
    out = slimops.wo_gemm(torch.empty(2, 0, 64, dtype=dtype, device=device), q, s, b)
    assert out.shape == (2, 0, 16)


@requires_cuda
@pytest.mark.parametrize("k,n,gs", SHAPES)
@pytest.mark.parametrize("m", MS + [1000])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_matches_reference(k, n, gs, m, dtype, gen):
    q, s, b = make_problem(k, n, gs, gen, "cuda", bias=m != 3)
    x = randn_with_outliers(m, k, dtype=dtype, generator=gen).cuda()
    # Poison the memory the output will most likely reuse, so an element the
    # kernel never writes shows up as NaN rather than as a stale right value.
    torch.full((m, n), float("nan"), dtype=dtype, device="cuda")
    check(x, q, s, b, gs)


@requires_cuda
def test_cuda_very_large_m(gen):
    """M beyond the 65535 * 4 rows one grid of the fused kernel covers."""
    k, n, gs = 32, 8, -1
    q, s, b = make_problem(k, n, gs, gen, "cuda")
    x = randn_with_outliers(65535 * 4 + 9, k, dtype=torch.bfloat16, generator=gen).cuda()
    check(x, q, s, b, gs)

