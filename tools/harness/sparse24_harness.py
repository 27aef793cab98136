"""Standalone test + benchmark of the CUDA 2:4 sparse GEMM (csrc/cuda/sparse24).

Loads the kernels through a ctypes shim (tools/harness/sparse24_shim.cu),
independent of the torch extension:

    nvcc -shared -Xcompiler -fPIC -Xcompiler -fno-gnu-unique -std=c++17 -O3 -Icsrc \\
      --expt-relaxed-constexpr -gencode arch=compute_90a,code=sm_90a \\
      csrc/cuda/sparse24/*.cu tools/harness/sparse24_shim.cu -o /tmp/libsparse24.so

(-fno-gnu-unique: with it, two builds loaded side by side (--cmp) each keep
their own function-local statics, e.g. the per-device occupancy cache whose
first call makes the shared-memory opt-in; without it the second build
skips its opt-in and its launches fail.)
    python tools/harness/sparse24_harness.py --lib /tmp/libsparse24.so [--quick] [--no-bench]

Checks: the layout round trip (exact), then correctness against a float32
reference on the decompressed (and dequantised) weight for many m, n, k,
fp16/bf16, bias or not, bits 16 and 4 (with and without zero points), and
the decompress kernel (s24_decompress) bit for bit against the canonical
torch decompress; then times ours, cuBLAS F.linear and torch's 2:4
(cuSPARSELt and CUTLASS) at the target shapes with an L2 flush and a
host-ahead sleep before each call.

Comparing builds: --cmp LABEL=PATH (repeatable) times the GEMM of other
builds of the library in the same run, next to --lib ("new"). --flush
write (default: zero a 256 MB buffer, which leaves the L2 full of dirty
lines) or read (sum it: clean lines), or both ("write,read"). The
"dec+lin" column is s24_decompress into a temporary + F.linear, the large-M
path of the bindings (kSparse24DenseFromM, s24_dense_from_m).
"""

import argparse
import ctypes
import os
import statistics
import sys

import torch
import torch.nn.functional as F


