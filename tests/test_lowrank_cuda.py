"""CUDA tests of slimops.lowrank_linear: the fused small-M kernel
(csrc/cuda/lowrank) and the two-GEMM path, against a float64 reference."""

import pytest
import torch

from slimops.testing import randn_with_outliers, rel_error

from conftest import TOL, requires_cuda

pytestmark = requires_cuda

# The fused kernel supports M <= 16 with K and r multiples of 8 (fp16/bf16);
# the binding picks it only where it pays (M = 1), unless
# SLIMOPS_CUDA_LOWRANK=fused|dense forces a path. Everything else goes to two
# cuBLAS GEMMs.
FUSED_MAX_M = 16


@pytest.fixture
def force_path(monkeypatch):
    """force_path("fused"|"dense") sets the path for the rest of the test."""
    return lambda path: monkeypatch.setenv("SLIMOPS_CUDA_LOWRANK", path)


def make_weights(k, n, r, dtype, bias, gen):
    # Scaled so that t = x V^T and out stay O(1): fp16 must not overflow.
    v = (randn_with_outliers(r, k, generator=gen) / k**0.5).to(dtype).cuda()
    u = (randn_with_outliers(n, r, generator=gen) / r**0.5).to(dtype).cuda()
    b = randn_with_outliers(n, generator=gen).cuda() if bias else None
    return v, u, b


def reference(x, v, u, b):
    out = (x.double() @ v.double().T) @ u.double().T
    return out + b.double() if b is not None else out


def poison_allocator(numel, dtype):
    # The op allocates its own output; leaving NaN-filled blocks of that size
    # in the caching allocator makes an unwritten element show as NaN.
    for _ in range(2):
        torch.full((numel,), float("nan"), dtype=dtype, device="cuda")


