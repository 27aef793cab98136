"""torch.library.opcheck on every slimops op: schema, fake kernel, autograd
registration and AOT dispatch agree with the real kernels."""

import pytest
import torch

import slimops  # noqa: F401
from slimops.formats import quantize_int8
from slimops.testing import randn_with_outliers

from conftest import requires_cuda


@pytest.mark.parametrize(
    "device,dtype",
    [
        ("cpu", torch.float32),
        ("cpu", torch.bfloat16),
        pytest.param("cuda", torch.float16, marks=requires_cuda),
        pytest.param("cuda", torch.bfloat16, marks=requires_cuda),
    ],
)
@pytest.mark.parametrize("gs,bias,x_grad", [(-1, True, False), (32, False, True), (64, True, True)])
def test_opcheck_wo_gemm(device, dtype, gs, bias, x_grad):
    q, s = quantize_int8(randn_with_outliers(40, 128) * 0.05, gs)
    x = randn_with_outliers(3, 5, 128, dtype=dtype).to(device).requires_grad_(x_grad)
    b = randn_with_outliers(40, dtype=dtype).to(device).requires_grad_(x_grad) if bias else None
    torch.library.opcheck(torch.ops.slimops.wo_gemm.default, (x, q.to(device), s.to(device), b, 8, gs))


def test_backward_matches_dequantized_linear():
    q, s = quantize_int8(randn_with_outliers(24, 64) * 0.05, 16)
    w = slimops.formats.dequantize_int8(q, s, 16)
    x = randn_with_outliers(7, 64).requires_grad_()
    b = randn_with_outliers(24).requires_grad_()
    gy = randn_with_outliers(7, 24)
    slimops.wo_gemm(x, q, s, b, group_size=16).backward(gy)
    x2, b2 = x.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    torch.nn.functional.linear(x2, w, b2).backward(gy)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b.grad, b2.grad, rtol=1e-4, atol=1e-4)
