"""Standalone test + benchmark of the CUDA KV-cache attention kernel
(csrc/cuda/kv_attention/) through a ctypes shim, without building the
extension. Build the shim first (sm_90a shown):

    nvcc -std=c++17 -O3 -Icsrc --expt-relaxed-constexpr -shared -Xcompiler -fPIC \
        -gencode arch=compute_90a,code=sm_90a tools/harness/kv_attention_shim.cu \
        csrc/cuda/kv_attention/kv_attention.cu -o /tmp/libkv_attention.so
    python3 tools/harness/kv_attention_harness.py --lib /tmp/libkv_attention.so [--small] [--no-bench]

Correctness: float32 reference over the dequantised caches (int8 new rows
quantised as the spec says), relative error ||out - ref|| / ||ref||, the
appended cache rows and scales, and the rest of the cache untouched.
Timing: CUDA events, 256 MB L2 flush (--flush write: a fill, which leaves
L2 dirty, the default and what the notes quote; --flush read: a read of
another buffer), a sleep kernel so the host runs ahead, median of --reps.
--bench-only skips the correctness pass, --no-sdpa the SDPA peers, --shapes
picks (B, L) pairs. Variants beside the plain cache probe address effects:
s_max = L + 64 (batch stride no power of two) and V 2.3 MB after K in one
buffer (K-to-V distance no power of two).
"""

import argparse
import ctypes
import itertools
import math
import statistics
import sys
import zlib

import torch
import torch.nn.functional as F

DEV = "cuda"


def randn_outliers(*shape, dtype, gen=None):
    x = torch.randn(*shape, device=DEV, dtype=torch.float32)
    mask = torch.rand(*shape, device=DEV) < 0.01
    x = torch.where(mask, x * 12.0, x)
    return x.to(dtype)


class Shim:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        self.lib.kv_shim_workspace_bytes.restype = ctypes.c_int64
        self.lib.kv_shim_workspace_bytes.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_float, ctypes.c_int]
        self.lib.kv_shim_run.restype = ctypes.c_int
        self.lib.kv_shim_run.argtypes = [
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_float, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]

    def prepare(self, c, num_sms):
        """Packs a case into the shim's arrays and allocates the workspace."""
        q, out = c["q"], c["out"]
        kc = c["k_cache"]
        ptr = lambda t: t.data_ptr() if t is not None else 0  # noqa: E731
        ks = c.get("k_scale")
        kn = c.get("k_new")
        bt = c.get("block_table")
        iv = [q.stride(0), q.stride(1), q.stride(2),
              kc.stride(0), kc.stride(1), kc.stride(2),
              ks.stride(0) if ks is not None else 0, ks.stride(1) if ks is not None else 0,
              kn.stride(0) if kn is not None else 0, kn.stride(1) if kn is not None else 0,
              kn.stride(2) if kn is not None else 0,
              bt.stride(0) if bt is not None else 0, c.get("block_size", 0),
              out.stride(0), out.stride(1), out.stride(2),
              q.shape[0], q.shape[1], q.shape[2], c["hkv"], q.shape[3], c["s_max"],
              int(c["causal"]), 1 if q.dtype == torch.float16 else 2, int(c["int8"]), c.get("num_splits", 0)]
        ptrs = [ptr(q), ptr(kc), ptr(c["v_cache"]), ptr(ks), ptr(c.get("v_scale")), ptr(kn), ptr(c.get("v_new")),
                ptr(c["seqlens"]), ptr(bt), ptr(out)]
        iva = (ctypes.c_int64 * len(iv))(*iv)
        pa = (ctypes.c_void_p * len(ptrs))(*ptrs)
        ws_bytes = self.lib.kv_shim_workspace_bytes(iva, pa, c["scale"], num_sms)
        ws = torch.full((max(ws_bytes, 16),), 0xFF, dtype=torch.uint8, device=DEV)  # NaN poison
        stream = torch.cuda.current_stream().cuda_stream
        args = (iva, pa, ctypes.c_float(c["scale"]), ctypes.c_void_p(ws.data_ptr()), num_sms, ctypes.c_void_p(stream))
        return args, ws, ws_bytes

    def run(self, args):
        st = self.lib.kv_shim_run(*args)
        if st != 0:
            raise RuntimeError(f"kv_attention_cuda returned status {st}")


