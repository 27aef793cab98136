"""slimops.wo_gemm_lowrank: the weight-only GEMM plus a low-rank correction
(x @ (dequant(Wq) + lr_a @ lr_b)^T + bias), one fused kernel on CUDA at
M <= 16 and the composition of wo_gemm and lowrank_linear elsewhere.
Against slimops.reference, opcheck, autograd, bad inputs, CUDA graphs."""

import pytest
import torch

import slimops
from slimops import reference
from slimops.formats import quantize
from slimops.testing import randn_with_outliers, rel_error

from conftest import OPCHECK_DEVICE_DTYPES, TOL, devices, dtypes_for, requires_cuda
from test_wo_gemm import INT16_PATH_TOL_FP32


def make_problem(n, k, r, bits, gs, symmetric, bias, dtype, device, gen):
    qw = quantize(randn_with_outliers(n, k, generator=gen) * 0.05, bits, gs, symmetric)
    # A correction a tenth of the weight, as a fitted one is: large enough
    # that dropping it, or adding it twice, fails the tolerance.
    a = (randn_with_outliers(n, r, generator=gen) * 0.05 * r**-0.5).to(dtype)
    b = (randn_with_outliers(r, k, generator=gen) * 0.1).to(dtype)
    bi = randn_with_outliers(n, generator=gen) if bias else None
    z = None if qw.zeros is None else qw.zeros.to(device)
    to = lambda t: None if t is None else t.to(device)  # noqa: E731
    return to(qw.qweight), to(qw.scales), z, to(bi), to(a), to(b)


def tol(dtype):
    # float32 on the CPU runs wo_gemm's int16 path: its documented 1e-3
    # (tests/test_wo_gemm.py); bf16/fp16 keep design.md's bounds.
    return INT16_PATH_TOL_FP32 if dtype == torch.float32 and slimops._C.selected_cpu_isa() != "scalar" else TOL[dtype]


def check(x, weights, bits, gs):
    q, s, z, bi, a, b = weights
    y = slimops.wo_gemm_lowrank(x, q, s, a, b, bi, zeros=z, bits=bits, group_size=gs)
    ref = reference.wo_gemm_lowrank(x, q, s, z, bi, a, b, bits, gs)
    assert y.shape == ref.shape and y.dtype == x.dtype
    err = rel_error(y, ref)
    # The correction alone, so a kernel that drops it cannot pass.
    corr = rel_error(reference.wo_gemm(x, q, s, z, bi, bits, gs), ref)
    assert err < tol(x.dtype) and err < 0.2 * corr, (err, corr)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize(
    "bits,gs,symmetric,bias",
    [(4, 128, True, True), (4, 32, False, False), (4, 64, False, True), (8, -1, True, True), (8, 32, False, False)],
)
@pytest.mark.parametrize("m", [1, 3, 8, 9, 16, 17, 40])
def test_matches_reference(device, bits, gs, symmetric, bias, m, gen):
    for dtype in dtypes_for(device)[:2]:
        w = make_problem(200, 256, 24, bits, gs, symmetric, bias, dtype, device, gen)
        x = randn_with_outliers(m, 256, dtype=dtype, generator=gen).to(device)
        check(x, w, bits, gs)


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "n,k,r,m",
    [
        (4096, 4096, 64, 1),  # the shape class: split-K, every block shares t
        (4096, 4096, 64, 16),
        (1000, 1024, 72, 5),  # two rank chunks, N not a multiple of 128
        (384, 2048, 8, 12),
        (8192, 512, 128, 2),  # many tiles, few splits
        (256, 512, 5, 4),  # rank not a multiple of 8: the composed path
        (128 * 600, 256, 16, 1),  # more tiles than an H100 holds at once: the composed path
    ],
)
def test_cuda_shapes(dtype, n, k, r, m, gen):
    w = make_problem(n, k, r, 4, 128, False, True, dtype, "cuda", gen)
    x = randn_with_outliers(m, k, dtype=dtype, generator=gen).to("cuda")
    check(x, w, 4, 128)


@requires_cuda
def test_cuda_batched_and_strided_x(gen):
    w = make_problem(512, 1024, 64, 4, 128, True, True, torch.bfloat16, "cuda", gen)
    x = randn_with_outliers(2, 3, 2048, dtype=torch.bfloat16, generator=gen).to("cuda")[..., ::2]
    check(x, w, 4, 128)


@requires_cuda
def test_cuda_graph_replays_match(gen):
    # The launch zeroes its counters and t with a memset: it must hold up
    # under capture and repeated replay, as in a served decode step.
    q, s, z, bi, a, b = make_problem(2048, 2048, 64, 4, 128, False, True, torch.bfloat16, "cuda", gen)
    x = randn_with_outliers(4, 2048, dtype=torch.bfloat16, generator=gen).to("cuda")
    run = lambda: slimops.wo_gemm_lowrank(x, q, s, a, b, bi, zeros=z, bits=4, group_size=128)  # noqa: E731
    eager = run()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        run()  # warm-up outside the capture
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            out = run()
    for _ in range(5):
        graph.replay()
        assert rel_error(out, eager) < 1e-3  # float atomics: the order of t's sums may vary
    x.copy_(randn_with_outliers(4, 2048, dtype=torch.bfloat16, generator=gen).to("cuda"))
    graph.replay()
    assert rel_error(out, run()) < 1e-3


