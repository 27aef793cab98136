"""What a microsecond-scale CUDA timing costs before the kernel does any work.

Times, with the bench runner's method (CUDA events around one call, a GPU
sleep after the L2 flush so the host is ahead, median of --reps), a range of
calls from an empty event pair to weight-sized reads, after two kinds of
flush: `zero_` of a 256 MiB buffer (the runner's: it leaves L2 full of dirty
lines that must be written back as the next kernel's reads evict them) and a
read of that buffer (L2 left full of clean lines). The intercept of time
against bytes read is the fixed cost every row of a table pays.

    python3 tools/flush_probe.py [--reps 50]
"""

import argparse
import os

import torch
import torch.nn.functional as F

import slimops  # noqa: F401  (registers torch.ops.slimops)
from slimops.testing import randn_with_outliers
from time_lowrank_cuda import median_us  # the same method, from tools/


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=50)
    args = ap.parse_args()
    torch.inference_mode().__enter__()
    buf = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    sink = torch.empty((), dtype=torch.int64, device="cuda")
    flushes = {
        "zero_ (dirty L2)": lambda: buf.zero_(),
        "read (clean L2)": lambda: torch.sum(buf.view(torch.int64), dim=0, out=sink),
    }
    dt = torch.bfloat16
    reads = {mb: torch.randn(mb << 19, device="cuda", dtype=dt) for mb in (1, 8, 32, 128)}
    tiny = torch.randn(16, device="cuda")
    k = n = 4096
    r = 512
    v = (randn_with_outliers(r, k, device="cuda") / k**0.5).to(dt)
    u = (randn_with_outliers(n, r, device="cuda") / r**0.5).to(dt)
    x = randn_with_outliers(1, k, device="cuda").to(dt)
    w = torch.randn(n, k, device="cuda", dtype=dt)
    calls = {"empty event pair": lambda: None, "one tiny kernel (16 floats)": lambda: tiny.mul_(1.0)}
    for mb, t in reads.items():
        calls[f"read {mb} MiB (sum)"] = lambda t=t: t.sum()
    calls["F.linear 4096x4096 M=1 (32 MiB)"] = lambda: F.linear(x, w)
    calls["torch 2 matmuls 4096/512 M=1 (8 MiB)"] = lambda: F.linear(F.linear(x, v), u)
    # The cluster kernel (the streamed one of bench/results/lowrank_stream_experiment_h100.md
    # was timed here too: 14.9 / 13.5 us).
    os.environ["SLIMOPS_CUDA_LOWRANK"] = "fused"
    calls["slimops lowrank fused 4096/512 M=1 (8 MiB)"] = lambda: torch.ops.slimops.lowrank_linear(x, v, u, None)
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, median of {args.reps} (us)")
    print("| call | " + " | ".join(flushes) + " |")
    print("|---|" + "---|" * len(flushes))
    for name, fn in calls.items():
        cells = [f"{median_us(fn, fl, args.reps):.1f}" for fl in flushes.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