def quantise_rows(x):
    """x [..., d] float32 -> (int8 values, scale [...]) as the spec says."""
    amax = x.abs().amax(dim=-1)
    # A tensor divisor: torch turns division by a Python scalar into a multiply
    # by its reciprocal, one ulp off the IEEE quotient the spec means.
    scale = amax / torch.full_like(amax, 127.0)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    qv = torch.round(x / safe.unsqueeze(-1)).clamp(-127, 127)
    qv = torch.where(scale.unsqueeze(-1) > 0, qv, torch.zeros_like(qv))
    return qv.to(torch.int8), scale


def make_case(B, sq, hq, hkv, d, dtype, int8, block_size, append, causal, seqlens, slack=5, head_major=False,
              kv_gap=0):
    cap_needed = max(seqlens) + (sq if append else 0) + slack
    c = dict(hkv=hkv, causal=causal, int8=int8, scale=1.0 / math.sqrt(d))
    c["q"] = randn_outliers(B, sq, hq, d, dtype=dtype)
    c["out"] = torch.full((B, sq, hq, d), float("nan"), dtype=dtype, device=DEV)
    cdt = torch.int8 if int8 else dtype
    if block_size:
        max_blocks = (cap_needed + block_size - 1) // block_size
        nblocks = B * max_blocks + 3
        shape = (nblocks, block_size, hkv, d)
        perm = torch.randperm(nblocks, device=DEV)[: B * max_blocks].to(torch.int32)
        c["block_table"] = perm.view(B, max_blocks).contiguous()
        c["block_size"] = block_size
        c["s_max"] = max_blocks * block_size
    else:
        shape = (B, cap_needed, hkv, d)
        c["s_max"] = cap_needed
        if head_major:  # [B, hkv, s, d] storage seen through [B, s, hkv, d] strides
            shape = (B, hkv, cap_needed, d)
    if int8:
        c["k_cache"] = torch.randint(-127, 128, shape, dtype=torch.int8, device=DEV)
        c["v_cache"] = torch.randint(-127, 128, shape, dtype=torch.int8, device=DEV)
        sshape = (B, cap_needed, hkv) if head_major and not block_size else shape[:3]  # scale head stride 1
        c["k_scale"] = torch.rand(sshape, device=DEV) * 0.05 + 0.002
        c["v_scale"] = torch.rand(sshape, device=DEV) * 0.05 + 0.002
    else:
        c["k_cache"] = randn_outliers(*shape, dtype=cdt)
        c["v_cache"] = randn_outliers(*shape, dtype=cdt)
    if append:
        c["k_new"] = randn_outliers(B, sq, hkv, d, dtype=dtype)
        c["v_new"] = randn_outliers(B, sq, hkv, d, dtype=dtype)
    if kv_gap and not block_size and not head_major:
        # K and V in one buffer, V kv_gap bytes after the end of K: their distance
        # is then no power of two even when their sizes are.
        k, v = c["k_cache"], c["v_cache"]
        n, gap = k.numel(), kv_gap // k.element_size()
        buf = torch.empty(2 * n + gap, dtype=k.dtype, device=DEV)
        buf[:n].copy_(k.view(-1))
        buf[n + gap:].copy_(v.view(-1))
        c["k_cache"], c["v_cache"] = buf[:n].view(k.shape), buf[n + gap:].view(v.shape)
        del k, v
    if head_major and not block_size:
        for n in ("k_cache", "v_cache"):
            c[n] = c[n].transpose(1, 2)
    c["seqlens"] = torch.tensor(seqlens, dtype=torch.int32, device=DEV)
    return c


def dense_cache(c, name):
    """[B, s_max, hkv, d] float32 view of a cache (dequantised, gathered)."""
    x = c[name + "_cache"]
    xf = x.float()
    if c["int8"]:
        xf = xf * c[name + "_scale"].unsqueeze(-1)
    if "block_table" in c:
        bt = c["block_table"].long()
        B, mb = bt.shape
        xf = xf[bt.view(-1)].view(B, mb * c["block_size"], *xf.shape[2:])
    return xf


