"""QuantLinear and slimops.compress: the drop-in path a user takes."""

import io

import pytest
import torch
from torch import nn

import slimops
from slimops.nn import QuantLinear
from slimops.testing import randn_with_outliers, rel_error

from conftest import TOL, requires_cuda


def make_linear(k, n, bias=True, dtype=torch.float32):
    lin = nn.Linear(k, n, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(randn_with_outliers(n, k) * 0.05)
        if bias:
            lin.bias.copy_(randn_with_outliers(n))
    return lin.to(dtype)


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("gs", [-1, 32, 128])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_from_linear_forward_matches_dequantized(bits, gs, symmetric, bias):
    lin = make_linear(256, 96, bias)
    layer = QuantLinear.from_linear(lin, bits=bits, group_size=gs, symmetric=symmetric)
    w = layer.dequantize()
    assert w.shape == (96, 256) and w.dtype == torch.float32
    # Round to nearest: every entry within half a step of its group's scale
    # (symmetric int4 clips the top half-step of the positive side).
    step = layer.scales.repeat_interleave(256 // layer.scales.shape[1], dim=1)
    slack = 1.0 if (bits == 4 and symmetric) else 0.5
    # 1e-4: float32 rounding of (q - zero) * scale with |q - zero| up to 255
    # steps reaches ~1e-5 of a half step (1e-5 failed ~1% of random seeds).
    assert ((w - lin.weight.detach()).abs() <= step * slack * (1 + 1e-4)).all()
    x = randn_with_outliers(2, 9, 256)
    expected = nn.functional.linear(x, w.to(x.dtype), layer.bias)
    assert rel_error(layer(x), expected) < 1e-3  # integer AVX2 path: see test_wo_gemm.INT16_PATH_TOL_FP32


def test_bf16_linear_keeps_bias_dtype_and_output_dtype():
    lin = make_linear(128, 64, dtype=torch.bfloat16)
    layer = QuantLinear.from_linear(lin)
    assert layer.bias.dtype == torch.bfloat16
    x = randn_with_outliers(4, 128, dtype=torch.bfloat16)
    y = layer(x)
    assert y.dtype == torch.bfloat16
    expected = nn.functional.linear(x.float(), layer.dequantize(), layer.bias.float())
    assert rel_error(y, expected) < TOL[torch.bfloat16]


@pytest.mark.parametrize("bits,symmetric", [(8, True), (4, False)])
def test_state_dict_round_trip(bits, symmetric):
    layer = QuantLinear.from_linear(make_linear(128, 48), bits=bits, group_size=64, symmetric=symmetric)
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    fresh = QuantLinear(128, 48, bits=bits, group_size=64, symmetric=symmetric)
    fresh.load_state_dict(torch.load(buf))
    x = randn_with_outliers(3, 128)
    assert torch.equal(fresh(x), layer(x))
    expected = {"qweight", "scales", "bias"} | (set() if symmetric else {"zeros"})
    assert set(layer.state_dict()) == expected


def test_state_dict_shape_mismatch_is_clear():
    layer = QuantLinear.from_linear(make_linear(128, 48), group_size=64)
    with pytest.raises(RuntimeError, match="scales"):
        QuantLinear(128, 48, group_size=32).load_state_dict(layer.state_dict())


def test_constructor_rejects_bad_config():
    with pytest.raises(ValueError, match="bits must be one of"):
        QuantLinear(64, 32, bits=3)
    with pytest.raises(ValueError, match="group_size must be -1"):
        QuantLinear(64, 32, group_size=48)
    with pytest.raises(ValueError, match="int4 needs K and group_size divisible by 32"):
        QuantLinear(48, 32, bits=4)
    with pytest.raises(TypeError, match="expects an nn.Linear"):
        QuantLinear.from_linear(nn.Conv1d(3, 3, 1))


@requires_cuda
def test_to_cuda_and_back():
    lin = make_linear(256, 80, dtype=torch.bfloat16)
    layer = QuantLinear.from_linear(lin, group_size=64)
    x = randn_with_outliers(5, 256, dtype=torch.bfloat16)
    y_cpu = layer(x)
    layer_cuda = layer.to("cuda")
    assert layer_cuda.qweight.is_cuda and layer_cuda.scales.is_cuda
    y_cuda = layer_cuda(x.cuda())
    assert rel_error(y_cuda.cpu(), y_cpu) < TOL[torch.bfloat16]
    assert torch.equal(layer_cuda.to("cpu")(x), y_cpu)


class TinyMLP(nn.Module):
    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.up = make_linear(64, 160, dtype=dtype)
        self.act = nn.GELU()
        self.down = make_linear(160, 64, dtype=dtype)
        self.lm_head = make_linear(64, 50, bias=False, dtype=dtype)

    def forward(self, x):
        return self.lm_head(x + self.down(self.act(self.up(x))))


def test_compress_replaces_linears_in_place_and_skips():
    model = TinyMLP()
    ref = model(randn_with_outliers(3, 64))
    out = slimops.compress(model, "int8", skip=("lm_head",))
    assert out is model
    assert isinstance(model.up, QuantLinear) and isinstance(model.down, QuantLinear)
    assert type(model.lm_head) is nn.Linear
    x = randn_with_outliers(3, 64)
    assert rel_error(model(x), TinyMLP.forward(model, x)) == 0.0
    assert ref.shape == model(x).shape


def test_compress_grouped_recipe_and_bad_recipe():
    model = slimops.compress(TinyMLP(), "int8-g32", skip=())
    assert model.lm_head.group_size == 32 and isinstance(model.lm_head, QuantLinear)
    model = slimops.compress(TinyMLP(), "int4-g32-asym")
    assert (model.up.bits, model.up.group_size, model.up.symmetric) == (4, 32, False)
    with pytest.raises(ValueError, match="unknown recipe 'int3'"):
        slimops.compress(TinyMLP(), "int3")
    with pytest.raises(ValueError, match="layer 'up'.*group_size must be -1 .* divisor of K=64, got 48"):
        slimops.compress(TinyMLP(), "int4-g48")


def test_compressed_model_stays_close_to_float():
    torch.manual_seed(0)
    model = TinyMLP()
    x = randn_with_outliers(4, 64)
    ref = model(x)
    slimops.compress(model, "int8-g32", skip=())
    assert rel_error(model(x), ref) < 2e-2
    model4 = TinyMLP()
    ref4 = model4(x)
    slimops.compress(model4, "int4-g32")
    assert rel_error(model4(x), ref4) < 0.25  # 4-bit RTN on outlier-heavy weights


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_cuda)])
def test_torch_compile_fullgraph_matches_eager(device):
    torch._dynamo.reset()
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    model = slimops.compress(TinyMLP(dtype), "int4-g32-asym").to(device)
    x = randn_with_outliers(2, 7, 64, dtype=dtype).to(device)
    with torch.no_grad():
        eager = model(x)
        compiled = torch.compile(model, fullgraph=True)(x)
    assert rel_error(compiled, eager) < TOL[dtype]
