"""LowRankLinear, slimops.compress("lowrank:<ratio>") and `slimops bench lowrank`."""

import copy
import io
import json
import math

import pytest
import torch
from torch import nn

import slimops
from slimops.cli import main
from slimops.nn import LowRankLinear
from slimops.testing import randn_with_outliers, rel_error

from conftest import TOL, requires_cuda


def make_linear(k, n, bias=True, dtype=torch.float32, device="cpu"):
    lin = nn.Linear(k, n, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(randn_with_outliers(n, k) * 0.05)
        if bias:
            lin.bias.copy_(randn_with_outliers(n))
    return lin.to(dtype=dtype, device=device)


def reference(layer, x):
    """What the layer claims to compute, in float32 from its own factors."""
    b = None if layer.bias is None else layer.bias.float()
    return nn.functional.linear(x.float(), layer.dequantize().to(x.device), b)


def test_from_linear_by_rank_shapes_and_parameters():
    lin = make_linear(160, 96)
    layer = LowRankLinear.from_linear(lin, rank=20)
    assert (layer.in_features, layer.out_features, layer.rank) == (160, 96, 20)
    assert layer.V.shape == (20, 160) and layer.U.shape == (96, 20)
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in (layer.V, layer.U, layer.bias))
    assert sum(p.numel() for p in layer.parameters()) == 20 * (160 + 96) + 96
    assert torch.equal(layer.bias, lin.bias)
    assert layer.dequantize().shape == (96, 160) and layer.dequantize().dtype == torch.float32
    assert repr(layer).endswith("(in_features=160, out_features=96, rank=20, bias=True)")


