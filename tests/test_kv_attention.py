"""slimops.kv_attention: every layout (contiguous, paged with shuffled block
tables), cache dtype (float, int8), append or not, Sq in {1, 2, 7, 64},
ragged cache_seqlens including 0, GQA/MQA, causal or not, against the float32
reference, including the cache contents the append writes; opcheck; and a
clear error for every class of bad input."""

import pytest
import torch

import slimops
from slimops import reference
from slimops.testing import randn_with_outliers, rel_error

from conftest import TOL, requires_cuda

CPU_DTYPES = [torch.float32, torch.bfloat16]
CUDA_DTYPES = [torch.float16, torch.bfloat16]


def device_dtypes():
    return [("cpu", dt) for dt in CPU_DTYPES] + [pytest.param("cuda", dt, marks=requires_cuda) for dt in CUDA_DTYPES]


def make_case(gen, *, B=3, sq=1, hq=8, hkv=2, d=64, s_max=150, dtype=torch.float32, int8=False, block_size=None,
              append=True, lens=None, device="cpu"):
    """Random caches filled everywhere (stale values past each length must
    never be read), random lengths leaving room for the append."""
    room = sq if append else 0
    if lens is None:
        lens = torch.randint(0, s_max - room + 1, (B,), generator=gen)
    lens = torch.as_tensor(lens, dtype=torch.int32)
    if block_size is None:
        cache_shape = (B, s_max, hkv, d)
        block_table = None
    else:
        per_seq = -(-s_max // block_size)
        blocks = B * per_seq + 3  # spare blocks that no sequence owns
        cache_shape = (blocks, block_size, hkv, d)
        block_table = torch.randperm(blocks, generator=gen)[: B * per_seq].reshape(B, per_seq).to(torch.int32)
    if int8:
        k_cache = torch.randint(-127, 128, cache_shape, generator=gen, dtype=torch.int8)
        v_cache = torch.randint(-127, 128, cache_shape, generator=gen, dtype=torch.int8)
        k_scale = torch.rand(cache_shape[:3], generator=gen) * 0.05 + 1e-3
        v_scale = torch.rand(cache_shape[:3], generator=gen) * 0.05 + 1e-3
    else:
        k_cache = randn_with_outliers(*cache_shape, dtype=dtype, generator=gen)
        v_cache = randn_with_outliers(*cache_shape, dtype=dtype, generator=gen)
        k_scale = v_scale = None
    q = randn_with_outliers(B, sq, hq, d, dtype=dtype, generator=gen)
    k = randn_with_outliers(B, sq, hkv, d, dtype=dtype, generator=gen) if append else None
    v = randn_with_outliers(B, sq, hkv, d, dtype=dtype, generator=gen) if append else None
    to = lambda t: None if t is None else t.to(device)  # noqa: E731
    return dict(q=to(q), k_cache=to(k_cache), v_cache=to(v_cache), cache_seqlens=to(lens), k=to(k), v=to(v),
                block_table=to(block_table), k_scale=to(k_scale), v_scale=to(v_scale))


def clone_case(case):
    return {name: (t.clone() if isinstance(t, torch.Tensor) else t) for name, t in case.items()}


def run_and_check(case, dtype, **kw):
    ref_case = clone_case(case)
    out = slimops.kv_attention(**case, **kw)
    ref = reference.kv_attention(**ref_case, **kw)
    assert out.shape == case["q"].shape and out.dtype == case["q"].dtype
    assert torch.isfinite(out).all()
    assert rel_error(out, ref) < TOL[dtype], rel_error(out, ref)
    # The append wrote exactly what the reference wrote, and nothing else.
    for name in ("k_cache", "v_cache", "k_scale", "v_scale"):
        if case[name] is not None:
            assert torch.equal(case[name], ref_case[name]), name
    return out, ref


@pytest.mark.parametrize("device,dtype", device_dtypes())
@pytest.mark.parametrize("sq", [1, 2, 7, 64])
@pytest.mark.parametrize("layout", ["contiguous", "paged16", "paged64"])
@pytest.mark.parametrize("int8", [False, True])
@pytest.mark.parametrize("append", [True, False])
def test_matches_reference(device, dtype, sq, layout, int8, append, gen):
    block_size = {"contiguous": None, "paged16": 16, "paged64": 64}[layout]
    case = make_case(gen, sq=sq, dtype=dtype, int8=int8, block_size=block_size, append=append, device=device,
                     s_max=200, d=128 if sq < 64 else 64)
    run_and_check(case, dtype)


@pytest.mark.parametrize("device,dtype", device_dtypes())
@pytest.mark.parametrize("hq,hkv", [(8, 8), (8, 1), (12, 4)])
@pytest.mark.parametrize("causal", [True, False])
def test_heads_and_masking(device, dtype, hq, hkv, causal, gen):
    case = make_case(gen, sq=5, hq=hq, hkv=hkv, dtype=dtype, device=device)
    run_and_check(case, dtype, causal=causal)


@pytest.mark.parametrize("device,dtype", device_dtypes())
def test_ragged_lengths_with_zero(device, dtype, gen):
    for int8 in (False, True):
        case = make_case(gen, B=4, sq=3, dtype=dtype, int8=int8, lens=[0, 1, 149 - 3, 77], s_max=149, device=device)
        run_and_check(case, dtype)


@pytest.mark.parametrize("device,dtype", device_dtypes())
def test_fully_masked_queries_are_zero(device, dtype, gen):
    # No append and a cache shorter than Sq: the first queries see no key.
    case = make_case(gen, B=2, sq=7, dtype=dtype, append=False, lens=[3, 0], device=device)
    out = slimops.kv_attention(**clone_case(case))
    ref = reference.kv_attention(**clone_case(case))
    assert torch.equal(out[0, :4], torch.zeros_like(out[0, :4]))
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    assert rel_error(out[0, 4:], ref[0, 4:]) < TOL[dtype]


@pytest.mark.parametrize("device,dtype", device_dtypes())
def test_long_context_splits(device, dtype, gen):
    # Long enough that the split-KV path (several partials per sequence) runs.
    case = make_case(gen, B=1, sq=1, hq=32, hkv=8, d=128, dtype=dtype, s_max=5000, lens=[4900], device=device)
    run_and_check(case, dtype)
    case = make_case(gen, B=2, sq=2, hq=8, hkv=2, d=128, dtype=dtype, s_max=3000, lens=[2500, 17], int8=True,
                     block_size=16, device=device)
    run_and_check(case, dtype)


def test_odd_head_dim_and_scale_cpu(cpu_isa, gen):
    # D = 36: not a multiple of 8, so the scalar kernel serves every ISA.
    for d in (36, 64):
        case = make_case(gen, sq=2, d=d, hq=6, hkv=3)
        run_and_check(case, torch.float32, softmax_scale=0.3)


@pytest.mark.parametrize("dtype", CPU_DTYPES)
def test_every_cpu_isa(cpu_isa, dtype, gen):
    for int8, block_size in ((False, None), (True, 16)):
        case = make_case(gen, sq=3, dtype=dtype, int8=int8, block_size=block_size, d=128)
        run_and_check(case, dtype)


def test_strided_inputs(gen):
    # q, k and v as slices of wider tensors; the caches as a slice of a
    # wider head axis (the heads of another layer interleaved).
    B, sq, hq, hkv, d = 2, 3, 8, 2, 64
    q = randn_with_outliers(B, sq, hq, 2 * d, generator=gen)[..., :d]
    kv = randn_with_outliers(B, sq, hkv, 2, d, generator=gen)
    k, v = kv[:, :, :, 0], kv[:, :, :, 1]
    big_k = randn_with_outliers(B, 90, 2 * hkv, d, generator=gen)
    big_v = randn_with_outliers(B, 90, 2 * hkv, d, generator=gen)
    k_cache, v_cache = big_k[:, :, hkv:], big_v[:, :, hkv:]
    lens = torch.tensor([10, 80], dtype=torch.int32)
    ref_k, ref_v = k_cache.clone(), v_cache.clone()
    out = slimops.kv_attention(q, k_cache, v_cache, lens, k, v)
    ref = reference.kv_attention(q, ref_k, ref_v, lens, k, v)
    assert rel_error(out, ref) < 1e-4
    assert torch.equal(k_cache, ref_k) and torch.equal(v_cache, ref_v)


def test_int8_append_quantises_like_reference(gen):
    case = make_case(gen, B=2, sq=4, int8=True, lens=[0, 50])
    before = case["k_cache"].clone()
    run_and_check(case, torch.float32)
    assert not torch.equal(case["k_cache"], before)  # the append did write


@pytest.mark.parametrize("device,dtype", device_dtypes())
@pytest.mark.parametrize("int8,paged,append", [(False, False, True), (True, True, True), (False, True, False)])
def test_opcheck_kv_attention(device, dtype, int8, paged, append, gen):
    case = make_case(gen, B=2, sq=2, dtype=dtype, int8=int8, block_size=16 if paged else None, append=append,
                     s_max=64, device=device)
    args = (case["q"], case["k_cache"], case["v_cache"], case["cache_seqlens"], case["k"], case["v"], None, True,
            case["block_table"], case["k_scale"], case["v_scale"])
    torch.library.opcheck(torch.ops.slimops.kv_attention.default, args)


def test_compiles_with_fullgraph(gen):
    case = make_case(gen, B=2, sq=1, s_max=64)
    ref_case = clone_case(case)
    fn = torch.compile(lambda c: slimops.kv_attention(**c), fullgraph=True, backend="aot_eager")
    out = fn(case)
    ref = reference.kv_attention(**ref_case)
    assert rel_error(out, ref) < 1e-4
    assert torch.equal(case["k_cache"], ref_case["k_cache"])  # the mutation survives functionalisation
