"""slimops.lowrank_linear, the op: CPU paths against the reference, opcheck,
autograd, and a clear error for every class of bad input. (The module
LowRankLinear: test_lowrank_linear.py; the CUDA kernel: test_lowrank_cuda.py.)"""

import pytest
import torch

import slimops
from slimops import reference
from slimops.testing import randn_with_outliers, rel_error

from conftest import OPCHECK_DEVICE_DTYPES, TOL

# (K, N, r): odd sizes exercise every vector tail.
SHAPES = [(300, 130, 37), (64, 64, 8), (1, 5, 3), (1040, 24, 129)]


def factors(k, n, r, dtype, gen, device="cpu"):
    V = (randn_with_outliers(r, k, generator=gen) * 0.05).to(dtype).to(device)
    U = (randn_with_outliers(n, r, generator=gen) * 0.05).to(dtype).to(device)
    return V, U


@pytest.mark.parametrize("k,n,r", SHAPES)
@pytest.mark.parametrize("m", [1, 2, 3, 17])  # forced ISAs: the fused passes at every M; auto: the thresholds
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("bias", [True, False])
def test_cpu_matches_reference(cpu_isa, k, n, r, m, dtype, bias, gen):
    V, U = factors(k, n, r, dtype, gen)
    b = randn_with_outliers(n, generator=gen) if bias else None
    x = randn_with_outliers(m, k, dtype=dtype, generator=gen)
    out = slimops.lowrank_linear(x, V, U, b)
    assert out.shape == (m, n) and out.dtype == dtype
    assert rel_error(out, reference.lowrank_linear(x, V, U, b)) < TOL[dtype]


def test_cpu_batched_and_strided(gen):
    V, U = factors(96, 40, 12, torch.float32, gen)
    x = randn_with_outliers(2, 3, 96, generator=gen)
    torch.testing.assert_close(slimops.lowrank_linear(x, V, U), reference.lowrank_linear(x, V, U), rtol=1e-4, atol=1e-5)
    wide = randn_with_outliers(1, 192, generator=gen)[:, 96:]  # a column slice: row stride 192
    torch.testing.assert_close(slimops.lowrank_linear(wide, V, U), reference.lowrank_linear(wide, V, U), rtol=1e-4, atol=1e-5)
    assert slimops.lowrank_linear(torch.empty(0, 96), V, U).shape == (0, 40)


@pytest.mark.parametrize("device,dtype", OPCHECK_DEVICE_DTYPES)
@pytest.mark.parametrize("m,bias,grad", [(1, True, True), (3, False, False), (20, True, False)])
def test_opcheck_lowrank_linear(device, dtype, m, bias, grad, gen):
    V, U = factors(64, 48, 16, dtype, gen, device)
    x = randn_with_outliers(m, 64, dtype=dtype, generator=gen).to(device).requires_grad_(grad)
    b = randn_with_outliers(48, dtype=dtype, generator=gen).to(device).requires_grad_(grad) if bias else None
    torch.library.opcheck(torch.ops.slimops.lowrank_linear.default, (x, V.requires_grad_(grad), U.requires_grad_(grad), b))


def test_backward_matches_two_linears(gen):
    V, U = factors(64, 24, 8, torch.float32, gen)
    x = randn_with_outliers(7, 64, generator=gen)
    b = randn_with_outliers(24, generator=gen)
    gy = randn_with_outliers(7, 24, generator=gen)
    leaves = [t.clone().requires_grad_() for t in (x, V, U, b)]
    slimops.lowrank_linear(*leaves).backward(gy)
    ref = [t.clone().requires_grad_() for t in (x, V, U, b)]
    torch.nn.functional.linear(torch.nn.functional.linear(ref[0], ref[1]), ref[2], ref[3]).backward(gy)
    for a, e in zip(leaves, ref):
        torch.testing.assert_close(a.grad, e.grad, rtol=1e-4, atol=1e-4)


def bad_inputs():
    x, V, U, b = torch.randn(4, 32), torch.randn(8, 32), torch.randn(16, 8), torch.randn(16)
    return [
        ((x.double(), V, U, b), r"x must be float32, float16 or bfloat16"),
        ((x, V.bfloat16(), U, b), r"V must have x's dtype"),
        ((x, V, U.half(), b), r"U must have x's dtype"),
        ((x, V.reshape(-1), U, b), r"V must be 2-D \[r, K\]"),
        ((x, V, U.reshape(-1), b), r"U must be 2-D \[N, r\]"),
        ((x, V, U[:, :7].contiguous(), b), r"U must be \[N, r\] with r = 8"),
        ((x[:, :30], V, U, b), r"x's last dimension must equal K = 32"),
        ((x, V, U, b[:15]), r"bias must have shape \[N\] = \[16\]"),
        ((x, V.t().contiguous().t(), U, b), r"V must be contiguous"),
        ((torch.tensor(1.0), V, U, b), r"x must have at least 1 dimension"),
    ]


@pytest.mark.parametrize("args,match", bad_inputs())
def test_bad_inputs_raise_clear_errors(args, match):
    with pytest.raises(RuntimeError, match=match):
        torch.ops.slimops.lowrank_linear(*args)