@pytest.mark.parametrize("k,n,p", [(160, 96, 0.5), (64, 64, 0.5), (96, 200, 0.8), (300, 40, 0.25), (64, 48, 1e-3)])
def test_param_ratio_rank_formula(k, n, p):
    layer = LowRankLinear.from_linear(make_linear(k, n, bias=False), param_ratio=p)
    # Integer arithmetic on p as a fraction (all the p above are exact in
    # thousandths), independent of the implementation's Fraction route.
    expected = max(1, (round(p * 1000) * n * k) // (1000 * (n + k)))
    assert layer.rank == expected
    params = sum(t.numel() for t in layer.parameters())
    assert params == layer.rank * (n + k)
    if expected > 1:
        # The largest rank within the budget: one more would exceed it.
        assert params <= p * n * k < (layer.rank + 1) * (n + k)


@pytest.mark.parametrize("k,n,rank", [(160, 96, 20), (75, 130, 1), (64, 64, 63)])
def test_svd_error_is_the_eckart_young_optimum(k, n, rank):
    lin = make_linear(k, n)
    layer = LowRankLinear.from_linear(lin, rank=rank)
    w = lin.weight.detach().double()
    s = torch.linalg.svdvals(w)
    optimum = s[rank:].square().sum().item()
    got = (w - layer.U.double() @ layer.V.double()).square().sum().item()
    # The factors are float32: their rounding adds ~1e-7 of ||W|| per entry.
    assert got == pytest.approx(optimum, rel=1e-4, abs=1e-9 * w.square().sum().item())


def outlier_channel_activations(rows, k, channels, scale, gen):
    """LLM-like activations: normal, with a few input channels much larger."""
    x = torch.randn(rows, k, generator=gen)
    x[:, channels] *= scale
    return x


def test_asvd_beats_svd_on_outlier_channels(gen):
    k, n, rank = 128, 96, 16
    lin = make_linear(k, n, bias=False)
    channels = torch.randperm(k, generator=gen)[:5]
    calib = outlier_channel_activations(512, k, channels, 30.0, gen)
    held_out = outlier_channel_activations(256, k, channels, 30.0, gen)
    svd = LowRankLinear.from_linear(lin, rank=rank, method="svd")
    asvd = LowRankLinear.from_linear(lin, rank=rank, method="asvd", calib=calib)
    with torch.no_grad():
        ref = lin(held_out)
        err_svd = rel_error(reference(svd, held_out), ref)
        err_asvd = rel_error(reference(asvd, held_out), ref)
    # SVD spends its rank evenly over all 128 input channels; ASVD on the 5
    # that carry most of the output. Typically a factor > 3 apart.
    assert err_asvd < 0.5 * err_svd, (err_asvd, err_svd)


def test_asvd_calib_statistic_and_alpha_zero(gen):
    lin = make_linear(96, 80)
    x = outlier_channel_activations(64, 96, [3, 50], 20.0, gen).reshape(4, 16, 96)
    from_acts = LowRankLinear.from_linear(lin, rank=12, method="asvd", calib=x)
    from_stat = LowRankLinear.from_linear(lin, rank=12, method="asvd", calib=x.abs().mean((0, 1)))
    assert rel_error(from_stat.dequantize(), from_acts.dequantize()) < 1e-6
    # alpha = 0 makes every s_k = 1: plain SVD (compare products, the factors'
    # signs are not unique).
    flat = LowRankLinear.from_linear(lin, rank=12, method="asvd", calib=x, alpha=0.0)
    svd = LowRankLinear.from_linear(lin, rank=12)
    assert rel_error(flat.dequantize(), svd.dequantize()) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("lead", [(), (1,), (7,), (2, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_dequantized(dtype, lead, bias):
    layer = LowRankLinear.from_linear(make_linear(136, 72, bias, dtype=dtype), rank=24)
    assert layer.V.dtype == dtype and layer.U.dtype == dtype
    x = randn_with_outliers(*lead, 136, dtype=dtype)
    y = layer(x)
    assert y.shape == (*lead, 72) and y.dtype == dtype
    assert rel_error(y, reference(layer, x)) < TOL[dtype]


def test_forward_non_contiguous_input():
    layer = LowRankLinear.from_linear(make_linear(96, 40), rank=8)
    x = randn_with_outliers(6, 110)[:, 7:103]  # rows strided by 110
    assert not x.is_contiguous()
    assert rel_error(layer(x), reference(layer, x)) < TOL[torch.float32]
    xt = randn_with_outliers(96, 5).t()  # column-major
    assert rel_error(layer(xt), reference(layer, xt)) < TOL[torch.float32]


def test_gradients_reach_factors_bias_and_input():
    layer = LowRankLinear.from_linear(make_linear(64, 48), rank=10)
    x = randn_with_outliers(2, 5, 64).requires_grad_()
    layer(x).square().sum().backward()
    for name, t in (("V", layer.V), ("U", layer.U), ("bias", layer.bias), ("x", x)):
        assert t.grad is not None and t.grad.shape == t.shape, name
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0, name


def test_state_dict_round_trip():
    layer = LowRankLinear.from_linear(make_linear(128, 48), rank=16)
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    fresh = LowRankLinear(128, 48, 16)
    fresh.load_state_dict(torch.load(buf))
    assert set(layer.state_dict()) == {"V", "U", "bias"}
    x = randn_with_outliers(3, 128)
    assert torch.equal(fresh(x), layer(x))
    with pytest.raises(RuntimeError, match="size mismatch for V"):
        LowRankLinear(128, 48, 8).load_state_dict(layer.state_dict())


def test_to_dtype():
    layer = LowRankLinear.from_linear(make_linear(96, 64), rank=12)
    w32 = layer.dequantize()
    layer = layer.to(torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in layer.parameters())
    assert rel_error(layer.dequantize(), w32) < TOL[torch.bfloat16]
    x = randn_with_outliers(4, 96, dtype=torch.bfloat16)
    assert layer(x).dtype == torch.bfloat16
    assert rel_error(layer(x), reference(layer, x)) < TOL[torch.bfloat16]


class TinyMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = make_linear(64, 160)
        self.act = nn.GELU()
        self.down = make_linear(160, 64)
        self.lm_head = make_linear(64, 50, bias=False)

    def forward(self, x):
        return self.lm_head(x + self.down(self.act(self.up(x))))


def test_compress_lowrank_swaps_and_skips():
    model = TinyMLP()
    up_weight = model.up.weight.detach().clone()
    assert slimops.compress(model, "lowrank:0.5") is model
    assert isinstance(model.up, LowRankLinear) and isinstance(model.down, LowRankLinear)
    assert type(model.lm_head) is nn.Linear  # skipped by default
    assert model.up.rank == math.floor(0.5 * 64 * 160 / (64 + 160)) == 22
    by_rank = LowRankLinear.from_linear(_linear_with(up_weight), rank=22)
    assert torch.allclose(model.up.dequantize(), by_rank.dequantize(), atol=1e-6)
    x = randn_with_outliers(3, 64)
    assert rel_error(model(x), TinyMLP.forward(model, x)) == 0.0
    model = slimops.compress(TinyMLP(), "lowrank:0.25", skip=("down",))
    assert isinstance(model.lm_head, LowRankLinear) and type(model.down) is nn.Linear


def _linear_with(weight):
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(weight)
    return lin


@pytest.mark.parametrize("recipe", ["lowrank:1", "lowrank:0", "lowrank:-0.5", "lowrank:abc", "lowrank:", "lowrank:nan"])
def test_compress_rejects_bad_ratio(recipe):
    with pytest.raises(ValueError, match="low-rank ratio must be a number with 0 < ratio < 1"):
        slimops.compress(TinyMLP(), recipe)


def test_compress_unknown_recipe_names_lowrank():
    with pytest.raises(ValueError, match="unknown recipe 'lowrank'.*'lowrank:<ratio>'"):
        slimops.compress(TinyMLP(), "lowrank")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({}, "exactly one of rank or param_ratio"),
        ({"rank": 4, "param_ratio": 0.5}, "exactly one of rank or param_ratio"),
        ({"rank": 0}, r"rank must be an int in \[1, min\(N, K\)\] = \[1, 32\], got 0"),
        ({"rank": 33}, r"= \[1, 32\], got 33"),
        ({"rank": 4.0}, "rank must be an int"),
        ({"param_ratio": 0.0}, r"param_ratio must be a number in \(0, 1\], got 0.0"),
        ({"param_ratio": 1.5}, r"param_ratio must be a number in \(0, 1\], got 1.5"),
        ({"param_ratio": float("nan")}, "param_ratio must be a number"),
        ({"rank": 4, "method": "pca"}, "method must be one of"),
        ({"rank": 4, "method": "asvd"}, "needs calib"),
        ({"rank": 4, "calib": torch.ones(64)}, "calib is only used by method='asvd'"),
        ({"rank": 4, "method": "asvd", "calib": torch.ones(3, 63)}, r"calib must be a float tensor \[..., K\] with K = 64"),
        ({"rank": 4, "method": "asvd", "calib": torch.ones(64, dtype=torch.int64)}, "calib must be a float tensor"),
        ({"rank": 4, "method": "asvd", "calib": -torch.ones(64)}, "must be >= 0"),
        ({"rank": 4, "method": "asvd", "calib": torch.zeros(2, 64)}, "calib is all zeros"),
        ({"rank": 4, "method": "asvd", "calib": torch.full((2, 64), math.inf)}, "inf or nan"),
        ({"rank": 4, "method": "asvd", "calib": torch.ones(64), "alpha": -1.0}, "alpha must be a finite number >= 0"),
    ],
)
def test_from_linear_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LowRankLinear.from_linear(make_linear(64, 32), **kwargs)


def test_constructor_and_type_errors():
    with pytest.raises(ValueError, match="rank must be a positive int, got 0"):
        LowRankLinear(64, 32, 0)
    with pytest.raises(TypeError, match="expects an nn.Linear"):
        LowRankLinear.from_linear(nn.Conv1d(3, 3, 1), rank=1)
    # A fresh layer is usable before any load: finite, non-zero factors.
    fresh = LowRankLinear(64, 32, 8, bias=False)
    assert fresh.bias is None and fresh.dequantize().abs().sum() > 0


def test_forward_dtype_mismatch_is_clear():
    layer = LowRankLinear.from_linear(make_linear(64, 32), rank=8)
    with pytest.raises(RuntimeError, match="V must have x's dtype"):
        layer(randn_with_outliers(2, 64, dtype=torch.bfloat16))


def test_torch_compile_fullgraph_matches_eager():
    # The op's fake kernel lets dynamo trace through the layer without a break.
    torch._dynamo.reset()
    model = slimops.compress(TinyMLP(), "lowrank:0.5", skip=())
    x = randn_with_outliers(2, 7, 64)
    with torch.no_grad():
        assert rel_error(torch.compile(model, fullgraph=True)(x), model(x)) < TOL[torch.float32]


def test_bench_lowrank_tiny_cpu(tmp_path):
    path, md = tmp_path / "r.json", tmp_path / "r.md"
    assert main(["bench", "lowrank", "--device", "cpu", "--shapes", "96x80x16,64x40x8", "--m", "1,5",
                 "--dtype", "fp32,bf16", "--reps", "3", "--json", str(path), "--markdown", str(md)]) == 0
    rows = json.loads(path.read_text())["rows"]
    assert [(r["K x N x r"], r["dtype"], r["M"]) for r in rows] == [
        (s, d, m) for s in ("96x80x16", "64x40x8") for d in ("fp32", "bf16") for m in (1, 5)
    ]
    for r in rows:
        assert r["rel err"] < TOL[torch.float32 if r["dtype"] == "fp32" else torch.bfloat16]
        assert r["slimops lowrank (ms)"] > 0 and r["x vs torch 2 matmuls"] > 0 and r["x vs torch dense"] > 0
    assert "| K x N x r | dtype | M |" in md.read_text()


def test_bench_lowrank_rejects_malformed_shapes(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "lowrank", "--device", "cpu", "--shapes", "96x80"])
    assert "shapes are KxNxr" in capsys.readouterr().err


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_from_linear_and_forward(dtype):
    lin = make_linear(264, 136, dtype=dtype, device="cuda")
    layer = LowRankLinear.from_linear(lin, param_ratio=0.5)
    assert layer.V.is_cuda and layer.V.dtype == dtype
    x = randn_with_outliers(3, 5, 264, dtype=dtype, device="cuda")
    assert rel_error(layer(x), reference(layer, x)) < TOL[dtype]


@requires_cuda
def test_cuda_asvd_and_round_trip():
    lin = make_linear(128, 96, dtype=torch.bfloat16)
    calib = randn_with_outliers(64, 128)
    cpu = LowRankLinear.from_linear(lin, rank=16, method="asvd", calib=calib)
    gpu = LowRankLinear.from_linear(copy.deepcopy(lin).to("cuda"), rank=16, method="asvd", calib=calib)  # calib moves along
    assert rel_error(gpu.dequantize().cpu(), cpu.dequantize()) < TOL[torch.bfloat16]
    x = randn_with_outliers(4, 128, dtype=torch.bfloat16)
    expected = cpu(x)
    moved = cpu.to("cuda")  # Module.to moves in place: cpu is moved too
    assert rel_error(moved(x.cuda()).cpu(), expected) < TOL[torch.bfloat16]
    x.requires_grad_()
    moved(x.cuda()).sum().backward()
    assert moved.U.grad is not None and torch.isfinite(moved.U.grad).all()