@pytest.mark.parametrize("device,dtype", OPCHECK_DEVICE_DTYPES)
@pytest.mark.parametrize("bits,gs,symmetric,bias,x_grad", [(4, 64, True, True, True), (8, 32, False, False, False)])
def test_opcheck(device, dtype, bits, gs, symmetric, bias, x_grad, gen):
    q, s, z, bi, a, b = make_problem(40, 128, 8, bits, gs, symmetric, bias, dtype, device, gen)
    x = randn_with_outliers(3, 5, 128, dtype=dtype, generator=gen).to(device).requires_grad_(x_grad)
    if bi is not None:
        bi = bi.requires_grad_(x_grad)
    torch.library.opcheck(torch.ops.slimops.wo_gemm_lowrank.default, (x, q, s, z, bi, a, b, bits, gs))


def test_backward_matches_corrected_linear(gen):
    q, s, z, bi, a, b = make_problem(24, 64, 4, 4, 32, False, True, torch.float32, "cpu", gen)
    w = slimops.formats.dequantize(q, s, z, 4, 32) + a @ b
    x = randn_with_outliers(7, 64, generator=gen).requires_grad_()
    bi = bi.requires_grad_()
    gy = randn_with_outliers(7, 24, generator=gen)
    slimops.wo_gemm_lowrank(x, q, s, a, b, bi, zeros=z, bits=4, group_size=32).backward(gy)
    x2, b2 = x.detach().clone().requires_grad_(), bi.detach().clone().requires_grad_()
    torch.nn.functional.linear(x2, w, b2).backward(gy)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(bi.grad, b2.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda a, b: (a[:, :3], b), r"lr_a must be \[N, r\] = \[40, 8\]"),
        (lambda a, b: (a[:10], b), r"lr_a must be \[N, r\] = \[40, 8\]"),
        (lambda a, b: (a, b[:, :64]), r"lr_b must be \[r, K\] = \[8, 128\]"),
        (lambda a, b: (a, b[:0]), r"rank \(rows of lr_b\) must be at least 1"),
        (lambda a, b: (a.reshape(-1), b), r"lr_a must be 2-D \[N, r\] and lr_b 2-D \[r, K\]"),
        (lambda a, b: (a.to(torch.float16), b), r"lr_a must have x's dtype"),
        (lambda a, b: (a, b.to(torch.float16)), r"lr_b must have x's dtype"),
    ],
)
def test_bad_correction_arguments(device, mutate, match, gen):
    q, s, z, bi, a, b = make_problem(40, 128, 8, 4, 32, True, True, torch.bfloat16, device, gen)
    x = randn_with_outliers(2, 128, dtype=torch.bfloat16, generator=gen).to(device)
    a, b = mutate(a, b)
    with pytest.raises(RuntimeError, match=match):
        torch.ops.slimops.wo_gemm_lowrank(x, q, s, z, bi, a, b, 4, 32)


@requires_cuda
def test_correction_on_another_device_is_refused(gen):
    q, s, z, bi, a, b = make_problem(40, 128, 8, 4, 32, True, True, torch.bfloat16, "cuda", gen)
    x = randn_with_outliers(2, 128, dtype=torch.bfloat16, generator=gen).to("cuda")
    with pytest.raises(RuntimeError, match=r"lr_b is on cpu but x is on cuda"):
        torch.ops.slimops.wo_gemm_lowrank(x, q, s, z, bi, a, b.cpu(), 4, 32)


def test_weight_errors_are_wo_gemms(gen):
    q, s, z, bi, a, b = make_problem(40, 128, 8, 4, 32, True, True, torch.float32, "cpu", gen)
    x = randn_with_outliers(2, 128, generator=gen)
    with pytest.raises(RuntimeError, match=r"bits must be 4 or 8, got 3"):
        torch.ops.slimops.wo_gemm_lowrank(x, q, s, z, bi, a, b, 3, 32)
    with pytest.raises(RuntimeError, match=r"x's last dimension must equal K = 128"):
        torch.ops.slimops.wo_gemm_lowrank(x[:, :96], q, s, z, bi, a, b, 4, 32)


def test_bench_int4_lr_tiny_cpu(tmp_path):
    from slimops.cli import main

    path = tmp_path / "r.json"
    assert main(["bench", "int4-lr", "--device", "cpu", "--shapes", "256x96x8,128x48x16", "--m", "1,5", "--reps", "3",
                 "--json", str(path)]) == 0
    import json

    rows = json.loads(path.read_text())["rows"]
    assert [(r["K x N x r"], r["M"]) for r in rows] == [("256x96x8", 1), ("256x96x8", 5), ("128x48x16", 1), ("128x48x16", 5)]
    assert all(r["rel err"] < 1e-3 for r in rows)
    assert rows[0]["x vs slimops int4 alone"] > 0 and rows[0]["slimops int4+lr (ms)"] > 0
