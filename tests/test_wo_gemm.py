"""slimops.wo_gemm against the float32 reference, on every backend and CPU path."""

import pytest
import torch

import slimops
from slimops import reference
from slimops.formats import quantize
from slimops.testing import randn_with_outliers, rel_error

from conftest import TOL, requires_cuda, requires_hopper

# The AVX2 integer path quantises float32 activations to int16 per block
# (csrc/cpu/x_int16.cpp): ~1e-4 relative on these outlier-heavy inputs, so
# float32 gets a documented 1e-3 there; bf16/fp16 keep design.md's bounds.
INT16_PATH_TOL_FP32 = 1e-3


def tol(dtype, device="cpu"):
    if dtype == torch.float32 and device == "cpu" and slimops._C.selected_cpu_isa() != "scalar":
        return INT16_PATH_TOL_FP32
    return TOL[dtype]

# (bits, K, N, group_size): odd N everywhere, K not a power of two, every
# group size. int4 needs K and groups divisible by 32.
SHAPES = [
    (8, 96, 37, 32),
    (8, 192, 101, 64),
    (8, 384, 65, 128),
    (8, 257, 33, -1),  # odd K, per-channel: the exact float path
    (8, 1000, 64, -1),
    (8, 520, 24, 8),  # K not a multiple of 16: vector tails on CUDA, groups of 8
    (4, 96, 37, 32),
    (4, 192, 101, 64),
    (4, 384, 65, 128),
    (4, 416, 33, -1),  # per-channel, K = 13 blocks of 32
    (4, 640, 24, 160),  # a group of 5 blocks
    (4, 2304, 40, 128),  # K over the CPU GEMM's 1024-wide K chunks: partial sums accumulate
    (8, 2112, 24, 64),
]
MS = [1, 3, 16, 100]


class Problem:
    """A quantised layer: weights, scales, zero points (asymmetric) and bias."""

    def __init__(self, bits, k, n, gs, gen, device="cpu", bias=True, symmetric=True):
        w = randn_with_outliers(n, k, generator=gen) * 0.05
        qw = quantize(w, bits, gs, symmetric)
        self.bits, self.gs = bits, gs
        self.q, self.s = qw.qweight.to(device), qw.scales.to(device)
        self.z = None if qw.zeros is None else qw.zeros.to(device)
        self.b = randn_with_outliers(n, generator=gen).to(device) if bias else None

    def run(self, x):
        return slimops.wo_gemm(x, self.q, self.s, self.b, zeros=self.z, bits=self.bits, group_size=self.gs)

    def reference(self, x):
        b = None if self.b is None else self.b.cpu()
        z = None if self.z is None else self.z.cpu()
        return reference.wo_gemm(x.float().cpu(), self.q.cpu(), self.s.cpu(), z, b, self.bits, self.gs)


def check(prob, x):
    out = prob.run(x)
    assert out.shape == (*x.shape[:-1], prob.q.shape[0])
    assert out.dtype == x.dtype and out.device == x.device
    assert torch.isfinite(out).all()
    err = rel_error(out.cpu(), prob.reference(x))
    bound = tol(x.dtype, x.device.type)
    assert err < bound, f"relative error {err:.2e} over {bound:.0e}"
    return out


@pytest.mark.parametrize("bits,k,n,gs", SHAPES)
@pytest.mark.parametrize("m", MS + [4, 12, 21])  # 4, 12: panel thresholds; 21: the panel tiles (8/6, 4, 1 rows)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("symmetric", [True, False])
def test_cpu_matches_reference(cpu_isa, bits, k, n, gs, m, dtype, symmetric, gen):
    prob = Problem(bits, k, n, gs, gen, bias=m != 3, symmetric=symmetric)
    check(prob, randn_with_outliers(m, k, dtype=dtype, generator=gen))


@pytest.mark.parametrize("bits,k,gs,symmetric", [(8, 520, 8, True), (8, 512, 64, False), (4, 512, 128, True), (4, 384, 32, False)])
@pytest.mark.parametrize("m", [3, 19])  # GEMV tiles; panel GEMM
def test_cpu_isa_paths_agree(bits, k, gs, symmetric, m, gen):
    """Every vector path against the scalar one on the same inputs."""
    prob = Problem(bits, k, 77, gs, gen, symmetric=symmetric)
    x = randn_with_outliers(m, k, generator=gen)
    before, forced = slimops._C.selected_cpu_isa(), slimops._C.cpu_isa_forced()
    try:
        slimops._C.set_cpu_isa("scalar")
        base = prob.run(x)
        for isa in slimops._C.available_cpu_isas():
            slimops._C.set_cpu_isa(isa)
            assert rel_error(prob.run(x), base) < INT16_PATH_TOL_FP32, isa
    finally:
        slimops._C.set_cpu_isa(before) if forced else slimops._C.reset_cpu_isa()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_cuda)])
