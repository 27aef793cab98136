"""2:4 sparsity: pruning and the compressed format (exact round trips), the
op slimops.sparse24_gemm on every CPU path and CUDA against the reference
(dense matmul with the pruned weight), opcheck, bad inputs, and the module
Sparse24Linear (from_linear, dequantize, .to(), state_dict, compress)."""

import pytest
import torch

import slimops
from slimops import reference
from slimops.formats import sparse24, sparse24_cuda
from slimops.testing import randn_with_outliers, rel_error

from conftest import IS_HOPPER, TOL, requires_cuda, requires_hopper

# (K, N): odd N and K = 8 * odd exercise every tail on the CPU (56, 80, 104:
# 3, 1 and 2 blocks of 16 columns left after the AVX-512 64-column steps);
# the CUDA kernel needs N % 16 == 0 and K % 64 == 0.
CPU_SHAPES = [(264, 37), (64, 1), (1024, 130), (8, 3), (56, 4), (80, 9), (104, 5)]
CUDA_SHAPES = [(64, 16), (192, 208), (4096, 528), (448, 1040)]


def pruned_weight(n, k, gen, dtype=torch.float32, device="cpu"):
    w = randn_with_outliers(n, k, generator=gen)
    return slimops.prune_2_4(w)[0].to(dtype).to(device)