def _load_layout_module():
    # By file path: importing the slimops package would load the extension,
    # which this harness must not need.
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python", "slimops", "formats",
                        "sparse24_cuda.py")
    spec = importlib.util.spec_from_file_location("sparse24_cuda", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_layout = _load_layout_module()
to_cuda_layout, from_cuda_layout = _layout.to_cuda_layout, _layout.from_cuda_layout

DTYPE_CODE = {torch.float16: 1, torch.bfloat16: 2}
TOL = {torch.float16: 5e-3, torch.bfloat16: 1e-2}


# ---------------------------------------------------------------- formats
def random_weight(n, k, device, gen):
    """Normal weights with some large outliers and no zeros."""
    w = torch.randn(n, k, generator=gen, device=device)
    out = torch.rand(n, k, generator=gen, device=device) < 0.002
    w = torch.where(out, w * 20, w)
    return torch.where(w.abs() < 1e-3, torch.full_like(w, 1e-3), w)


def prune24(w):
    """Keep the 2 largest-magnitude weights of every group of 4 (float32)."""
    n, k = w.shape
    g = w.reshape(n, k // 4, 4)
    idx = g.abs().topk(2, dim=-1).indices.sort(dim=-1).values
    mask = torch.zeros_like(g, dtype=torch.bool).scatter_(-1, idx, True)
    return (g * mask).reshape(n, k)


def compress24(w):
    """Canonical pack of a 2:4 matrix: values [n, k/2] (kept, in order), meta uint8 [n, k/8].

    A group's two positions are the nonzeros, topped up with the first zero
    positions, so i0 < i1 always (valid mma.sp metadata)."""
    n, k = w.shape
    g = w.reshape(n, k // 4, 4)
    key = (g != 0).to(torch.int32) * 8 - torch.arange(4, device=w.device)  # nonzeros first, then by position
    idx = key.topk(2, dim=-1).indices.sort(dim=-1).values  # [n, k/4, 2]
    vals = g.gather(-1, idx).reshape(n, k // 2)
    nib = (idx[..., 0] | (idx[..., 1] << 2)).to(torch.uint8).reshape(n, k // 8, 2)
    meta = nib[..., 0] | (nib[..., 1] << 4)
    return vals, meta


def decompress24(vals, meta, k):
    n = vals.shape[0]
    nib = torch.stack([meta & 0x0F, meta >> 4], dim=-1).reshape(n, k // 4).to(torch.int64)
    idx = torch.stack([nib & 3, nib >> 2], dim=-1)
    dense = torch.zeros(n, k // 4, 4, dtype=vals.dtype, device=vals.device)
    dense.scatter_(-1, idx, vals.reshape(n, k // 4, 2))
    return dense.reshape(n, k)


def pack_int4(q):
    n, kk = q.shape
    b = q.to(torch.uint8).reshape(n, kk // 32, 2, 16)
    return (b[:, :, 0] | (b[:, :, 1] << 4)).reshape(n, kk // 2)


def quant_kept(vals, k, group_size, zeros):
    """int4 quantisation of kept values [n, k/2] by groups of group_size dense columns."""
    n = vals.shape[0]
    v = vals.float().reshape(n, k // group_size, group_size // 2)
    if zeros:
        lo, hi = v.amin(-1, keepdim=True), v.amax(-1, keepdim=True)
        scale = ((hi - lo) / 15).clamp_min(1e-8)
        # fractional zero points on purpose (imported-checkpoint style)
        zero = (-lo / scale).clamp(0, 15)
    else:
        scale = (v.abs().amax(-1, keepdim=True) / 7).clamp_min(1e-8)
        zero = torch.full_like(scale, 8.0)
    q = torch.clamp(torch.round(v / scale + zero), 0, 15)
    deq = ((q - zero) * scale).reshape(n, k // 2)
    return q.reshape(n, k // 2).to(torch.uint8), scale.reshape(n, -1).contiguous(), (
        zero.reshape(n, -1).contiguous() if zeros else None), deq


# ---------------------------------------------------------------- the op
class Sparse24:
    def __init__(self, lib_path):
        self.lib = ctypes.CDLL(lib_path)
        P, I64, I = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
        self.lib.s24_workspace_bytes.restype = ctypes.c_size_t
        self.lib.s24_workspace_bytes.argtypes = [P] * 7 + [I64] * 5 + [I, I64, I, I]
        self.lib.s24_gemm.restype = I
        self.lib.s24_gemm.argtypes = [P] * 7 + [I64] * 5 + [I, I64, I, P, I, P]
        self.has_decompress = hasattr(self.lib, "s24_decompress")
        if self.has_decompress:
            self.lib.s24_decompress.restype = I
            self.lib.s24_decompress.argtypes = [P] * 5 + [I64] * 2 + [I, I64, I, P]
            self.lib.s24_dense_from_m.restype = ctypes.c_longlong
        self.sms = torch.cuda.get_device_properties(0).multi_processor_count
        self.ws = {}

    def prepare_decompress(self, values, meta, n, k, bits, dtype, scales=None, zeros=None, group_size=0, dense=None):
        if dense is None:
            dense = torch.empty(n, k, dtype=dtype, device=values.device)
        ptr = lambda t: None if t is None else t.data_ptr()  # noqa: E731
        args = [ptr(values), ptr(meta), ptr(scales), ptr(zeros), ptr(dense), n, k, bits, group_size, DTYPE_CODE[dtype]]

        def run():
            st = self.lib.s24_decompress(*args, torch.cuda.current_stream().cuda_stream)
            if st != 0:
                raise RuntimeError(f"s24_decompress status {st} (n={n} k={k} bits={bits})")
            return dense

        return run

    def prepare(self, x, values, meta, n, k, bits, scales=None, zeros=None, bias=None, group_size=0, out=None):
        """Returns a zero-argument callable that runs the op into out (allocated if None)."""
        m = x.shape[0]
        if out is None:
            out = torch.empty(m, n, dtype=x.dtype, device=x.device)
        ptr = lambda t: None if t is None else t.data_ptr()  # noqa: E731
        args = [ptr(x), ptr(values), ptr(meta), ptr(scales), ptr(zeros), ptr(bias), ptr(out),
                m, n, k, x.stride(0), out.stride(0), bits, group_size, DTYPE_CODE[x.dtype]]
        nbytes = self.lib.s24_workspace_bytes(*args, self.sms)
        ws = self.ws.get(x.device)
        if nbytes and (ws is None or ws.numel() < nbytes):
            ws = torch.empty(nbytes, dtype=torch.uint8, device=x.device)
            self.ws[x.device] = ws
        wsp = ws.data_ptr() if nbytes else None

        def run():
            st = self.lib.s24_gemm(*args, wsp, self.sms, torch.cuda.current_stream().cuda_stream)
            if st != 0:
                raise RuntimeError(f"s24_gemm status {st} (m={m} n={n} k={k} bits={bits})")
            return out

        return run


# ---------------------------------------------------------------- correctness
def check_roundtrip(gen):
    for n, k in [(16, 64), (48, 192), (208, 1024)]:
        v = torch.randn(n, k // 2, generator=gen).to(torch.bfloat16)
        meta = torch.randint(0, 256, (n, k // 8), generator=gen, dtype=torch.uint8)
        v2, m2 = to_cuda_layout(v, meta, 16)
        a, b = from_cuda_layout(v2, m2, 16)
        assert torch.equal(a.view(torch.int16), v.view(torch.int16)) and torch.equal(b, meta), "16-bit round trip"
        q = torch.randint(0, 256, (n, k // 4), generator=gen, dtype=torch.uint8)
        q2, m2 = to_cuda_layout(q, meta, 4)
        a, b = from_cuda_layout(q2, m2, 4)
        assert torch.equal(a, q) and torch.equal(b, meta), "int4 round trip"
        # CUDA tensors too
        a, b = from_cuda_layout(*to_cuda_layout(v.cuda(), meta.cuda(), 16), 16)
        assert torch.equal(a.cpu().view(torch.int16), v.view(torch.int16)) and torch.equal(b.cpu(), meta)
    print("layout round trip: exact (bits 16 and 4, CPU and CUDA)")


def check_correctness(op, quick):
    gen = torch.Generator(device="cuda").manual_seed(0)
    shapes = [(16, 64), (208, 192), (1040, 448), (528, 4096)] if not quick else [(16, 64), (208, 192), (48, 4096)]
    ms = [1, 2, 3, 5, 8, 16, 17, 33, 64, 100, 256, 1024] if not quick else [1, 3, 17, 64, 100]
    fmts = [(16, False), (4, False), (4, True)]
    worst, fails, runs = {}, [], 0
    for dtype in (torch.float16, torch.bfloat16):
        for n, k in shapes:
            w = prune24(random_weight(n, k, "cuda", gen))
            vals, meta = compress24(w)
            for bits, zeros in fmts:
                if bits == 4 and k % 128 != 0 and k % 64 == 0:
                    gs = 64
                else:
                    gs = 128
                if bits == 16:
                    wv = vals.to(dtype)
                    wdeq = decompress24(wv.float(), meta, k)
                    cv, cm = to_cuda_layout(wv, meta, 16)
                    sc = zp = None
                else:
                    q, sc, zp, deq = quant_kept(vals, k, gs, zeros)
                    wdeq = decompress24(deq, meta, k)
                    cv, cm = to_cuda_layout(pack_int4(q), meta, 4)
                for i, m in enumerate(ms):
                    bias = torch.randn(n, generator=gen, device="cuda") if i % 2 else None
                    x = torch.randn(m, k, generator=gen, device="cuda")
                    x = torch.where(torch.rand(m, k, generator=gen, device="cuda") < 0.002, x * 20, x).to(dtype)
                    out = torch.full((m, n), float("nan"), dtype=dtype, device="cuda")
                    op.prepare(x, cv, cm, n, k, bits, sc, zp, bias, gs if bits == 4 else 0, out)()
                    ref = x.float() @ wdeq.T + (bias if bias is not None else 0)
                    err = ((out.float() - ref).norm() / ref.norm()).item()
                    runs += 1
                    key = (str(dtype).split(".")[1], bits, zeros)
                    worst[key] = max(worst.get(key, 0.0), err if err == err else float("inf"))
                    if not (err < TOL[dtype]):
                        fails.append((key, m, n, k, bias is not None, err))
    torch.cuda.synchronize()
    print(f"correctness: {runs} runs, {len(fails)} failures")
    for key, e in sorted(worst.items()):
        print(f"  worst rel err {key[0]} bits={key[1]} zeros={key[2]}: {e:.2e}")
    for f in fails[:20]:
        print("  FAIL", f)
    return not fails


def check_decompress(op, quick):
    """s24_decompress against the canonical decompress, bit for bit: scatter of
    the kept values (bits 16), or of float32 (q - zero) * scale rounded once to
    the dtype (bits 4; formats/sparse24.py dequantize_kept_int4 + decompress)."""
    gen = torch.Generator(device="cuda").manual_seed(5)
    shapes = [(16, 64), (208, 192), (1040, 448), (528, 4096), (64, 1088)] if not quick else [(16, 64), (208, 576)]
    runs, fails = 0, []
    for dtype in (torch.float16, torch.bfloat16):
        for n, k in shapes:
            w = prune24(random_weight(n, k, "cuda", gen))
            vals, meta = compress24(w)
            for bits, zeros in ((16, False), (4, False), (4, True)):
                gs = 64 if (bits == 4 and k % 128 != 0) else 128
                if bits == 16:
                    wv = vals.to(dtype)
                    want = decompress24(wv, meta, k)
                    cv, cm = to_cuda_layout(wv, meta, 16)
                    sc = zp = None
                else:
                    q, sc, zp, deq = quant_kept(vals, k, gs, zeros)
                    z = 8.0 if zp is None else zp.unsqueeze(-1)
                    deq = ((q.float().reshape(n, k // gs, gs // 2) - z) * sc.unsqueeze(-1)).reshape(n, k // 2)
                    want = decompress24(deq, meta, k).to(dtype)
                    cv, cm = to_cuda_layout(pack_int4(q), meta, 4)
                dense = torch.full((n, k), float("nan"), dtype=dtype, device="cuda")
                op.prepare_decompress(cv, cm, n, k, bits, dtype, sc, zp, gs if bits == 4 else 0, dense)()
                runs += 1
                if not torch.equal(dense.view(torch.int16), want.view(torch.int16)):
                    bad = (dense.view(torch.int16) != want.view(torch.int16)).sum().item()
                    fails.append((str(dtype), bits, zeros, n, k, bad))
    torch.cuda.synchronize()
    print(f"decompress: {runs} runs, {len(fails)} not bit-exact")
    for f in fails[:20]:
        print("  FAIL", f)
    return not fails


def diagnose_meta(op):
    """If the 16-bit path fails: which lane -> metadata mapping does the GPU want?

    Runs one 16 x 64 tile with the metadata words arranged by alternative
    hypotheses (the kernel reads word L for lane L whatever it holds), so a
    wrong layout shows up as one hypothesis that passes."""
    gen = torch.Generator(device="cuda").manual_seed(3)
    n, k, m = 16, 64, 8
    w = prune24(random_weight(n, k, "cuda", gen))
    vals, meta = compress24(w)
    cv, cm = to_cuda_layout(vals.to(torch.bfloat16), meta, 16)
    x = torch.randn(m, k, generator=gen, device="cuda").to(torch.bfloat16)
    ref = x.float() @ decompress24(vals.to(torch.bfloat16).float(), meta, k).T
    mc = meta.cpu()
    hyps = {
        "H0 lane=4g+2s+c, word=[row g|row g+8] x 16k": lambda g, q, B: (g + 8 * (B // 2), 4 * (q // 2) + 2 * (q % 2) + B % 2),
        "H1 lane=4g+2s+h, word=row, 32k": lambda g, q, B: (g + 8 * (q % 2), 4 * (q // 2) + B),
        "H2 lane=4g+2c+s": lambda g, q, B: (g + 8 * (B // 2), 4 * (q % 2) + 2 * (q // 2) + B % 2),
        "H3 lane=4g+2h+s, word=row": lambda g, q, B: (g + 8 * (q // 2), 4 * (q % 2) + B),
    }
    for name, f in hyps.items():
        mm = torch.zeros(128, dtype=torch.uint8)
        for lane in range(32):
            for B in range(4):
                r, c = f(lane // 4, lane % 4, B)
                mm[lane * 4 + B] = mc[r, c]
        out = op.prepare(x, cv, mm.reshape(16, 8).cuda(), n, k, 16)()
        torch.cuda.synchronize()
        err = ((out.float() - ref).norm() / ref.norm()).item()
        print(f"  meta hypothesis {name}: rel err {err:.2e}")


# ---------------------------------------------------------------- timing
def timer(fn, flush, reps):
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for _ in range(3):
        fn()
    for i in range(reps):
        flush()
        torch.cuda._sleep(100_000)
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) * 1000 for s, e in zip(starts, ends))


def bench(op, reps, ms, shapes, only_ours=False, cmp=(), flush_modes=("write",), dec_from=64, cmp_max_m=1 << 30):
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    buf = torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device="cuda")
    buf_f = buf.view(torch.float32)
    flushes = {"write": lambda: buf.zero_(), "read": lambda: buf_f.sum()}
    gen = torch.Generator(device="cuda").manual_seed(1)
    dev = torch.cuda.get_device_name(0)
    libs = list(cmp) + [("new", op)]
    print(f"\n## 2:4 sparse GEMM timings, {dev}, torch {torch.__version__}; median of {reps}, us; "
          "(x) = F.linear bf16 time / time; dec+lin = s24_decompress + F.linear")
    head = "| K x N | M | flush | F.linear bf16 |"
    for label, _ in libs:
        head += f" {label} 2:4 | {label} int4+2:4 |"
    head += " dec+lin |"
    if not only_ours:
        head += " cuSPARSELt | CUTLASS |"
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for k, n in shapes:
        w = prune24(random_weight(n, k, "cuda", gen)).to(torch.bfloat16)
        vals, meta = compress24(w)
        cv, cm = to_cuda_layout(vals, meta, 16)
        q, sc, _, _ = quant_kept(vals.float(), k, 128, False)
        qv, qm = to_cuda_layout(pack_int4(q), meta, 4)
        del q
        sparse = {}
        for name, force in () if only_ours else (("cusparselt", False), ("cutlass", True)):
            try:
                SparseSemiStructuredTensor._FORCE_CUTLASS = force
                sparse[name] = to_sparse_semi_structured(w)
            except Exception as e:  # noqa: BLE001
                sparse[name] = e
        dense_tmp = torch.empty(n, k, dtype=torch.bfloat16, device="cuda")
        dec = op.prepare_decompress(cv, cm, n, k, 16, torch.bfloat16, dense=dense_tmp) if op.has_decompress else None
        if dec is not None:
            assert torch.equal(dec(), w), "decompress != W"  # (w holds -0.0 where pruned)
            for fl in flush_modes:
                td = timer(dec, flushes[fl], reps)
                wr = n * k * 2
                rd = n * k // 2 * 2 + n * k // 8
                print(f"| {k}x{n} | decompress bf16 | {fl} | {td:.1f} us: writes {wr / td / 1e6:.2f} TB/s, "
                      f"reads + writes {(wr + rd) / td / 1e6:.2f} TB/s |", flush=True)
        for fl in flush_modes:
            flush = flushes[fl]
            for m in ms:
                x = torch.randn(m, k, generator=gen, device="cuda").to(torch.bfloat16)
                t = {"dense": timer(lambda: F.linear(x, w), flush, reps)}
                row = f"| {k}x{n} | {m} | {fl} | {t['dense']:.1f} |"
                for label, lib in libs:
                    if m > cmp_max_m and label not in ("before", "new"):
                        row += " - | - |"
                        continue
                    a16 = timer(lib.prepare(x, cv, cm, n, k, 16), flush, reps)
                    a4 = timer(lib.prepare(x, qv, qm, n, k, 4, sc, None, None, 128), flush, reps)
                    row += f" {a16:.1f} ({t['dense'] / a16:.2f}x) | {a4:.1f} ({t['dense'] / a4:.2f}x) |"
                if dec is not None and m >= dec_from:
                    td = timer(lambda: F.linear(x, dec()), flush, reps)
                    row += f" {td:.1f} ({t['dense'] / td:.2f}x) |"
                else:
                    row += " - |"
                if not only_ours:
                    for name in ("cusparselt", "cutlass"):
                        ws = sparse.get(name, RuntimeError("skipped"))
                        try:
                            if isinstance(ws, Exception):
                                raise ws
                            SparseSemiStructuredTensor._FORCE_CUTLASS = name == "cutlass"
                            tv = timer(lambda: F.linear(x, ws), flush, reps)
                            row += f" {tv:.1f} ({t['dense'] / tv:.2f}x) |"
                        except Exception:  # noqa: BLE001
                            row += " n/a |"
                print(row, flush=True)
        del sparse, cv, cm, qv, qm, w, vals, meta, dense_tmp
        torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="/tmp/libsparse24.so")
    ap.add_argument("--quick", action="store_true", help="small correctness run (for compute-sanitizer)")
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--no-check", action="store_true", help="skip the correctness sweep")
    ap.add_argument("--only-ours", action="store_true", help="time ours and F.linear only (tuning sweeps)")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--ms", default="1,4,16,64,256,1024,4096")
    ap.add_argument("--shapes", default="8192x8192,8192x28672,4096x14336", help="K x N list")
    ap.add_argument("--cmp", action="append", default=[], help="LABEL=PATH: another build to time (repeatable)")
    ap.add_argument("--flush", default="write", help="write, read or write,read")
    ap.add_argument("--dec-from", type=int, default=64, help="smallest M timed with decompress + F.linear")
    ap.add_argument("--cmp-max-m", type=int, default=1 << 30, help="time --cmp builds (but 'before') up to this M")
    args = ap.parse_args()
    op = Sparse24(args.lib)
    check_roundtrip(torch.Generator().manual_seed(0))
    ok = True if args.no_check else check_correctness(op, args.quick)
    if not ok:
        diagnose_meta(op)
    if not args.no_check and op.has_decompress:
        ok = check_decompress(op, args.quick) and ok
        print(f"kSparse24DenseFromM = {op.lib.s24_dense_from_m()}")
    if not args.no_bench:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
        cmp = [(c.split("=", 1)[0], Sparse24(c.split("=", 1)[1])) for c in args.cmp]
        bench(op, args.reps, [int(v) for v in args.ms.split(",")], shapes, args.only_ours, cmp,
              args.flush.split(","), args.dec_from, args.cmp_max_m)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