@pytest.mark.parametrize("bits", [8, 4])
def test_batched_and_noncontiguous(device, bits, gen):
    k, n, gs = 256, 48, 64
    prob = Problem(bits, k, n, gs, gen, device)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    check(prob, randn_with_outliers(2, 3, 5, k, dtype=dtype, generator=gen).to(device))
    # Column slice: rows are not contiguous (row stride 2k).
    wide = randn_with_outliers(7, 2 * k, dtype=dtype, generator=gen).to(device)
    check(prob, wide[:, :k])
    # Transposed view: unit stride along M, not K.
    xt = randn_with_outliers(k, 6, dtype=dtype, generator=gen).to(device).t()
    assert not xt.is_contiguous()
    check(prob, xt)
    # A 1-D x is one row, as in F.linear.
    check(prob, randn_with_outliers(k, dtype=dtype, generator=gen).to(device))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_cuda)])
def test_empty_m_returns_empty(device, gen):
    prob = Problem(8, 64, 16, -1, gen, device)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    out = prob.run(torch.empty(0, 64, dtype=dtype, device=device))
    assert out.shape == (0, 16) and out.dtype == dtype
    out = prob.run(torch.empty(2, 0, 64, dtype=dtype, device=device))
    assert out.shape == (2, 0, 16)


@requires_cuda
@pytest.mark.parametrize("bits,k,n,gs", SHAPES)
@pytest.mark.parametrize("m", MS + [5, 8, 1000])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("symmetric", [True, False])
def test_cuda_matches_reference(bits, k, n, gs, m, dtype, symmetric, gen):
    prob = Problem(bits, k, n, gs, gen, "cuda", bias=m != 3, symmetric=symmetric)
    x = randn_with_outliers(m, k, dtype=dtype, generator=gen).cuda()
    # Poison the memory the output will most likely reuse, so an element the
    # kernel never writes shows up as NaN rather than as a stale right value.
    torch.full((m, n), float("nan"), dtype=dtype, device="cuda")
    check(prob, x)


@requires_cuda
def test_cuda_very_large_m(gen):
    """M beyond the 65535 * 4 rows one grid of the fused kernel covers."""
    prob = Problem(8, 32, 8, -1, gen, "cuda")
    check(prob, randn_with_outliers(65535 * 4 + 9, 32, dtype=torch.bfloat16, generator=gen).cuda())


# The tensor-core kernel (csrc/cuda/wo_gemm/wo_gemm_mma.cu) serves M up to 128
# in the CUDA binding (int8 from M = 2: M = 1 runs the GEMV; M = 255 runs
# dequantise + cuBLAS, as controls). Its tiles are 8, 16, 32 or 64 rows by 128
# columns, 128 (int4) or 64 (int8) k per pipeline stage; long K over few
# output tiles is split across blocks.
# (bits, K, N, group_size):
MMA_SHAPES = [
    (4, 4096, 200, 128),  # 32 stages over 2 column tiles: split-K; N tail
    (4, 2048, 328, 32),  # a scale per 32-weight chunk
    (4, 1440, 136, 160),  # groups straddle stages; last stage partly past K
    (4, 1024, 72, -1),  # per-channel
    (8, 4096, 260, 128),  # int8 split-K, N tail
    (8, 1040, 72, 16),  # groups of 16; last stage partly past K
    (8, 3072, 130, -1),
]
MMA_MS = [1, 3, 8, 9, 16, 17, 33, 64, 100, 128, 255]


