"""QuantLinear.from_gptq / from_awq against checkpoints packed here, in the
test, straight from the format descriptions (slimops/formats/gptq.py, awq.py),
with no code shared with the importers."""

import io

import pytest
import torch
from torch import nn

import slimops
from slimops.nn import QuantLinear
from slimops.testing import randn_with_outliers, rel_error

from conftest import TOL, requires_cuda

K = 256
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def cpu_tol(dtype):
    # float32 on the AVX2 integer path: see test_wo_gemm.INT16_PATH_TOL_FP32.
    if dtype == torch.float32 and slimops._C.selected_cpu_isa() != "scalar":
        return 1e-3
    return TOL[dtype]


def to_int32(words: torch.Tensor) -> torch.Tensor:
    """Unsigned 32-bit words held in int64 -> the int32 with the same bits."""
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def pack_gptq_rows(q: torch.Tensor, bits: int) -> torch.Tensor:
    """[R, C] -> int32 [R * bits / 32, C]: rows r*pf + i go to bits i*bits of word row r."""
    pf = 32 // bits
    words = torch.zeros(q.shape[0] // pf, q.shape[1], dtype=torch.int64)
    for i in range(pf):
        words |= q[i::pf].to(torch.int64) << (bits * i)
    return to_int32(words)


def pack_cols(q: torch.Tensor, bits: int, order) -> torch.Tensor:
    """[R, C] -> int32 [R, C * bits / 32]: value i of word c is column c*pf + order[i]."""
    pf = 32 // bits
    words = torch.zeros(q.shape[0], q.shape[1] // pf, dtype=torch.int64)
    for i in range(pf):
        words |= q[:, order[i] :: pf].to(torch.int64) << (bits * i)
    return to_int32(words)


def make_scales(g, n):
    return (torch.rand(g, n) * 0.02 + 0.001).to(torch.float16)


def make_gptq(k, n, bits, gs, act_order=False, symmetric=False, seed=0):
    """A GPTQ checkpoint's tensors and the float32 [N, K] weight its spec defines."""
    gen = torch.Generator().manual_seed(seed)
    gs_ = k if gs == -1 else gs
    g = k // gs_
    q = torch.randint(0, 2**bits, (k, n), generator=gen)
    q[0, 0], q[1, 0] = 0, 2**bits - 1  # the ends of the range
    if symmetric:
        zero = torch.full((g, n), 2 ** (bits - 1))
    else:
        # Real zeros 1 .. 2^bits: stored zero - 1 must fit in `bits` (0 cannot be stored).
        zero = torch.randint(1, 2**bits + 1, (g, n), generator=gen)
        zero[0, 0], zero[0, 1] = 1, 2**bits
    scales = make_scales(g, n)
    g_idx = torch.arange(k) // gs_
    if act_order:
        # AutoGPTQ desc_act: the i-th column in activation order goes to group i // gs.
        order = torch.randperm(k, generator=gen)
        g_idx = torch.empty_like(g_idx)
        g_idx[order] = torch.arange(k) // gs_
    g_idx = g_idx.to(torch.int32)
    w = scales.float()[g_idx.long()] * (q.float() - zero.float()[g_idx.long()])
    tensors = dict(
        qweight=pack_gptq_rows(q, bits),
        qzeros=pack_cols(zero - 1, bits, list(range(32 // bits))),
        scales=scales,
        g_idx=g_idx,
    )
    return tensors, w.t().contiguous()


def make_awq(k, n, gs, seed=0):
    gen = torch.Generator().manual_seed(seed)
    g = k // (k if gs == -1 else gs)
    q = torch.randint(0, 16, (k, n), generator=gen)
    zero = torch.randint(0, 16, (g, n), generator=gen)
    scales = make_scales(g, n)
    rep = k // g
    w = (q.float() - zero.float().repeat_interleave(rep, 0)) * scales.float().repeat_interleave(rep, 0)
    tensors = dict(qweight=pack_cols(q, 4, AWQ_ORDER), qzeros=pack_cols(zero, 4, AWQ_ORDER), scales=scales)
    return tensors, w.t().contiguous()


def check_forward(layer, w, bias, dtype=torch.float32, device="cpu"):
    x = randn_with_outliers(3, 5, layer.in_features, dtype=dtype, device=device)
    expected = nn.functional.linear(x.float(), w.to(x.device), None if bias is None else bias.float().to(x.device))
    y = layer(x)
    assert y.dtype == dtype and y.shape == (3, 5, layer.out_features)
    return rel_error(y, expected)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("gs", [32, 64, 128, -1])
@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("n", [96, 40])
def test_gptq_dequantize_is_exact_and_forward_matches(bits, gs, act_order, n):
    t, w = make_gptq(K, n, bits, gs, act_order=act_order, seed=n + bits + gs)
    bias = randn_with_outliers(n).to(torch.float16)
    layer = QuantLinear.from_gptq(**t, bits=bits, group_size=gs, bias=bias)
    assert (layer.in_features, layer.out_features, layer.bits, layer.group_size) == (K, n, bits, gs)
    # with group_size=-1 g_idx is all zeros however the columns were ordered
    assert (layer.perm is not None) == (act_order and gs != -1)
    assert torch.equal(layer.dequantize(), w)
    assert layer.bias.dtype == torch.float16
    for dtype in (torch.float32, torch.bfloat16):
        assert check_forward(layer, w, bias, dtype) < cpu_tol(dtype)


@pytest.mark.parametrize("bits", [4, 8])
def test_gptq_symmetric_checkpoint_drops_zeros(bits):
    t, w = make_gptq(K, 40, bits, 64, act_order=True, symmetric=True)
    layer = QuantLinear.from_gptq(**t, bits=bits, group_size=64)
    assert layer.zeros is None and layer.symmetric and layer.bias is None
    assert torch.equal(layer.dequantize(), w)
    assert check_forward(layer, w, None) < cpu_tol(torch.float32)


def test_gptq_without_g_idx_and_act_order_permutation():
    t, w = make_gptq(K, 96, 4, 32, act_order=True)
    layer = QuantLinear.from_gptq(**t, bits=4, group_size=32)
    # Packed columns are sorted by group, stably, so within a group in input order.
    g_sorted = t["g_idx"].long()[layer.perm]
    assert torch.equal(g_sorted, torch.arange(K) // 32)
    assert all((layer.perm[i : i + 32].diff() > 0).all() for i in range(0, K, 32))
    t_plain, w_plain = make_gptq(K, 96, 4, 32)
    t_plain["g_idx"] = None
    layer = QuantLinear.from_gptq(**t_plain, bits=4, group_size=32)
    assert layer.perm is None and torch.equal(layer.dequantize(), w_plain)
    assert "act_order=False" in repr(layer)


@pytest.mark.parametrize("gs", [32, 64, 128, -1])
@pytest.mark.parametrize("n", [96, 40])
def test_awq_dequantize_is_exact_and_forward_matches(gs, n):
    t, w = make_awq(K, n, gs, seed=n + gs)
    bias = randn_with_outliers(n)
    layer = QuantLinear.from_awq(**t, bits=4, group_size=gs, bias=bias)
    assert layer.perm is None and layer.zeros is not None
    assert torch.equal(layer.dequantize(), w)
    for dtype in (torch.float32, torch.float16):
        assert check_forward(layer, w, bias, dtype) < cpu_tol(dtype)


def test_awq_interleave_single_word():
    # One word per row, nibble i = i + 1: the nibble of column c is AWQ_ORDER.index(c) + 1.
    word = sum((i + 1) << (4 * i) for i in range(8))
    qweight = to_int32(torch.full((32, 1), word))  # 0x87654321: a negative int32
    qzeros = torch.zeros(1, 1, dtype=torch.int32)
    layer = QuantLinear.from_awq(qweight, qzeros, torch.ones(1, 8, dtype=torch.float16), bits=4, group_size=-1)
    assert layer.dequantize()[:, 0].tolist() == [1, 5, 2, 6, 3, 7, 4, 8]


@pytest.mark.parametrize("bits,symmetric", [(4, False), (8, True)])
def test_state_dict_round_trip_keeps_perm(bits, symmetric):
    t, w = make_gptq(K, 40, bits, 64, act_order=True, symmetric=symmetric)
    layer = QuantLinear.from_gptq(**t, bits=bits, group_size=64, bias=randn_with_outliers(40))
    sd = layer.state_dict()
    assert "perm" in sd and sd["perm"].dtype == torch.int64
    buf = io.BytesIO()
    torch.save(sd, buf)
    x = randn_with_outliers(4, K)
    for act_order in (True, False):  # without act_order the loaded perm is adopted
        buf.seek(0)
        fresh = QuantLinear(K, 40, bits=bits, group_size=64, symmetric=symmetric, act_order=act_order)
        fresh.load_state_dict(torch.load(buf))
        assert torch.equal(fresh.perm, layer.perm) and "act_order=True" in repr(fresh)
        assert torch.equal(fresh.dequantize(), w)
        assert torch.equal(fresh(x), layer(x))
    # A checkpoint without perm does not fit an act-order layer (strict loading).
    plain = QuantLinear(K, 40, bits=bits, group_size=64, symmetric=symmetric)
    with pytest.raises(RuntimeError, match="perm"):
        QuantLinear(K, 40, bits=bits, group_size=64, symmetric=symmetric, act_order=True).load_state_dict(
            plain.state_dict()
        )


def test_gptq_bad_inputs_are_clear():
    t, _ = make_gptq(K, 40, 4, 64, act_order=True)

    def call(match, bits=4, group_size=64, **over):
        with pytest.raises(ValueError, match=match):
            QuantLinear.from_gptq(**{**t, **over}, bits=bits, group_size=group_size)

    call("bits must be 4 or 8, got 3", bits=3)
    call(r"qweight must be int32 \[K \* bits / 32, N\], got torch.float16", qweight=t["qweight"].half())
    call("qweight must be int32.*got torch.int32 of shape", qweight=t["qweight"].flatten())
    call("qzeros must be int32", qzeros=t["qzeros"].float())
    call(r"qzeros must have shape \[K / group_size, N \* bits / 32\] = \[4, 5\], got \[4, 4\]",
         qzeros=t["qzeros"][:, :4])
    call("scales must be float16 or bfloat16 or float32", scales=t["scales"].to(torch.int32))
    call(r"scales must have shape \[K / group_size, N\] = \[4, 40\], got \[2, 40\]", scales=t["scales"][:2])
    call("g_idx must be int32 or int64", g_idx=t["g_idx"].float())
    call(r"g_idx must have shape \[K\] = \[256\]", g_idx=t["g_idx"][:128])
    call(r"g_idx values must lie in \[0, 4\)", g_idx=t["g_idx"] + 1)
    unequal = t["g_idx"].clone()
    unequal[unequal == 1] = 0
    call("g_idx puts 128 input columns in group 0; .* exactly group_size = 64", g_idx=unequal)
    call("group_size must be -1 .* divisor of K=256, got 48", group_size=48)
    call("int4 needs K and group_size divisible by 32, got K=256, group_size=16", group_size=16)
    t8, _ = make_gptq(K, 40, 8, 64)
    with pytest.raises(ValueError, match="qzeros must have shape"):
        QuantLinear.from_gptq(**{**t8, "qzeros": t["qzeros"]}, bits=8, group_size=64)
    with pytest.raises(ValueError, match=r"N = 36 .* divisible by 8"):
        QuantLinear.from_gptq(t["qweight"][:, :36], t["qzeros"], t["scales"], t["g_idx"], 4, 64)
    with pytest.raises(ValueError, match=r"bias must have shape \[N\] = \[40\], got \[39\]"):
        QuantLinear.from_gptq(**t, bits=4, group_size=64, bias=torch.zeros(39))
    with pytest.raises(ValueError, match="bias must be float16 or bfloat16 or float32"):
        QuantLinear.from_gptq(**t, bits=4, group_size=64, bias=torch.zeros(40, dtype=torch.int64))


def test_awq_bad_inputs_are_clear():
    t, _ = make_awq(K, 40, 64)

    def call(match, bits=4, group_size=64, **over):
        with pytest.raises(ValueError, match=match):
            QuantLinear.from_awq(**{**t, **over}, bits=bits, group_size=group_size)

    call("only bits=4 exists in AutoAWQ's GEMM format, got bits=8", bits=8)
    call(r"qweight must be int32 \[K, N / 8\], got torch.int64", qweight=t["qweight"].long())
    call(r"qzeros must have shape \[K / group_size, N / 8\] = \[4, 5\], got \[5, 4\]", qzeros=t["qzeros"].t())
    call(r"scales must have shape \[K / group_size, N\] = \[4, 40\], got \[40, 4\]", scales=t["scales"].t())
    call("scales must be float16", scales=t["scales"].to(torch.int16))
    call("group_size must be -1 .* divisor of K=256, got 100", group_size=100)
    call("int4 needs K and group_size divisible by 32, got K=256, group_size=8", group_size=8)
    with pytest.raises(ValueError, match="int4 needs K and group_size divisible by 32, got K=48"):
        QuantLinear.from_awq(t["qweight"][:48], t["qzeros"][:1], t["scales"][:1], bits=4, group_size=-1)
    with pytest.raises(ValueError, match="qweight must be a tensor"):
        QuantLinear.from_awq(t["qweight"].tolist(), t["qzeros"], t["scales"], bits=4, group_size=64)  # a list, not a tensor


@requires_cuda
@pytest.mark.parametrize("bits", [4, 8])
def test_gptq_act_order_on_cuda(bits):
    t, w = make_gptq(K, 96, bits, 32, act_order=True, seed=bits)
    bias = randn_with_outliers(96).to(torch.float16)
    layer = QuantLinear.from_gptq(**{k: v.cuda() for k, v in t.items()}, bits=bits, group_size=32, bias=bias.cuda())
    assert layer.perm.is_cuda and layer.qweight.is_cuda
    assert torch.equal(layer.dequantize().cpu(), w)
    for dtype in (torch.float16, torch.bfloat16):
        assert check_forward(layer, w, bias, dtype, "cuda") < TOL[dtype]
    # Built on the CPU and moved: perm travels with .to().
    moved = QuantLinear.from_gptq(**t, bits=bits, group_size=32, bias=bias).to("cuda")
    assert moved.perm.is_cuda
    assert check_forward(moved, w, bias, torch.float16, "cuda") < TOL[torch.float16]