def reference(c, k_dense, v_dense):
    q = c["q"].float()
    B, sq, hq, d = q.shape
    hkv = c["hkv"]
    g = hq // hkv
    append = "k_new" in c
    out = torch.zeros(B, sq, hq, d, device=DEV)
    for b in range(B):
        L = int(c["seqlens"][b])
        t = L + (sq if append else 0)
        if t == 0:
            continue
        K = k_dense[b, :t].repeat_interleave(g, dim=1)  # [t, hq, d]
        V = v_dense[b, :t].repeat_interleave(g, dim=1)
        s = torch.einsum("ihd,jhd->hij", q[b], K) * c["scale"]
        j = torch.arange(t, device=DEV)
        i = torch.arange(sq, device=DEV)
        if c["causal"]:
            allowed = j[None, :] <= (t - sq + i)[:, None]
        else:
            allowed = torch.ones(sq, t, dtype=torch.bool, device=DEV)
        s = s.masked_fill(~allowed[None], float("-inf"))
        p = torch.softmax(s, dim=-1)
        p = torch.nan_to_num(p, nan=0.0)  # rows with no key
        out[b] = torch.einsum("hij,jhd->ihd", p, V)
    return out


def expected_caches(c):
    """Dense float caches after the append (what the kernel must attend over), plus
    the expected int8 rows / scales of the new positions."""
    kd, vd = dense_cache(c, "k"), dense_cache(c, "v")
    newq = {}
    if "k_new" in c:
        sq = c["q"].shape[1]
        for name, dense in (("k", kd), ("v", vd)):
            xn = c[name + "_new"].float()
            if c["int8"]:
                qv, sc = quantise_rows(xn)
                newq[name] = (qv, sc)
                deq = qv.float() * sc.unsqueeze(-1)
            else:
                deq = xn
            for b in range(xn.shape[0]):
                L = int(c["seqlens"][b])
                dense[b, L:L + sq] = deq[b]
    return kd, vd, newq


