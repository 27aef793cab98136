"""Every class of bad input to slimops.wo_gemm raises a clear Python error."""

import pytest
import torch

import slimops
from slimops.formats import quantize_int8

from conftest import requires_cuda


@pytest.fixture
def prob():
    w = torch.randn(32, 64)
    q, s = quantize_int8(w, 16)
    return torch.randn(4, 64), q, s, torch.randn(32)


def call(x, q, s, b=None, bits=8, gs=16, z=None):
    return torch.ops.slimops.wo_gemm(x, q, s, z, b, bits, gs)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda x, q, s, b: (x.to(torch.float64), q, s, b), r"x must be float32, float16 or bfloat16, got Double"),
        (lambda x, q, s, b: (x.to(torch.int32), q, s, b), r"x must be float32, float16 or bfloat16"),
        (lambda x, q, s, b: (x, q.to(torch.int32), s, b), r"qweight must be int8"),
        (lambda x, q, s, b: (x, q.reshape(-1), s, b), r"qweight must be 2-D"),
        (lambda x, q, s, b: (x[:, :48], q, s, b), r"x's last dimension must equal K = 64"),
        (lambda x, q, s, b: (x, q, s[:, :2], b), r"scales must have shape \[N, K / group_size\] = \[32, 4\]"),
        (lambda x, q, s, b: (x, q, s.to(torch.float16), b), r"scales must be float32"),
        (lambda x, q, s, b: (x, q, s.unsqueeze(0), b), r"scales must have shape"),
        (lambda x, q, s, b: (x, q, s, b[:7]), r"bias must have shape \[N\] = \[32\]"),
        (lambda x, q, s, b: (x, q, s, b.to(torch.int64)), r"bias must be float32, float16 or bfloat16"),
        (lambda x, q, s, b: (torch.tensor(1.0), q, s, b), r"x must have at least 1 dimension"),
        (lambda x, q, s, b: (x, q.t(), s, b), r"qweight must be contiguous|x's last dimension"),
    ],
)
def test_bad_tensor_arguments(prob, mutate, match):
    x, q, s, b = mutate(*prob)
    with pytest.raises(RuntimeError, match=match):
        call(x, q, s, b)


def test_bad_bits_and_group_size(prob):
    x, q, s, b = prob
    with pytest.raises(RuntimeError, match=r"bits must be 4 or 8, got 3"):
        call(x, q, s, b, bits=3)
    with pytest.raises(RuntimeError, match=r"qweight must be uint8 \(two packed int4 per byte\) for bits=4"):
        call(x, q, s, b, bits=4)
    with pytest.raises(RuntimeError, match=r"K = 64 must be divisible by group_size = 24"):
        call(x, q, s, b, gs=24)
    with pytest.raises(RuntimeError, match=r"group_size must be -1 \(per channel\) or positive"):
        call(x, q, s, b, gs=0)


def test_bad_int4_arguments():
    from slimops.formats import quantize

    qw = quantize(torch.randn(16, 64), bits=4, group_size=32, symmetric=False)
    x = torch.randn(2, 64)
    with pytest.raises(RuntimeError, match=r"x's last dimension must equal K = 64 \(qweight is \[N, K / 2\]"):
        call(x[:, :32], qw.qweight, qw.scales, bits=4, gs=32)
    with pytest.raises(RuntimeError, match=r"int4 weights need K divisible by 32 \(the packing block\), got K = 48"):
        call(torch.randn(2, 48), qw.qweight[:, :24].contiguous(), qw.scales[:, :1].contiguous(), bits=4, gs=48)
    with pytest.raises(RuntimeError, match=r"int4 weights need group_size divisible by 32, got 16"):
        call(x, qw.qweight, torch.ones(16, 4), bits=4, gs=16)
    with pytest.raises(RuntimeError, match=r"zeros must have shape \[N, K / group_size\] = \[16, 2\]"):
        call(x, qw.qweight, qw.scales, bits=4, gs=32, z=qw.zeros[:, :1].contiguous())
    with pytest.raises(RuntimeError, match=r"zeros must be float32"):
        call(x, qw.qweight, qw.scales, bits=4, gs=32, z=qw.zeros.to(torch.int32))


def test_noncontiguous_qweight(prob):
    x, q, s, b = prob
    q2 = torch.cat([q, q], dim=1)[:, ::2]
    with pytest.raises(RuntimeError, match=r"qweight must be contiguous"):
        call(x, q2, s, b)


def test_bad_cpu_isa_name():
    with pytest.raises(ValueError, match=r"unknown CPU ISA 'sse9'"):
        slimops._C.set_cpu_isa("sse9")


def test_fake_kernel_reports_the_same_errors(prob):
    x, q, s, b = prob
    from torch._subclasses.fake_tensor import FakeTensorMode

    x48 = x[:, :48].contiguous()
    with FakeTensorMode() as mode:
        fx, fq, fs = mode.from_tensor(x48), mode.from_tensor(q), mode.from_tensor(s)
        with pytest.raises(RuntimeError, match=r"x's last dimension must equal K = 64"):
            call(fx, fq, fs)


@requires_cuda
def test_device_mismatch(prob):
    x, q, s, b = prob
    with pytest.raises(RuntimeError, match=r"zeros is on cpu but x is on cuda"):
        call(x.cuda().half(), q.cuda(), s.cuda(), None, z=torch.zeros_like(s))
    with pytest.raises(RuntimeError, match=r"qweight is on cpu but x is on cuda"):
        call(x.cuda().half(), q, s.cuda(), None)
    with pytest.raises(RuntimeError, match=r"scales is on cpu but x is on cuda"):
        call(x.cuda().half(), q.cuda(), s, None)
    with pytest.raises(RuntimeError, match=r"bias is on cpu but x is on cuda"):
        call(x.cuda().half(), q.cuda(), s.cuda(), b)
    with pytest.raises(RuntimeError, match=r"x must be float16 or bfloat16, got Float"):
        call(x.cuda(), q.cuda(), s.cuda(), None)