def test_prune_keeps_two_largest_per_group(gen):
    w = randn_with_outliers(13, 64, generator=gen)
    pruned, mask = slimops.prune_2_4(w)
    assert mask.reshape(13, 16, 4).sum(-1).eq(2).all()
    kept = w.abs().reshape(13, 16, 4)
    top2 = kept.topk(2, dim=-1).values.sum(-1)
    assert torch.allclose((pruned.abs().reshape(13, 16, 4)).sum(-1), top2)
    assert sparse24.is_2_4(pruned)
    scores = torch.rand(13, 64, generator=gen)
    _, m2 = slimops.prune_2_4(w, scores)
    assert torch.equal(m2, slimops.prune_2_4(scores)[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_compress_round_trip_is_exact(dtype, gen):
    w = pruned_weight(37, 264, gen, dtype)
    w[3, :4] = 0  # a group with no non-zero
    w[5, 8:12] = torch.tensor([0, 0, 0, 1.5])  # and one with a single one
    c = sparse24.compress(w)
    assert c.values.shape == (37, 132) and c.meta.shape == (37, 33) and c.meta.dtype == torch.uint8
    assert torch.equal(sparse24.decompress(c.values, c.meta), w)


@pytest.mark.parametrize("bits", [16, 4])
def test_cuda_layout_round_trip_is_exact(bits, gen):
    c = sparse24.compress(pruned_weight(48, 256, gen, torch.bfloat16))
    values = c.values if bits == 16 else sparse24.quantize_kept_int4(c.values, 128)[0]
    v2, m2 = sparse24_cuda.to_cuda_layout(values, c.meta, bits)
    assert v2.shape == values.shape and m2.shape == c.meta.shape
    v3, m3 = sparse24_cuda.from_cuda_layout(v2, m2, bits)
    assert torch.equal(v3, values) and torch.equal(m3, c.meta)


def test_compress_rejects_dense_weight():
    with pytest.raises(ValueError, match=r"not 2:4 sparse: row 0, columns 0..3"):
        sparse24.compress(torch.ones(2, 8))
    with pytest.raises(ValueError, match=r"K divisible by 8"):
        sparse24.compress(torch.zeros(2, 12))


def op_inputs(k, n, m, dtype, bits, gen, device="cpu", bias=True):
    w = pruned_weight(n, k, gen, dtype)
    c = sparse24.compress(w)
    scales = None
    values = c.values
    if bits == 4:
        values, scales, _ = sparse24.quantize_kept_int4(c.values, 64)
    layout = 0
    if device == "cuda":
        values, meta = sparse24_cuda.to_cuda_layout(values, c.meta, bits)
        layout = 1
    else:
        meta = c.meta
    b = randn_with_outliers(n, generator=gen) if bias else None
    x = randn_with_outliers(m, k, dtype=dtype, generator=gen)
    to = lambda t: None if t is None else t.to(device)  # noqa: E731
    return to(x), dict(values=to(values), meta=to(meta), bias=to(b), scales=to(scales), bits=bits, group_size=64, layout=layout)


def int4_inputs_cuda_layout(k, n, m, gs, symmetric, dtype, gen, device="cuda"):
    """x and the op's keyword arguments for int4 kept values in the CUDA
    layout: groups of gs dense columns, fractional zero points (as imported
    checkpoints carry) unless symmetric, a bias."""
    c = sparse24.compress(pruned_weight(n, k, gen, dtype))
    q, scales, zeros = sparse24.quantize_kept_int4(c.values, gs, symmetric=symmetric)
    if zeros is not None:
        zeros = zeros + 0.375
    values, meta = sparse24_cuda.to_cuda_layout(q, c.meta, 4)
    to = lambda t: None if t is None else t.to(device)  # noqa: E731
    kw = dict(values=to(values), meta=to(meta), scales=to(scales), zeros=to(zeros),
              bias=to(randn_with_outliers(n, generator=gen)), bits=4, group_size=gs, layout=1)
    return to(randn_with_outliers(m, k, dtype=dtype, generator=gen)), kw


@pytest.mark.parametrize("k,n", CPU_SHAPES)
@pytest.mark.parametrize("m", [1, 3, 8, 17, 40])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_matches_reference(cpu_isa, k, n, m, dtype, gen):
    x, kw = op_inputs(k, n, m, dtype, 16, gen)
    out = slimops.sparse24_gemm(x, **kw)
    assert out.shape == (m, n) and out.dtype == dtype
    assert rel_error(out, reference.sparse24_gemm(x, **kw)) < TOL[dtype]


@pytest.mark.skipif(not slimops._C.cpu_has_avx512_bf16(), reason="needs AVX-512 BF16 (vdpbf16ps)")
@pytest.mark.parametrize("k,n", [(72, 5), (264, 37), (4104, 130)])  # 18, 66, 1026 groups: tiles of 32 and tails
@pytest.mark.parametrize("m", [8, 16, 17, 40])
@pytest.mark.parametrize("bias", [True, False])
def test_cpu_bf16_pair_kernel_matches_reference(k, n, m, bias, gen):
    """The automatic choice's vdpbf16ps kernel (bf16 x and kept values, M >= 8),
    against the reference and against the forced float path."""
    x, kw = op_inputs(k, n, m, torch.bfloat16, 16, gen, bias=bias)
    slimops._C.reset_cpu_isa()
    out = slimops.sparse24_gemm(x, **kw)
    assert rel_error(out, reference.sparse24_gemm(x, **kw)) < TOL[torch.bfloat16]
    try:
        slimops._C.set_cpu_isa("avx512_vnni")
        assert rel_error(out, slimops.sparse24_gemm(x, **kw)) < TOL[torch.bfloat16]
    finally:
        slimops._C.reset_cpu_isa()


@pytest.mark.parametrize("m", [1, 5, 20])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_int4_matches_reference(m, dtype, gen):
    x, kw = op_inputs(256, 24, m, dtype, 4, gen)
    assert rel_error(slimops.sparse24_gemm(x, **kw), reference.sparse24_gemm(x, **kw)) < TOL[dtype]


def test_batched_strided_and_empty(gen):
    x, kw = op_inputs(64, 10, 6, torch.float32, 16, gen)
    x3 = x.reshape(2, 3, 64)
    torch.testing.assert_close(slimops.sparse24_gemm(x3, **kw), reference.sparse24_gemm(x3, **kw), rtol=1e-4, atol=1e-5)
    wide = randn_with_outliers(4, 128, generator=gen)[:, 64:]
    torch.testing.assert_close(slimops.sparse24_gemm(wide, **kw), reference.sparse24_gemm(wide, **kw), rtol=1e-4, atol=1e-5)
    assert slimops.sparse24_gemm(torch.empty(0, 64), **kw).shape == (0, 10)


@requires_cuda
@pytest.mark.parametrize("k,n", CUDA_SHAPES)
@pytest.mark.parametrize("m", [1, 2, 5, 16, 17, 64, 100, 300, 1030])  # 1030: decompress + cuBLAS
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bits", [16, 4])
def test_cuda_matches_reference(k, n, m, dtype, bits, gen):
    x, kw = op_inputs(k, n, m, dtype, bits, gen, device="cuda", bias=m % 2 == 1)
    out = slimops.sparse24_gemm(x, **kw)
    assert rel_error(out, reference.sparse24_gemm(x, **kw)) < TOL[dtype]


# The mma.sp kernel's int4 tiles at M <= 8 (sparse24_dispatch.cuh): the
# default (TileS4One) and the experiments SLIMOPS_S24_SMALL_TILE forces: one
# 8-token tile, 3 or 4 blocks per SM, 256-row blocks, scales applied after
# the mma, TileS4; N tails inside a block, split-K, zero points (which the
# post-scaled tiles leave to the scaled path), a partial last stage (K = 1152).
@requires_cuda
@pytest.mark.parametrize("k,n", [(512, 16), (4096, 528), (1152, 1040)])
@pytest.mark.parametrize("m", [1, 3, 8, 12, 16])  # M > 8: the default (TileS4, post-scaled) or 6
@pytest.mark.parametrize("tile", ["0", "1", "2", "3", "5", "6"])
@pytest.mark.parametrize("gs,symmetric", [(64, True), (128, True), (128, False)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_small_m_int4_tiles(k, n, m, tile, gs, symmetric, dtype, gen, monkeypatch):
    monkeypatch.setenv("SLIMOPS_CUDA_SPARSE24", "mma")
    monkeypatch.setenv("SLIMOPS_S24_SMALL_TILE", tile)
    x, kw = int4_inputs_cuda_layout(k, n, m, gs, symmetric, dtype, gen)
    out = slimops.sparse24_gemm(x, **kw)
    assert rel_error(out, reference.sparse24_gemm(x, **kw)) < TOL[dtype]
    assert torch.equal(slimops.sparse24_gemm(x, **kw), out)  # split-K sums in a fixed order


# The experiment at M = 17..64 (SLIMOPS_S24_SMALL_TILE=7): TileM's 128 x 64
# tile in 8 warps, post-scaled with planned copies (its 256-thread scale
# copies are what ptxas 13.0 once miscompiled); zero points take the scaled
# path.
@requires_cuda
@pytest.mark.parametrize("k,n", [(512, 16), (4096, 528), (1152, 1040)])
@pytest.mark.parametrize("m", [17, 40, 64])
@pytest.mark.parametrize("gs,symmetric", [(64, True), (128, True), (128, False)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_medium_m_int4_post_scaled_tile(k, n, m, gs, symmetric, dtype, gen, monkeypatch):
    test_cuda_small_m_int4_tiles(k, n, m, "7", gs, symmetric, dtype, gen, monkeypatch)


# The Hopper kernel (sparse24_wgmma.cu) forced at every M, with the token
# tile and cluster M picks or forced ones: N tails inside a 128-row block
# (N = 208, 1040) and past a cluster's rows (blocks with no W rows), split-K
# (small M on few tiles), token tails.
WGMMA_SHAPES = [(64, 16), (192, 208), (4096, 528), (448, 1040), (1024, 128)]
# (SLIMOPS_S24_WGMMA_BT, SLIMOPS_S24_WGMMA_CLUSTER)
WGMMA_TILES = [(None, None), ("64", "1"), ("64", "2"), ("64", "4"), ("128", "1"), ("256", "1"), ("256", "2"), ("256", "4")]


@requires_hopper
@pytest.mark.parametrize("k,n", WGMMA_SHAPES)
@pytest.mark.parametrize("m", [1, 7, 64, 65, 200, 300, 1030])
@pytest.mark.parametrize("tile,cluster", WGMMA_TILES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_wgmma_tiles_tails_and_split_k(k, n, m, tile, cluster, dtype, gen, monkeypatch):
    monkeypatch.setenv("SLIMOPS_CUDA_SPARSE24", "wgmma")
    if tile is not None:
        monkeypatch.setenv("SLIMOPS_S24_WGMMA_BT", tile)
        monkeypatch.setenv("SLIMOPS_S24_WGMMA_CLUSTER", cluster)
    x, kw = op_inputs(k, n, m, dtype, 16, gen, device="cuda", bias=m % 2 == 1)
    out = slimops.sparse24_gemm(x, **kw)
    assert rel_error(out, reference.sparse24_gemm(x, **kw)) < TOL[dtype]
    assert torch.equal(slimops.sparse24_gemm(x, **kw), out)  # split-K sums in a fixed order


# int4 kept values on the Hopper kernel: groups of 64 or 128 (a multiple of 4
# per row, the copy engine's boxes of scales), with and without fractional
# zero points.
WGMMA_INT4_SHAPES = [(512, 16), (4096, 528), (1024, 1040), (2048, 208)]


@requires_hopper
@pytest.mark.parametrize("k,n", WGMMA_INT4_SHAPES)
@pytest.mark.parametrize("m", [1, 65, 300, 1030])
@pytest.mark.parametrize("tile,cluster", WGMMA_TILES)
@pytest.mark.parametrize("gs,symmetric", [(64, True), (128, False)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_wgmma_int4(k, n, m, tile, cluster, gs, symmetric, dtype, gen, monkeypatch):
    monkeypatch.setenv("SLIMOPS_CUDA_SPARSE24", "wgmma")
    if tile is not None:
        monkeypatch.setenv("SLIMOPS_S24_WGMMA_BT", tile)
        monkeypatch.setenv("SLIMOPS_S24_WGMMA_CLUSTER", cluster)
    x, kw = int4_inputs_cuda_layout(k, n, m, gs, symmetric, dtype, gen)
    out = slimops.sparse24_gemm(x, **kw)
    assert rel_error(out, reference.sparse24_gemm(x, **kw)) < TOL[dtype]


# Split counts the plan would not pick (SLIMOPS_S24_SPLITS): 1 on few tiles,
# odd counts whose last split is short (K = 4352: 68 stages of 64 k), and
# more splits than the plan allows (clamped).
@requires_cuda
@pytest.mark.parametrize("path", ["mma", "wgmma"])
@pytest.mark.parametrize("splits", ["1", "3", "7", "99"])
@pytest.mark.parametrize("bits", [16, 4])
@pytest.mark.parametrize("m", [5, 64, 300])
def test_cuda_forced_splits_match_reference(path, splits, bits, m, gen, monkeypatch):
    if path == "wgmma" and not IS_HOPPER:
        pytest.skip("the wgmma kernel needs a compute capability 9.x GPU")
    monkeypatch.setenv("SLIMOPS_CUDA_SPARSE24", path)
    monkeypatch.setenv("SLIMOPS_S24_SPLITS", splits)
    dtype = torch.bfloat16
    if bits == 4:
        x, kw = int4_inputs_cuda_layout(4352, 272, m, 64, False, dtype, gen)
    else:
        x, kw = op_inputs(4352, 272, m, dtype, 16, gen, device="cuda", bias=True)
    out = slimops.sparse24_gemm(x, **kw)
    assert rel_error(out, reference.sparse24_gemm(x, **kw)) < TOL[dtype]
    assert torch.equal(slimops.sparse24_gemm(x, **kw), out)  # split-K sums in a fixed order


@requires_hopper
def test_cuda_wgmma_strided_and_batched_x(gen, monkeypatch):
    monkeypatch.setenv("SLIMOPS_CUDA_SPARSE24", "wgmma")
    x, kw = op_inputs(256, 144, 70, torch.bfloat16, 16, gen, device="cuda")
    wide = randn_with_outliers(70, 512, dtype=torch.bfloat16, generator=gen).cuda()[:, 256:]
    assert rel_error(slimops.sparse24_gemm(wide, **kw), reference.sparse24_gemm(wide, **kw)) < TOL[torch.bfloat16]
    x3 = randn_with_outliers(3, 50, 256, dtype=torch.bfloat16, generator=gen).cuda()
    assert rel_error(slimops.sparse24_gemm(x3, **kw), reference.sparse24_gemm(x3, **kw)) < TOL[torch.bfloat16]


@requires_cuda
def test_cuda_forced_path_that_does_not_apply_is_an_error(gen, monkeypatch):
    x, kw = op_inputs(128, 32, 70, torch.bfloat16, 4, gen, device="cuda")
    monkeypatch.setenv("SLIMOPS_CUDA_SPARSE24", "wgmma")  # int4, 2 groups a row: the wgmma kernel does not apply
    with pytest.raises(RuntimeError, match="does not apply"):
        slimops.sparse24_gemm(x, **kw)
    monkeypatch.setenv("SLIMOPS_CUDA_SPARSE24", "fastest")
    with pytest.raises(RuntimeError, match="must be auto"):
        slimops.sparse24_gemm(x, **kw)


@pytest.mark.parametrize(
    "device,dtype,bits",
    [
        ("cpu", torch.float32, 16),
        ("cpu", torch.bfloat16, 4),
        pytest.param("cuda", torch.bfloat16, 16, marks=requires_cuda),
        pytest.param("cuda", torch.float16, 4, marks=requires_cuda),
    ],
)
def test_opcheck_sparse24_gemm(device, dtype, bits, gen):
    x, kw = op_inputs(128, 32, 3, dtype, bits, gen, device=device)
    args = (x, kw["values"], kw["meta"], kw["scales"], None, kw["bias"], bits, 64 if bits == 4 else 0, kw["layout"])
    torch.library.opcheck(torch.ops.slimops.sparse24_gemm.default, args)


BAD = [
    (dict(bits=8), r"bits must be 16 .* or 4"),
    (dict(layout=2), r"layout must be 0 \(canonical\) or 1 \(CUDA\)"),
    (dict(layout=1), r"the CPU kernels read the canonical layout"),
    (dict(x=torch.randn(3, 120)), r"x's last dimension must equal K = 128"),
    (dict(x=torch.randn(3, 128, dtype=torch.float64)), r"x must be float32, float16 or bfloat16"),
    (dict(values=torch.zeros(32, 64, dtype=torch.bfloat16)), r"values must have x's dtype"),
    (dict(values=torch.zeros(32, 60)), r"values must be \[N, K/2\] = \[32, 64\]"),
    (dict(meta=torch.zeros(32, 16, dtype=torch.int32)), r"meta must be uint8 \[N, K/8\]"),
    (dict(bias=torch.zeros(31)), r"bias must be a float \[N\] = \[32\]"),
    (dict(scales=torch.ones(32, 2)), r"scales and zeros are for bits = 4 only"),
    (dict(values=torch.zeros(64, 32).t()), r"values must be contiguous"),
]


@pytest.mark.parametrize("change,match", BAD)
def test_bad_arguments(change, match, gen):
    x, kw = op_inputs(128, 32, 3, torch.float32, 16, gen)
    x = change.pop("x", x)
    kw.update(change)
    with pytest.raises(RuntimeError, match=match):
        slimops.sparse24_gemm(x, **kw)


def test_bad_int4_arguments(gen):
    x, kw = op_inputs(256, 32, 3, torch.float32, 4, gen)
    for change, match in (
        (dict(scales=None), r"bits = 4 needs scales"),
        (dict(group_size=96), r"group_size must be a multiple of 64"),
        (dict(scales=torch.ones(32, 3)), r"scales must be float32 \[N, K/group_size\] = \[32, 4\]"),
        (dict(values=torch.zeros(32, 128, dtype=torch.uint8)), r"values must be \[N, K/4\] = \[32, 64\]"),
    ):
        with pytest.raises(RuntimeError, match=match):
            slimops.sparse24_gemm(x, **{**kw, **change})


# --- the module ------------------------------------------------------------


@pytest.mark.parametrize("bits", [16, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_module_from_linear(bits, dtype, gen):
    lin = torch.nn.Linear(256, 48).to(dtype)
    layer = slimops.Sparse24Linear.from_linear(lin, bits=bits, group_size=128)
    w = layer.dequantize()
    assert w.shape == (48, 256) and w.dtype == dtype and sparse24.is_2_4(w)
    if bits == 16:
        assert torch.equal(w, slimops.prune_2_4(lin.weight.detach())[0])
    x = randn_with_outliers(5, 256, dtype=dtype, generator=gen)
    ref = torch.nn.functional.linear(x.float(), w.float(), lin.bias.float()).to(dtype)
    assert rel_error(layer(x), ref) < TOL[dtype]


def test_module_prune_false_requires_2_4():
    lin = torch.nn.Linear(64, 16)
    with pytest.raises(ValueError, match=r"not 2:4 sparse .* pass prune=True"):
        slimops.Sparse24Linear.from_linear(lin, prune=False)
    with torch.no_grad():
        lin.weight.copy_(slimops.prune_2_4(lin.weight)[0])
    layer = slimops.Sparse24Linear.from_linear(lin, prune=False)
    assert torch.equal(layer.dequantize(), lin.weight.detach())


def test_module_state_dict_round_trip(gen):
    lin = torch.nn.Linear(128, 32).to(torch.bfloat16)
    for bits in (16, 4):
        a = slimops.Sparse24Linear.from_linear(lin, bits=bits, group_size=64)
        b = slimops.Sparse24Linear(128, 32, bits=bits, group_size=64, dtype=torch.bfloat16)
        b.load_state_dict(a.state_dict())
        x = randn_with_outliers(3, 128, dtype=torch.bfloat16, generator=gen)
        assert torch.equal(a(x), b(x))


def test_compress_recipes_and_save_load(tmp_path, gen):
    model = torch.nn.Sequential(torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32))
    x = randn_with_outliers(4, 128, generator=gen)
    for recipe, bits in (("2:4", 16), ("int4+2:4-g64", 4)):
        m = slimops.compress(torch.nn.Sequential(*[torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32)]), recipe)
        assert all(isinstance(m[i], slimops.Sparse24Linear) and m[i].bits == bits for i in (0, 2))
    m = slimops.compress(model, "2:4")
    path = tmp_path / "m.safetensors"
    slimops.save(m, path)
    fresh = torch.nn.Sequential(torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32))
    loaded = slimops.load(fresh, path)
    assert torch.equal(loaded(x), m(x))
    with pytest.raises(ValueError, match=r"unknown recipe"):
        slimops.compress(model, "3:4")


@requires_cuda
@pytest.mark.parametrize("bits", [16, 4])
def test_module_to_cuda_relayouts_and_back(bits, gen):
    lin = torch.nn.Linear(256, 64).to(torch.bfloat16)
    layer = slimops.Sparse24Linear.from_linear(lin, bits=bits)
    cpu_values = layer.values.clone()
    x = randn_with_outliers(3, 256, dtype=torch.bfloat16, generator=gen)
    ref = layer(x)
    layer.cuda()
    assert layer.cuda_layout and not torch.equal(layer.values.cpu(), cpu_values)
    assert rel_error(layer(x.cuda()).cpu(), ref) < TOL[torch.bfloat16]
    sd = layer.state_dict()
    assert torch.equal(sd["values"].cpu(), cpu_values)  # canonical order in the state dict
    layer.cpu()
    assert not layer.cuda_layout and torch.equal(layer.values, cpu_values)


@requires_cuda
def test_module_large_m_cuda_runs_the_op(gen):
    """Large M runs on the op (the Hopper wgmma.sp kernel there), with no
    second copy of the weight."""
    lin = torch.nn.Linear(512, 256).to(torch.bfloat16).cuda()
    layer = slimops.Sparse24Linear.from_linear(lin)
    x = randn_with_outliers(4099, 512, dtype=torch.bfloat16, generator=gen).cuda()
    ref = torch.nn.functional.linear(x.float(), layer.dequantize().float(), lin.bias.float())
    assert rel_error(layer(x), ref) < TOL[torch.bfloat16]
    assert {name for name, _ in layer.named_buffers()} == {"values", "meta", "bias"}