def cache_row_index(c, b, pos):
    """(block/sequence index, row) of position pos of sequence b in the cache tensor."""
    if "block_table" in c:
        bs = c["block_size"]
        return int(c["block_table"][b, pos // bs]), pos % bs
    return b, pos


def check_append(c, before):
    """Appended rows equal k_new / v_new (int8: quantised), everything else untouched."""
    if "k_new" not in c:
        for name in ("k_cache", "v_cache"):
            if not torch.equal(before[name], c[name]):
                return "cache changed without append"
        return None
    _, _, newq = expected_caches(c)
    sq = c["q"].shape[1]
    exp = {n: before[n].clone() for n in before}
    for b in range(c["q"].shape[0]):
        L = int(c["seqlens"][b])
        for j in range(sq):
            blk, row = cache_row_index(c, b, L + j)
            for name in ("k", "v"):
                if c["int8"]:
                    qv, sc = newq[name]
                    exp[name + "_cache"][blk, row] = qv[b, j]
                    exp[name + "_scale"][blk, row] = sc[b, j]
                else:
                    exp[name + "_cache"][blk, row] = c[name + "_new"][b, j]
    for n in exp:
        if not torch.equal(exp[n], c[n]):
            diff = (exp[n].float() - c[n].float()).abs()
            nbad = int((diff > 0).sum())
            if n.endswith("_cache") and c["int8"] and float(diff.max()) <= 1 and nbad <= 2:
                continue  # an exact .5 tie decided by the last ulp of x / scale
            return f"{n}: {nbad} elements differ (max {float(diff.max()):.3g})"
    return None


def run_case(shim, num_sms, **kw):
    c = make_case(**kw)
    kd, vd, _ = expected_caches(c)  # before the kernel mutates the caches
    before = {n: c[n].clone() for n in ("k_cache", "v_cache", "k_scale", "v_scale") if n in c}
    args, ws, _ = shim.prepare(c, num_sms)
    shim.run(args)
    torch.cuda.synchronize()
    ref = reference(c, kd, vd)
    out = c["out"].float()
    err = float((out - ref).norm() / ref.norm().clamp_min(1e-30))
    if not math.isfinite(err):
        err = float("inf")
    app = check_append(c, before)
    return err, app


def correctness(shim, small):
    nsm = torch.cuda.get_device_properties(0).multi_processor_count
    results = []
    heads = [(32, 8), (8, 8), (8, 1)]
    sqs = [1, 2, 7, 64]
    if small:
        configs = [
            dict(B=3, sq=1, hq=32, hkv=8, d=128, dtype=torch.bfloat16, int8=False, block_size=0, append=True,
                 causal=True, seqlens=[0, 70, 200]),
            dict(B=2, sq=7, hq=8, hkv=1, d=64, dtype=torch.float16, int8=True, block_size=16, append=True,
                 causal=True, seqlens=[5, 130]),
            dict(B=2, sq=2, hq=8, hkv=8, d=128, dtype=torch.float16, int8=True, block_size=0, append=False,
                 causal=False, seqlens=[0, 150]),
            dict(B=2, sq=1, hq=32, hkv=8, d=64, dtype=torch.bfloat16, int8=False, block_size=16, append=False,
                 causal=True, seqlens=[33, 300]),
        ]
        runs = [(cfg, n) for cfg in configs for n in (nsm, 1000)]
    else:
        runs = []
        for dtype, int8, bs, append, (hq, hkv), sq, d, causal in itertools.product(
                [torch.float16, torch.bfloat16], [False, True], [0, 16, 256], [False, True], heads, sqs, [64, 128],
                [True, False]):
            # Trim the product: every axis value is still covered many times.
            key = zlib.crc32(repr((str(dtype), int8, bs, append, hq, sq, d, causal)).encode()) % 5
            if key != 0 and not (sq == 1 and causal):
                continue
            B = 3
            seqlens = [0, 1 + (sq * 13) % 97, 300 + 17 * sq] if append else [0, 5 + sq, 300 + 17 * sq]
            cfg = dict(B=B, sq=sq, hq=hq, hkv=hkv, d=d, dtype=dtype, int8=int8, block_size=bs, append=append,
                       causal=causal, seqlens=seqlens)
            for n in (nsm, 1, 1000):  # the split heuristic's choices: several, none, many
                runs.append((cfg, n))
        # One unsplit, many-block case (s_max <= 64) and a long one.
        runs.append((dict(B=40, sq=1, hq=32, hkv=8, d=128, dtype=torch.bfloat16, int8=False, block_size=0,
                          append=True, causal=True, seqlens=[i % 50 for i in range(40)], slack=0), nsm))
        runs.append((dict(B=2, sq=1, hq=32, hkv=8, d=128, dtype=torch.bfloat16, int8=True, block_size=16,
                          append=True, causal=True, seqlens=[5000, 9000]), nsm))
    fails = 0
    for cfg, n in runs:
        bound = 5e-3 if cfg["dtype"] == torch.float16 else 1e-2
        try:
            err, app = run_case(shim, n, **cfg)
        except Exception as e:  # noqa: BLE001
            err, app = float("inf"), f"exception {e}"
        ok = err < bound and app is None
        fails += not ok
        results.append((cfg, n, err, app, ok))
    # Summary table by axis.
    print(f"\n## Correctness: {len(results)} runs, {fails} failures\n")
    print("| dtype | cache | paged | append | hq/hkv | sq | d | causal | num_sms | seqlens | rel err | append check | ok |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for cfg, n, err, app, ok in results:
        if ok and not small and results.index((cfg, n, err, app, ok)) % 6 != 0:
            continue  # print a sample of the passes and every failure
        print(f"| {str(cfg['dtype'])[6:]} | {'int8' if cfg['int8'] else 'fp'} | {cfg['block_size'] or '-'} | "
              f"{cfg['append']} | {cfg['hq']}/{cfg['hkv']} | {cfg['sq']} | {cfg['d']} | {cfg['causal']} | {n} | "
              f"{cfg['seqlens'][:4]} | {err:.2e} | {app or 'ok'} | {'PASS' if ok else 'FAIL'} |")
    worst = {}
    for cfg, n, err, app, ok in results:
        k = (str(cfg["dtype"])[6:], "int8" if cfg["int8"] else "fp")
        worst[k] = max(worst.get(k, 0.0), err)
    print("\nworst rel err by (dtype, cache):", {f"{a}/{b}": f"{v:.2e}" for (a, b), v in worst.items()})
    return fails


def bench(shim, reps, sdpa=True, flush_mode="write", shapes=None):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    nsm = torch.cuda.get_device_properties(0).multi_processor_count
    flush = torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device=DEV)
    flush_f = torch.ones(64 * 1024 * 1024, dtype=torch.float32, device=DEV)

    def do_flush():
        if flush_mode == "write":
            flush.fill_(1)  # leaves up to the whole L2 dirty: the timed call pays its write-back
        else:
            flush_f.sum()  # evicts with clean lines

    def timed(fn):
        for _ in range(3):
            fn()
        ts = []
        for _ in range(reps):
            do_flush()
            torch.cuda._sleep(100_000)
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize()
            ts.append(s.elapsed_time(e) * 1e3)
        return statistics.median(ts)

    hq, hkv, d = 32, 8, 128
    shapes = shapes or [(1, 4096), (1, 32768), (8, 4096), (8, 16384), (32, 8192)]
    print(f"\n## Timing ({torch.cuda.get_device_name(0)}, bf16, Hq=32, Hkv=8, D=128, Sq=1; TB/s = K+V bytes read "
          f"/ time; {flush_mode} flush)\n")
    print("| B | L | variant | time us | TB/s | vs bf16 contiguous |")
    print("| --- | --- | --- | --- | --- | --- |")
    summary = {}
    for B, L in shapes:
        rows = []
        bytes_bf16 = 2 * B * L * hkv * d * 2
        bytes_int8 = 2 * B * L * hkv * (d + 4)
        variants = [("ours bf16", dict(int8=False, block_size=0, append=False), bytes_bf16),
                    ("ours int8", dict(int8=True, block_size=0, append=False), bytes_int8),
                    ("ours bf16 append", dict(int8=False, block_size=0, append=True), bytes_bf16),
                    ("ours bf16 paged-16", dict(int8=False, block_size=16, append=False), bytes_bf16),
                    ("ours bf16 [B,Hkv,L,D] strides", dict(int8=False, block_size=0, append=False, head_major=True),
                     bytes_bf16),
                    ("ours int8 [B,Hkv,L,D] strides", dict(int8=True, block_size=0, append=False, head_major=True),
                     bytes_int8),
                    ("ours bf16 s_max = L + 64", dict(int8=False, block_size=0, append=False, slack=64), bytes_bf16),
                    ("ours bf16 V 2.3 MB after K", dict(int8=False, block_size=0, append=False, kv_gap=2408448),
                     bytes_bf16)]
        base = None
        for name, v, nbytes in variants:
            seq = L - 1 if v["append"] else L
            slack = v.pop("slack", 0)
            c = make_case(B=B, sq=1, hq=hq, hkv=hkv, d=d, dtype=torch.bfloat16, causal=True,
                          seqlens=[seq] * B, slack=slack, **v)
            args, ws, wsb = shim.prepare(c, nsm)
            t = timed(lambda: shim.run(args))
            base = base or t
            summary[(B, L, name)] = t
            rows.append((name, t, nbytes / t / 1e6, base / t))
            del c, args, ws
        torch.cuda.empty_cache()
        if not sdpa:
            for name, t, tbs, rel in rows:
                print(f"| {B} | {L} | {name} | {t:.1f} | {tbs:.2f} | {rel:.2f}x |")
            continue
        q = torch.randn(B, hq, 1, d, device=DEV, dtype=torch.bfloat16)
        k = torch.randn(B, hkv, L, d, device=DEV, dtype=torch.bfloat16)
        vv = torch.randn(B, hkv, L, d, device=DEV, dtype=torch.bfloat16)
        for bname, be in [("FLASH_ATTENTION", SDPBackend.FLASH_ATTENTION),
                          ("EFFICIENT_ATTENTION", SDPBackend.EFFICIENT_ATTENTION),
                          ("CUDNN_ATTENTION", SDPBackend.CUDNN_ATTENTION)]:
            note = "enable_gqa"
            try:
                with sdpa_kernel(be):
                    F.scaled_dot_product_attention(q, k, vv, enable_gqa=True)
                    torch.cuda.synchronize()

                    def fn():
                        F.scaled_dot_product_attention(q, k, vv, enable_gqa=True)
                    t = timed(fn)
            except Exception:  # noqa: BLE001
                note = "kv repeated"
                kr, vr = k.repeat_interleave(hq // hkv, 1), vv.repeat_interleave(hq // hkv, 1)
                try:
                    with sdpa_kernel(be):
                        def fn():
                            F.scaled_dot_product_attention(q, kr, vr)
                        fn()
                        torch.cuda.synchronize()
                        t = timed(fn)
                except Exception as e:  # noqa: BLE001
                    rows.append((f"SDPA {bname} (unavailable: {type(e).__name__})", float("nan"), float("nan"),
                                 float("nan")))
                    continue
                del kr, vr
            summary[(B, L, bname)] = t
            rows.append((f"SDPA {bname} ({note})", t, bytes_bf16 / t / 1e6, base / t))
        del q, k, vv
        torch.cuda.empty_cache()
        for name, t, tbs, rel in rows:
            print(f"| {B} | {L} | {name} | {t:.1f} | {tbs:.2f} | {rel:.2f}x |")
    return summary


def split_sweep(shim, reps, splits, shapes):
    """Times the decode shapes with forced KV split counts, for the launcher's cost model."""
    nsm = torch.cuda.get_device_properties(0).multi_processor_count
    flush = torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device=DEV)
    shapes = shapes or [(1, 4096), (1, 32768), (8, 4096), (8, 16384), (32, 8192)]
    print("| B | L | s_max | cache | " + " | ".join(f"splits {s or 'auto'} (us)" for s in splits) + " |")
    print("|---" * (4 + len(splits)) + "|")
    for B, L in shapes:
        for slack, int8, block_size in ((0, False, 0), (16, False, 0), (16, True, 0), (16, False, 16)):
            c = make_case(B=B, sq=1, hq=32, hkv=8, d=128, dtype=torch.bfloat16, int8=int8, block_size=block_size,
                          append=False, causal=True, seqlens=[L] * B, slack=slack)
            cells = []
            for s in splits:
                c["num_splits"] = s
                args, ws, _ = shim.prepare(c, nsm)
                for _ in range(3):
                    shim.run(args)
                ts = []
                for _ in range(reps):
                    flush.fill_(1)
                    torch.cuda._sleep(100_000)
                    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    e0.record()
                    shim.run(args)
                    e1.record()
                    torch.cuda.synchronize()
                    ts.append(e0.elapsed_time(e1) * 1e3)
                cells.append(f"{statistics.median(ts):.1f}")
                del args, ws
            cache = ("int8" if int8 else "bf16") + (f" paged-{block_size}" if block_size else "")
            print(f"| {B} | {L} | L + {slack} | {cache} | " + " | ".join(cells) + " |",
                  flush=True)
            del c
            torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--reps", type=int, default=25)
    ap.add_argument("--bench-only", action="store_true", help="skip the correctness pass")
    ap.add_argument("--no-sdpa", action="store_true", help="time only our kernel")
    ap.add_argument("--flush", choices=["write", "read"], default="write")
    ap.add_argument("--shapes", default="", help="B:L,B:L,... (default: the five of the design notes)")
    ap.add_argument("--splits", default="", help="S,S,...: time bf16 and int8 at --shapes with these forced "
                    "split counts (0: the launcher's choice), nothing else")
    ap.add_argument("--profile", default="", help="B,L,int8,head_major: run that decode case 5 times, nothing else")
    a = ap.parse_args()
    torch.manual_seed(0)
    shim = Shim(a.lib)
    if a.profile:
        B, L, i8, hm = (int(v) for v in a.profile.split(","))
        c = make_case(B=B, sq=1, hq=32, hkv=8, d=128, dtype=torch.bfloat16, int8=bool(i8), block_size=0,
                      append=False, causal=True, seqlens=[L] * B, slack=0, head_major=bool(hm))
        args, ws, _ = shim.prepare(c, torch.cuda.get_device_properties(0).multi_processor_count)
        for _ in range(5):
            shim.run(args)
        torch.cuda.synchronize()
        return
    if a.splits:
        shapes = [tuple(int(v) for v in x.split(":")) for x in a.shapes.split(",")] if a.shapes else None
        split_sweep(shim, a.reps, [int(v) for v in a.splits.split(",")], shapes)
        return
    fails = 0 if a.bench_only else correctness(shim, a.small)
    if not a.no_bench:
        shapes = [tuple(int(v) for v in x.split(":")) for x in a.shapes.split(",")] if a.shapes else None
        bench(shim, a.reps, sdpa=not a.no_sdpa, flush_mode=a.flush, shapes=shapes)
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