@requires_cuda
@pytest.mark.parametrize("bits,k,n,gs", MMA_SHAPES)
@pytest.mark.parametrize("m", MMA_MS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("symmetric", [True, False])
def test_cuda_tensor_core_tails_and_split_k(bits, k, n, gs, m, dtype, symmetric, gen):
    prob = Problem(bits, k, n, gs, gen, "cuda", bias=m % 2 == 1, symmetric=symmetric)
    if prob.z is not None:
        # Imported checkpoints carry non-integral zero points.
        prob.z = prob.z + 0.375
    x = randn_with_outliers(m, k, dtype=dtype, generator=gen).cuda()
    torch.full((m, n), float("nan"), dtype=dtype, device="cuda")
    out = check(prob, x)
    # Split-K partials are summed in split order, whichever block finishes
    # last: the same inputs give the same bits.
    assert torch.equal(prob.run(x), out)


@requires_cuda
@pytest.mark.parametrize("bits", [8, 4])
def test_cuda_tensor_core_strided_x(bits, gen):
    """Rows of x 2K apart (a column slice) and a batched leading shape."""
    k, n, gs = 1024, 136, 64
    prob = Problem(bits, k, n, gs, gen, "cuda")
    wide = randn_with_outliers(40, 2 * k, dtype=torch.bfloat16, generator=gen).cuda()
    check(prob, wide[:, k:])
    check(prob, randn_with_outliers(3, 25, k, dtype=torch.float16, generator=gen).cuda())


# The Hopper kernel (csrc/cuda/wo_gemm/wo_gemm_wgmma.cu) serves medium and
# large M on 9.x GPUs; here it is forced (SLIMOPS_CUDA_WO_GEMM=wgmma) at every
# M, with the x tile M picks or a forced one (SLIMOPS_WGMMA_BM). K % 64 == 0;
# N tails, split-K, groups of 32 to per-channel, groups straddling stages, a
# last stage half past K.
# (bits, K, N, group_size):
WGMMA_SHAPES = [
    (4, 4096, 200, 128),  # split-K, N tail
    (4, 2048, 328, 32),  # four scales per stage
    (4, 640, 24, 160),  # groups straddle stages
    (4, 1536, 136, 192),  # a group spans stages
    (4, 1024, 72, -1),
    (8, 4096, 260, 128),
    (8, 1024, 72, 32),
    (8, 1088, 130, -1),  # K % 128 == 64: the last 128-k stage is half past K
]


@requires_hopper
@pytest.mark.parametrize("bits,k,n,gs", WGMMA_SHAPES)
@pytest.mark.parametrize("m", [1, 3, 17, 64, 65, 200, 1000])
@pytest.mark.parametrize("tile", ["auto", "64", "256"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("symmetric", [True, False])
def test_cuda_wgmma_tiles_tails_and_split_k(bits, k, n, gs, m, tile, dtype, symmetric, gen, monkeypatch):
    monkeypatch.setenv("SLIMOPS_CUDA_WO_GEMM", "wgmma")
    if tile != "auto":
        monkeypatch.setenv("SLIMOPS_WGMMA_BM", tile)
    prob = Problem(bits, k, n, gs, gen, "cuda", bias=m % 2 == 1, symmetric=symmetric)
    if prob.z is not None:
        prob.z = prob.z + 0.375  # non-integral zero points, as imported checkpoints carry
    x = randn_with_outliers(m, k, dtype=dtype, generator=gen).cuda()
    torch.full((m, n), float("nan"), dtype=dtype, device="cuda")
    out = check(prob, x)
    assert torch.equal(prob.run(x), out)


@requires_hopper
def test_cuda_wgmma_strided_and_batched_x(gen, monkeypatch):
    monkeypatch.setenv("SLIMOPS_CUDA_WO_GEMM", "wgmma")
    k, n, gs = 1024, 136, 64
    for bits in (4, 8):
        prob = Problem(bits, k, n, gs, gen, "cuda")
        wide = randn_with_outliers(70, 2 * k, dtype=torch.bfloat16, generator=gen).cuda()
        check(prob, wide[:, k:])
        check(prob, randn_with_outliers(3, 25, k, dtype=torch.float16, generator=gen).cuda())


@requires_cuda
@pytest.mark.parametrize("path", ["mma", "wgmma"])
def test_cuda_split_k_counters_stay_zeroed_per_stream(path, gen, monkeypatch):
    """Split-K launches count their splits on counters each stream keeps
    zeroed (no memset per launch; the last split resets its tile's): calls
    alternating between streams and paths all sum every split."""
    if path == "wgmma" and torch.cuda.get_device_capability()[0] != 9:
        pytest.skip("the wgmma kernel needs a compute capability 9.x GPU")
    monkeypatch.setenv("SLIMOPS_CUDA_WO_GEMM", path)
    prob = Problem(4, 4096, 520, 128, gen, "cuda")
    x = randn_with_outliers(40, 4096, dtype=torch.bfloat16, generator=gen).cuda()
    want = check(prob, x)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    outs = []
    for i in range(6):
        with torch.cuda.stream(side if i % 2 else torch.cuda.current_stream()):
            outs.append(prob.run(x))
    torch.cuda.synchronize()
    assert all(torch.equal(o, want) for o in outs)


@requires_cuda
@pytest.mark.parametrize("bits,k,n,gs", SHAPES)
@pytest.mark.parametrize("m", [1, 17])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("symmetric", [True, False])
def test_cuda_dense_path_matches_reference(bits, k, n, gs, m, dtype, symmetric, gen, monkeypatch):
    """Dequantise + cuBLAS forced at small M: the dequantisation kernel's
    row path (K and groups divisible by 8) and its any-shape path (K = 257)."""
    monkeypatch.setenv("SLIMOPS_CUDA_WO_GEMM", "dense")
    prob = Problem(bits, k, n, gs, gen, "cuda", bias=m == 1, symmetric=symmetric)
    check(prob, randn_with_outliers(m, k, dtype=dtype, generator=gen).cuda())


@requires_cuda
@pytest.mark.parametrize("path", ["mma", "wgmma"])
@pytest.mark.parametrize("splits", ["1", "3", "7", "99"])
@pytest.mark.parametrize("bits,gs", [(4, 128), (8, -1)])
@pytest.mark.parametrize("m", [5, 64, 300])
def test_cuda_forced_splits_match_reference(path, splits, bits, gs, m, gen, monkeypatch):
    """SLIMOPS_WO_SPLITS (the split plan's sweep knob) at counts the model
    would not pick, 99 clamped to the plan's maximum: every count sums right.
    SLIMOPS_WO_MIN_ITERS=1 lifts the plan's floor of stages per split, so
    K = 4096 int4 (32 stages of the mma.sync kernel) still runs 7 splits."""
    if path == "wgmma" and torch.cuda.get_device_capability()[0] != 9:
        pytest.skip("the wgmma kernel needs a compute capability 9.x GPU")
    if path == "mma" and m > 128:
        pytest.skip("the mma.sync kernel serves M <= 128")
    monkeypatch.setenv("SLIMOPS_CUDA_WO_GEMM", path)
    monkeypatch.setenv("SLIMOPS_WO_SPLITS", splits)
    monkeypatch.setenv("SLIMOPS_WO_MIN_ITERS", "1")
    prob = Problem(bits, 4096, 200, gs, gen, "cuda", bias=True)
    x = randn_with_outliers(m, 4096, dtype=torch.bfloat16, generator=gen).cuda()
    out = check(prob, x)
    assert torch.equal(prob.run(x), out)  # split-K sums in a fixed order


@requires_cuda
def test_cuda_forced_path_that_does_not_apply_is_an_error(gen, monkeypatch):
    monkeypatch.setenv("SLIMOPS_CUDA_WO_GEMM", "wgmma")
    prob = Problem(8, 96, 37, 32, gen, "cuda")  # K % 64 != 0: the wgmma kernel does not apply
    with pytest.raises(RuntimeError, match="does not apply"):
        prob.run(randn_with_outliers(4, 96, dtype=torch.bfloat16, generator=gen).cuda())
    monkeypatch.setenv("SLIMOPS_CUDA_WO_GEMM", "fastest")
    with pytest.raises(RuntimeError, match="must be auto"):
        prob.run(randn_with_outliers(4, 96, dtype=torch.bfloat16, generator=gen).cuda())


@requires_cuda
def test_cuda_misaligned_group_scales_take_another_path(gen):
    """Scales the copy engine cannot read (a view 4 bytes into its storage):
    the Hopper kernel does not apply, and M = 64 still gets the right answer."""
    prob = Problem(4, 1024, 136, 128, gen, "cuda")
    shifted = torch.empty(prob.s.numel() + 1, device="cuda")[1:].view_as(prob.s)
    shifted.copy_(prob.s)
    assert shifted.data_ptr() % 16 != 0
    prob.s = shifted
    check(prob, randn_with_outliers(64, 1024, dtype=torch.bfloat16, generator=gen).cuda())
