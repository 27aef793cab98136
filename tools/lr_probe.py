"""Plain wo_gemm against the fused wo_gemm_lowrank (8192^2, int4 g128,
r = 64) at M = 1 and 16. Without arguments: three calls of each, for ncu
(ncu --kernel-name regex:wo_gemm_mma --metrics gpu__time_duration.sum ...).
With "time": medians of eager calls and of CUDA-graph replays (memset and
kernel as graph nodes, no host work inside the interval), L2 flushed."""
import sys

import torch

import slimops
from slimops.bench.timing import L2Flusher, time_cuda
from slimops.formats import quantize

dev = torch.device("cuda")
n = k = 8192
qw = quantize(torch.randn(n, k, device=dev) * 0.02, 4, 128)
a = torch.randn(n, 64, device=dev, dtype=torch.bfloat16) * 0.01
b = torch.randn(64, k, device=dev, dtype=torch.bfloat16)
timing = "time" in sys.argv
flush = L2Flusher(dev) if timing else None


def graphed(fn):
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        fn()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            fn()
    torch.cuda.synchronize()
    return graph.replay


for m in (1, 16):
    x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
    fns = {
        "plain": lambda: slimops.wo_gemm(x, qw.qweight, qw.scales, bits=4, group_size=128),
        "fused": lambda: slimops.wo_gemm_lowrank(x, qw.qweight, qw.scales, a, b, bits=4, group_size=128),
    }
    if not timing:
        for fn in fns.values():
            for _ in range(3):
                fn()
        continue
    row = {}
    for name, fn in fns.items():
        row[name] = time_cuda(fn, reps=100, flush=flush)
        row[name + " graph"] = time_cuda(graphed(fn), reps=100, flush=flush)
    print(f"M={m}: " + ", ".join(f"{key} {v * 1e3:.1f} us" for key, v in row.items())
          + f"; fused/plain eager {row['fused'] / row['plain']:.3f}, graph {row['fused graph'] / row['plain graph']:.3f}")
torch.cuda.synchronize()