def run(x, v, u, b):
    poison_allocator(x.numel() // x.shape[-1] * u.shape[0], x.dtype)
    return torch.ops.slimops.lowrank_linear(x, v, u, b)


def check(x, v, u, b, tol=None):
    out = run(x, v, u, b)
    assert out.shape == (*x.shape[:-1], u.shape[0]) and out.dtype == x.dtype and out.is_cuda
    assert torch.isfinite(out).all()
    err = rel_error(out, reference(x, v, u, b))
    assert err < (tol or TOL[x.dtype]), err


# (K, N, r): r not a multiple of the kernel's 32-row groups, N not a multiple
# of its 8 slices or of 4, K whose chunks do not split evenly over 8 blocks
# (264 = 33 chunks of 8), and a Llama-sized layer.
SHAPES = [(512, 200, 48), (1000, 333, 40), (264, 97, 24), (4096, 4096, 512), (128, 8, 8)]


@pytest.mark.parametrize("m", [1, 3, 16, 17, 64, 300])
@pytest.mark.parametrize("k,n,r", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("path", ["fused", "dense"])
def test_cuda_matches_reference(m, k, n, r, dtype, bias, path, force_path, gen):
    force_path(path)
    v, u, b = make_weights(k, n, r, dtype, bias, gen)
    check(randn_with_outliers(m, k, dtype=dtype, generator=gen).cuda(), v, u, b)


@pytest.mark.parametrize("m", [2, 5, 8, 9, 16])
def test_cuda_every_row_count_instance(m, force_path, gen):
    # The kernel is instantiated for 1, 2, 4, 8 and 16 rows; counts in
    # between run the next one up with rows masked.
    force_path("fused")
    v, u, b = make_weights(384, 136, 64, torch.bfloat16, True, gen)
    check(randn_with_outliers(m, 384, dtype=torch.bfloat16, generator=gen).cuda(), v, u, b)


@pytest.mark.parametrize("k,n,r", [(257, 64, 32), (256, 64, 37), (100, 50, 12)])
@pytest.mark.parametrize("m", [1, 16])
def test_cuda_fallback_shapes(k, n, r, m, force_path, gen):
    # K or r not a multiple of 8: the fused kernel refuses, cuBLAS serves,
    # even when the fused path is asked for.
    force_path("fused")
    v, u, b = make_weights(k, n, r, torch.float16, True, gen)
    check(randn_with_outliers(m, k, dtype=torch.float16, generator=gen).cuda(), v, u, b)


def test_cuda_float32_takes_dense_path(gen):
    v, u, b = make_weights(256, 96, 32, torch.float32, True, gen)
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        check(randn_with_outliers(4, 256, generator=gen).cuda(), v, u, b)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev


@pytest.mark.parametrize("m", [4, 40])
@pytest.mark.parametrize("path", ["auto", "fused"])
def test_cuda_strided_and_batched_x(m, path, force_path, gen):
    if path != "auto":
        force_path(path)
    k, n, r = 256, 120, 64
    dtype = torch.bfloat16
    v, u, b = make_weights(k, n, r, dtype, True, gen)
    # Leading dims flatten to M rows.
    check(randn_with_outliers(2, m // 2, k, dtype=dtype, generator=gen).cuda(), v, u, b)
    wide = randn_with_outliers(m, 2 * k + 8, dtype=dtype, generator=gen).cuda()
    # Row stride 2k + 8: used in place.
    check(wide[:, :k], v, u, b)
    # Base one element in: rows not 16-byte aligned, copied for the kernel.
    check(wide[:, 1 : k + 1], v, u, b)
    # Transposed: unit stride along M.
    xt = randn_with_outliers(k, m, dtype=dtype, generator=gen).cuda().t()
    assert not xt.is_contiguous()
    check(xt, v, u, b)
    # A 1-D x is one row, as in F.linear.
    check(randn_with_outliers(k, dtype=dtype, generator=gen).cuda(), v, u, b)


def test_cuda_workspace_reused_across_calls(force_path, gen):
    # The fused kernel leaves its accumulator and counters zeroed for the next
    # call on the stream: shapes that grow, shrink and repeat must all be right.
    force_path("fused")
    dtype = torch.bfloat16
    for m, k, n, r in [(1, 512, 300, 64), (16, 512, 300, 64), (3, 256, 1000, 96), (1, 512, 300, 64)] * 2:
        v, u, b = make_weights(k, n, r, dtype, m % 2 == 1, gen)
        check(randn_with_outliers(m, k, dtype=dtype, generator=gen).cuda(), v, u, b)
    # And on a second stream, which gets a workspace of its own.
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        v, u, b = make_weights(512, 300, 64, dtype, True, gen)
        x = randn_with_outliers(5, 512, dtype=dtype, generator=gen).cuda()
        out = run(x, v, u, b)
    side.synchronize()
    assert rel_error(out, reference(x, v, u, b)) < TOL[dtype]


def test_cuda_repeated_calls_agree(force_path, gen):
    # Atomic accumulation reorders fp32 sums between runs; results may differ
    # by rounding only, and a leftover in the workspace would show here.
    force_path("fused")
    dtype = torch.float16
    v, u, b = make_weights(2048, 1024, 256, dtype, True, gen)
    x = randn_with_outliers(FUSED_MAX_M, 2048, dtype=dtype, generator=gen).cuda()
    first = run(x, v, u, b)
    for _ in range(5):
        assert rel_error(run(x, v, u, b), first) < 1e-3


def test_cuda_auto_path_at_m1(gen):
    # M = 1 on a layer the size of the measured one takes the fused kernel
    # by default.
    v, u, b = make_weights(4096, 4096, 512, torch.bfloat16, True, gen)
    check(randn_with_outliers(1, 4096, dtype=torch.bfloat16, generator=gen).cuda(), v, u, b)


def test_cuda_empty_m(gen):
    v, u, b = make_weights(64, 16, 8, torch.bfloat16, True, gen)
    out = torch.ops.slimops.lowrank_linear(torch.empty(2, 0, 64, dtype=torch.bfloat16, device="cuda"), v, u, b)
    assert out.shape == (2, 0, 16) and out.dtype == torch.bfloat16
