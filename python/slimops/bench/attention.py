"""`slimops bench attention`: decode attention over a KV cache (Sq = 1),
slimops.kv_attention against F.scaled_dot_product_attention with each of its
backends, on design.md's shapes (Hq = 32, Hkv = 8, D = 128).

Rows per (B, L): the bf16 (CUDA) / fp32 and bf16 (CPU) cache against every
SDPA backend; and our variants against our own plain cache: the int8 cache,
append + attend (the new token written by the op), and the paged cache with
blocks of 16. Effective bandwidth is the bytes of K and V (and int8 scales)
one call must read, over its time.
"""

import argparse

import torch
import torch.nn.functional as F

from ..ops import kv_attention
from ..reference import kv_attention as reference_kv_attention
from ..reference import quantize_kv_int8
from ..testing import randn_with_outliers, rel_error
from .runner import DTYPES, Impl, Problem, parse_dtypes, register_family

CUDA_CASES = "1x4096,1x32768,8x4096,8x16384,32x8192"
CPU_CASES = "1x4096,1x16384"
CUDA_DTYPES = "bf16"
CPU_DTYPES = "fp32,bf16"
HQ, HKV, D = 32, 8, 128
PAGE = 16


def _parse_cases(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        try:
            b, n = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"cases are BxL, e.g. 8x16384; got {item!r}") from None
        if min(b, n) < 1:
            raise argparse.ArgumentTypeError(f"B and L must be positive, got {item!r}")
        out.append((b, n))
    return out



def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("--cases", type=_parse_cases, default=None, help=f"B x L list (default cuda: {CUDA_CASES}; cpu: {CPU_CASES})")
    p.add_argument("--dtype", type=parse_dtypes, default=None, help=f"q / cache dtypes (default cuda: {CUDA_DTYPES}; cpu: {CPU_DTYPES})")
    p.add_argument("--no-variants", action="store_true", help="only the plain cache against SDPA (no int8 / append / paged rows)")


