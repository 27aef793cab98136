"""Every class of bad input to slimops.kv_attention raises a clear Python
error, both from the kernel's bindings (eager) and from the fake kernel
(tracing), and the caches are left untouched."""

import pytest
import torch

import slimops

from conftest import requires_cuda


def good(device="cpu", dtype=torch.float32, int8=False, paged=False):
    B, sq, hq, hkv, d, s_max = 2, 1, 4, 2, 64, 32
    cache_shape = (6, 16, hkv, d) if paged else (B, s_max, hkv, d)
    cdt = torch.int8 if int8 else dtype
    a = dict(
        q=torch.randn(B, sq, hq, d, dtype=dtype),
        k_cache=torch.zeros(cache_shape, dtype=cdt),
        v_cache=torch.zeros(cache_shape, dtype=cdt),
        cache_seqlens=torch.tensor([3, 5], dtype=torch.int32),
        k=torch.randn(B, sq, hkv, d, dtype=dtype),
        v=torch.randn(B, sq, hkv, d, dtype=dtype),
        block_table=torch.tensor([[0, 1], [2, 3]], dtype=torch.int32) if paged else None,
        k_scale=torch.ones(cache_shape[:3]) if int8 else None,
        v_scale=torch.ones(cache_shape[:3]) if int8 else None,
    )
    return {n: (t.to(device) if isinstance(t, torch.Tensor) else t) for n, t in a.items()}


CASES = [
    (lambda a: a.update(q=a["q"][0]), r"q must be 4-D \[B, Sq, Hq, D\]"),
    (lambda a: a.update(q=a["q"].double()), r"q must be float32, float16 or bfloat16"),
    (lambda a: a.update(q=torch.randn(2, 1, 64, 4).transpose(2, 3)), r"q must have a contiguous last dimension"),
    (lambda a: a.update(q=torch.randn(2, 1, 3, 64)), r"Hq = 3 must be a multiple of the caches' Hkv = 2"),
    (lambda a: a.update(q=torch.randn(2, 1, 4, 32)), r"the caches' head dim must be q's D = 32"),
    (lambda a: a.update(k_cache=a["k_cache"][0]), r"k_cache must be 4-D"),
    (lambda a: a.update(k_cache=a["k_cache"].double(), v_cache=a["v_cache"].double()), r"caches must have q's dtype"),
    (lambda a: a.update(v_cache=a["v_cache"][:, :16]), r"k_cache and v_cache must have the same dtype and shape"),
    (lambda a: a.update(k_cache=a["k_cache"][:1], v_cache=a["v_cache"][:1]), r"the caches' batch must be q's B = 2"),
    (lambda a: a.update(cache_seqlens=a["cache_seqlens"].long()), r"cache_seqlens must be int32 \[B\]"),
    (lambda a: a.update(cache_seqlens=torch.tensor([3], dtype=torch.int32)), r"cache_seqlens must be int32 \[B\] = \[2\]"),
    (lambda a: a.update(cache_seqlens=torch.tensor([3, 32], dtype=torch.int32)),
     r"cache_seqlens\[1\] = 32 plus the 1 appended tokens does not fit the cache's 32 positions"),
    (lambda a: a.update(cache_seqlens=torch.tensor([-1, 0], dtype=torch.int32)), r"cache_seqlens\[0\] = -1"),
    (lambda a: a.update(v=None), r"give both k and v, or neither"),
    (lambda a: a.update(k=a["k"][:, :, :1], v=a["v"][:, :, :1]), r"k must be \[B, Sq, Hkv, D\] = \[2, 1, 2, 64\]"),
    (lambda a: a.update(k=a["k"].bfloat16(), v=a["v"].bfloat16()), r"k and v must have q's dtype"),
    (lambda a: a.update(k_scale=torch.ones(2, 32, 2), v_scale=torch.ones(2, 32, 2)), r"only for int8 caches"),
]


def check_raises(args, match):
    caches = (args["k_cache"].clone(), args["v_cache"].clone())
    with pytest.raises((RuntimeError, ValueError), match=match):
        slimops.kv_attention(**args)
    assert torch.equal(args["k_cache"], caches[0]) and torch.equal(args["v_cache"], caches[1])


@pytest.mark.parametrize("mutate,match", CASES)
def test_bad_arguments_cpu(mutate, match):
    args = good()
    mutate(args)
    check_raises(args, match)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda a: a.update(k_scale=None), r"an int8 cache needs k_scale and v_scale"),
        (lambda a: a.update(k_scale=a["k_scale"][:, :8], v_scale=a["v_scale"][:, :8]),
         r"k_scale and v_scale must be float32 \[2, 32, 2\]"),
        (lambda a: a.update(k_scale=a["k_scale"].double(), v_scale=a["v_scale"].double()), r"must be float32"),
    ],
)
def test_bad_int8_scales(mutate, match):
    args = good(int8=True)
    mutate(args)
    check_raises(args, match)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda a: a.update(block_table=a["block_table"].long()), r"block_table must be int32 \[B, max_blocks\]"),
        (lambda a: a.update(block_table=a["block_table"][:1]), r"block_table must be int32 \[B, max_blocks\] with B = 2"),
        (lambda a: a.update(block_table=torch.tensor([[9, 1], [2, 3]], dtype=torch.int32)),
         r"block_table\[0, 0\] = 9 is not a block of the cache \(6 blocks\)"),
        (lambda a: a.update(cache_seqlens=torch.tensor([3, 40], dtype=torch.int32)), r"does not fit the cache's 32 positions"),
    ],
)
def test_bad_paged_arguments(mutate, match):
    args = good(paged=True)
    mutate(args)
    check_raises(args, match)


def test_cpu_rejects_float16():
    args = good(dtype=torch.float16)
    check_raises(args, r"q must be float32 or bfloat16 on the CPU")


@pytest.mark.parametrize("mutate,match", CASES[:11] + CASES[13:])
def test_fake_kernel_errors_match(mutate, match):
    # Tracing with fake tensors hits the same checks (value checks excepted).
    from torch._subclasses.fake_tensor import FakeTensorMode

    args = good()
    mutate(args)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = {n: (mode.from_tensor(t) if isinstance(t, torch.Tensor) else t) for n, t in args.items()}
        with pytest.raises((RuntimeError, ValueError)):
            slimops.kv_attention(**fake)


@requires_cuda
def test_cuda_rejects_mixed_devices():
    args = good(device="cuda", dtype=torch.bfloat16)
    args["cache_seqlens"] = args["cache_seqlens"].cpu()
    check_raises(args, r"cache_seqlens is on cpu but q is on cuda")


@requires_cuda
def test_cuda_rejects_float32_and_odd_head_dim():
    check_raises(good(device="cuda", dtype=torch.float32), r"float16 or bfloat16 on CUDA")
    args = good(device="cuda", dtype=torch.bfloat16)
    args.update(q=args["q"][..., :48].contiguous(), k=args["k"][..., :48].contiguous(), v=args["v"][..., :48].contiguous(),
                k_cache=args["k_cache"][..., :48].contiguous(), v_cache=args["v_cache"][..., :48].contiguous())
    check_raises(args, r"head dim D must be 64 or 128 on CUDA")
