"""torch.library.opcheck on every slimops op: schema, fake kernel, autograd
registration and AOT dispatch agree with the real kernels."""

import pytest
import torch

import slimops  # noqa: F401
from slimops.formats import dequantize, quantize
from slimops.testing import randn_with_outliers

from conftest import OPCHECK_DEVICE_DTYPES


@pytest.mark.parametrize("device,dtype", OPCHECK_DEVICE_DTYPES)
@pytest.mark.parametrize(
    "bits,gs,symmetric,bias,x_grad",
    [(8, -1, True, True, False), (8, 32, False, False, True), (4, 64, True, True, True), (4, 32, False, True, False)],
)
def test_opcheck_wo_gemm(device, dtype, bits, gs, symmetric, bias, x_grad):
    qw = quantize(randn_with_outliers(40, 128) * 0.05, bits, gs, symmetric)
    z = None if qw.zeros is None else qw.zeros.to(device)
    x = randn_with_outliers(3, 5, 128, dtype=dtype).to(device).requires_grad_(x_grad)
    b = randn_with_outliers(40, dtype=dtype).to(device).requires_grad_(x_grad) if bias else None
    args = (x, qw.qweight.to(device), qw.scales.to(device), z, b, bits, gs)
    torch.library.opcheck(torch.ops.slimops.wo_gemm.default, args)


@pytest.mark.parametrize("bits", [8, 4])
def test_backward_matches_dequantized_linear(bits):
    qw = quantize(randn_with_outliers(24, 64) * 0.05, bits, 32, symmetric=False)
    w = dequantize(qw.qweight, qw.scales, qw.zeros, bits, 32)
    x = randn_with_outliers(7, 64).requires_grad_()
    b = randn_with_outliers(24).requires_grad_()
    gy = randn_with_outliers(7, 24)
    slimops.wo_gemm(x, qw.qweight, qw.scales, b, zeros=qw.zeros, bits=bits, group_size=32).backward(gy)
    x2, b2 = x.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    torch.nn.functional.linear(x2, w, b2).backward(gy)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b.grad, b2.grad, rtol=1e-4, atol=1e-4)
