"""QuantLinear with a low-rank correction of its quantisation error
(W ~ dequant(Wq) + lr_a @ lr_b): the fit, the forward pass, save/load, compress."""

import io

import pytest
import torch
from torch import nn

import slimops
from slimops.formats import dequantize, quantize
from slimops.nn import QuantLinear
from slimops.testing import randn_with_outliers, rel_error


def make_linear(k=256, n=96, gen=None):
    lin = nn.Linear(k, n)
    with torch.no_grad():
        lin.weight.copy_(randn_with_outliers(n, k, generator=gen) * 0.05)
        lin.bias.copy_(randn_with_outliers(n, generator=gen))
    return lin


@pytest.mark.parametrize("bits,gs", [(4, 128), (4, 32), (8, -1)])
@pytest.mark.parametrize("rank", [1, 16])
def test_fit_is_the_optimal_rank_r_correction(bits, gs, rank, gen):
    lin = make_linear(gen=gen)
    layer = QuantLinear.from_linear(lin, bits=bits, group_size=gs, lowrank_rank=rank)
    qw = quantize(lin.weight, bits, gs)
    err = lin.weight.detach().double() - dequantize(qw.qweight, qw.scales, qw.zeros, bits, gs).double()
    s = torch.linalg.svdvals(err)
    left = (lin.weight.detach().double() - layer.dequantize().double()).norm() ** 2
    # Eckart-Young: what remains is exactly the discarded singular values.
    torch.testing.assert_close(left, (s[rank:] ** 2).sum(), rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_forward_matches_corrected_weight(dtype, gen):
    lin = make_linear(gen=gen).to(dtype)
    layer = QuantLinear.from_linear(lin, bits=4, group_size=64, lowrank_rank=8)
    assert layer.lr_a.dtype == dtype and layer.lr_a.shape == (96, 8) and layer.lr_b.shape == (8, 256)
    x = randn_with_outliers(3, 5, 256, dtype=dtype, generator=gen)
    expected = nn.functional.linear(x.float(), layer.dequantize(), layer.bias.float())
    assert rel_error(layer(x), expected) < (1e-3 if dtype == torch.float32 else 1e-2)


def test_correction_cuts_output_error_and_calibration_cuts_more(gen):
    lin = make_linear(512, 256, gen)
    # Activations with a few large channels, as LLM activations have.
    def acts(m):
        x = randn_with_outliers(m, 512, generator=gen)
        x[:, :8] *= 30
        return x

    calib, x = acts(256), acts(64)
    ref = lin(x)
    plain = rel_error(QuantLinear.from_linear(lin, bits=4, group_size=128)(x), ref)
    svd = rel_error(QuantLinear.from_linear(lin, bits=4, group_size=128, lowrank_rank=64)(x), ref)
    weighted = rel_error(QuantLinear.from_linear(lin, bits=4, group_size=128, lowrank_rank=64, calib=calib)(x), ref)
    assert svd < plain and weighted < 0.7 * svd


def test_state_dict_round_trip_and_compress(gen):
    lin = make_linear(gen=gen)
    layer = QuantLinear.from_linear(lin, bits=4, group_size=128, lowrank_rank=4)
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    fresh = QuantLinear(256, 96, bits=4, group_size=128, lowrank_rank=4)
    fresh.load_state_dict(torch.load(buf))
    x = randn_with_outliers(4, 256, generator=gen)
    assert torch.equal(fresh(x), layer(x))

    model = nn.Sequential(make_linear(gen=gen), nn.ReLU(), nn.Linear(96, 32))  # K = 96: g32
    slimops.compress(model, "int4-g32+lr8", skip=())
    assert all(isinstance(m, QuantLinear) and m.lowrank_rank == 8 and m.group_size == 32 for m in (model[0], model[2]))
    with pytest.raises(ValueError, match="unknown recipe"):
        slimops.compress(model, "int4+lrx")


def test_bad_arguments_are_clear(gen):
    lin = make_linear(gen=gen)
    with pytest.raises(ValueError, match=r"lowrank_rank must be <= min\(N, K\) = 96"):
        QuantLinear.from_linear(lin, bits=4, group_size=128, lowrank_rank=97)
    with pytest.raises(ValueError, match="lowrank_rank must be an int >= 0"):
        QuantLinear(256, 96, bits=4, group_size=128, lowrank_rank=-1)
    with pytest.raises(ValueError, match="calib is only used to fit a low-rank correction"):
        QuantLinear.from_linear(lin, bits=4, group_size=128, calib=torch.randn(8, 256))


def test_forward_with_act_order_permutation(gen):
    # The kernel sees x permuted (act-order checkpoints); the correction is
    # stored in the input's own order, so its columns must follow.
    lin = make_linear(gen=gen)
    layer = QuantLinear.from_linear(lin, bits=4, group_size=32, lowrank_rank=8)
    layer.perm = torch.randperm(256, generator=gen)
    x = randn_with_outliers(4, 256, generator=gen)
    expected = nn.functional.linear(x, layer.dequantize(), layer.bias)
    assert rel_error(layer(x), expected) < 1e-3