def _sdpa_impls(q, k_cache, v_cache, L, device):
    """SDPA on the first L positions as a user would call it for decode:
    q [B, Hq, 1, D], k/v [B, Hkv, L, D] views of the cache, GQA in the kernel
    (enable_gqa). Backends that cannot take GQA get K/V repeated to Hq heads
    first, as a user would have to, and say so in their name."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    qs = q.transpose(1, 2)
    ks, vs = k_cache[:, :L].transpose(1, 2), v_cache[:, :L].transpose(1, 2)
    backends = (
        [("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]
        if device.type == "cuda"
        else [("cpu", None)]
    )
    impls = []
    for name, backend in backends:
        def call(backend=backend, gqa=True):
            if backend is None:
                return F.scaled_dot_product_attention(qs, ks, vs, enable_gqa=True)
            with sdpa_kernel([backend]):
                if gqa:
                    return F.scaled_dot_product_attention(qs, ks, vs, enable_gqa=True)
                rep = HQ // HKV
                return F.scaled_dot_product_attention(qs, ks.repeat_interleave(rep, 1), vs.repeat_interleave(rep, 1))
        try:
            call()
            impls.append(Impl(f"SDPA {name}", call))
        except RuntimeError:
            try:
                call(gqa=False)
                impls.append(Impl(f"SDPA {name} (K/V repeated)", lambda c=call: c(gqa=False)))
            except RuntimeError:
                pass  # this backend does not run here at all: no row
    return impls


def _paged(cache, table):
    """The cache's contents in blocks of PAGE positions, at the (shuffled)
    blocks block_table names."""
    B, per_seq = table.shape
    paged = torch.empty((B * per_seq, PAGE, *cache.shape[2:]), dtype=cache.dtype, device=cache.device)
    paged[table.flatten().long()] = cache[:, : per_seq * PAGE].reshape(B * per_seq, PAGE, *cache.shape[2:])
    return paged


def build_problems(args) -> tuple[str, list[Problem]]:
    cuda = args.device == "cuda"
    dev = torch.device(args.device)
    cases = args.cases or _parse_cases(CUDA_CASES if cuda else CPU_CASES)
    dtypes = args.dtype or parse_dtypes(CUDA_DTYPES if cuda else CPU_DTYPES)
    gen = torch.Generator(device=dev).manual_seed(0)
    problems = []
    for dname in dtypes:
        dt = DTYPES[dname]
        for B, L in cases:
            s_max = L + PAGE  # room for the appended token, whole pages
            k_cache = randn_with_outliers(B, s_max, HKV, D, dtype=dt, device=dev, generator=gen)
            v_cache = randn_with_outliers(B, s_max, HKV, D, dtype=dt, device=dev, generator=gen)
            q = randn_with_outliers(B, 1, HQ, D, dtype=dt, device=dev, generator=gen)
            lens = torch.full((B,), L, dtype=torch.int32, device=dev)
            es = k_cache.element_size()
            kv_bytes = 2 * B * L * HKV * D * es

            def plain(q=q, k_cache=k_cache, v_cache=v_cache, lens=lens):
                return kv_attention(q, k_cache, v_cache, lens)

            # Closures bind this case's tensors and functions as defaults: they
            # run after every problem is built.
            def verify(q=q, k_cache=k_cache, v_cache=v_cache, lens=lens, plain=plain):
                return rel_error(plain(), reference_kv_attention(q, k_cache, v_cache, lens))

            label = {"cache": dname, "B": B, "L": L}
            impls = [Impl(f"slimops {dname}", plain, ours=True), *_sdpa_impls(q, k_cache, v_cache, L, dev)]
            problems.append(Problem(label, impls, kv_bytes, verify))
            if args.no_variants:
                continue
            peer = Impl(f"slimops {dname}", plain)

            # int8 cache: the same contents quantised per (position, head).
            kq, ks = quantize_kv_int8(k_cache)
            vq, vs = quantize_kv_int8(v_cache)
            int8 = lambda q=q, kq=kq, vq=vq, ks=ks, vs=vs, lens=lens: kv_attention(q, kq, vq, lens, k_scale=ks, v_scale=vs)  # noqa: E731
            int8_verify = lambda q=q, kq=kq, vq=vq, ks=ks, vs=vs, lens=lens, int8=int8: rel_error(int8(), reference_kv_attention(q, kq, vq, lens, k_scale=ks, v_scale=vs))  # noqa: E731
            problems.append(Problem({**label, "cache": "int8"}, [Impl("slimops int8", int8, ours=True), peer],
                                    2 * B * L * HKV * (D + 4), int8_verify))

            # Append + attend: writes the new token at position L each call
            # (which no other row reads) and attends over L + 1 keys.
            k_new = randn_with_outliers(B, 1, HKV, D, dtype=dt, device=dev, generator=gen)
            v_new = randn_with_outliers(B, 1, HKV, D, dtype=dt, device=dev, generator=gen)
            append = lambda q=q, k_cache=k_cache, v_cache=v_cache, l=lens, kn=k_new, vn=v_new: kv_attention(q, k_cache, v_cache, l, kn, vn)  # noqa: E731
            problems.append(Problem({**label, "cache": f"{dname} +append"}, [Impl("slimops append+attend", append, ours=True), peer],
                                    kv_bytes, None))
            # The same into the int8 cache: the op quantises the new row as it appends it (decode with an int8 KV cache).
            int8_append = lambda q=q, kq=kq, vq=vq, ks=ks, vs=vs, l=lens, kn=k_new, vn=v_new: kv_attention(q, kq, vq, l, kn, vn, k_scale=ks, v_scale=vs)  # noqa: E731
            problems.append(Problem({**label, "cache": "int8 +append"}, [Impl("slimops int8 append+attend", int8_append, ours=True), peer],
                                    2 * B * L * HKV * (D + 4), None))

            # Paged, blocks of 16, shuffled.
            table = torch.randperm(B * (s_max // PAGE), device=dev).reshape(B, -1).to(torch.int32)
            kp, vp = _paged(k_cache, table), _paged(v_cache, table)
            paged = lambda q=q, kp=kp, vp=vp, lens=lens, table=table: kv_attention(q, kp, vp, lens, block_table=table)  # noqa: E731
            paged_verify = lambda paged=paged, plain=plain: rel_error(paged(), plain())  # noqa: E731  (same contents: same answer)
            problems.append(Problem({**label, "cache": f"{dname} paged{PAGE}"}, [Impl("slimops paged", paged, ours=True), peer],
                                    kv_bytes, paged_verify))
    return f"decode attention over a KV cache, Hq={HQ} Hkv={HKV} D={D} Sq=1, {args.device}", problems


register_family("attention", add_arguments, build_problems)
