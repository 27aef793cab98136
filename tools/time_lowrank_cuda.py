"""Times slimops.lowrank_linear on CUDA against torch's two matmuls
F.linear(F.linear(x, V), U) in the same process (issue 7's targets), and the
fused kernel across M to place the dispatch threshold: --path fused (the
default here) forces the fused kernel wherever it applies (M <= 16), auto
times the binding's own choice. Method of design.md:
CUDA events, warm-up, an L2 flush before every call, median of --reps.
After the flush a spin kernel keeps the GPU busy while Python enqueues the
call, so the time is the GPU's alone (launch gaps between kernels included),
under inference_mode (no autograd wrapper). A second column replays each
call as a CUDA graph, which takes the launch gaps out too.

    python3 tools/time_lowrank_cuda.py [--reps 50] [--path fused|auto|dense]
"""

import argparse
import os
import statistics

import torch
import torch.nn.functional as F

import slimops  # noqa: F401  (registers torch.ops.slimops)
from slimops.testing import randn_with_outliers

# (K, N, r, M, target ratio ours / torch) from issue 7; None: no target,
# timed to place the M threshold.
CASES = [
    (4096, 4096, 512, 1, 0.75),
    (4096, 4096, 512, 4, None),
    (4096, 4096, 512, 8, None),
    (4096, 4096, 512, 16, 0.8),
    (4096, 4096, 512, 17, None),
    (4096, 4096, 512, 32, None),
    (8192, 8192, 1024, 1, 0.8),
    (8192, 8192, 1024, 4, None),
    (8192, 8192, 1024, 16, None),
]


def median_us(fn, flush, reps):
    """Median event time of fn in us; flush() runs before every call."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(reps):
        flush()  # evicts V, U and x from the 50 MB L2
        torch.cuda._sleep(200_000)  # ~0.1 ms: the host gets ahead of the GPU
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3)
    return statistics.median(times)


def graph_us(fn, flush, reps):
    # Warm up and capture on one side stream: the op keeps its workspace per
    # stream, so the capture finds it made and records no memset.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
        fn()
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=side):
        fn()
    return median_us(g.replay, flush, reps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--path", choices=["fused", "auto", "dense"], default="fused")
    args = ap.parse_args()
    os.environ["SLIMOPS_CUDA_LOWRANK"] = args.path  # read by the binding per call
    torch.inference_mode().__enter__()
    torch.manual_seed(0)
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda").zero_
    dt = torch.bfloat16
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, bf16, median of {args.reps}, L2 flushed, "
          f"path {args.path}")
    print("| K=N | r | M | slimops us | torch 2x F.linear us | ratio | target | graphs: slimops / torch us | rel err vs torch |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for k, n, r, m, target in CASES:
        torch.cuda.synchronize()
        v = (randn_with_outliers(r, k, device="cuda") / k**0.5).to(dt)
        u = (randn_with_outliers(n, r, device="cuda") / r**0.5).to(dt)
        x = randn_with_outliers(m, k, device="cuda").to(dt)
        ours = lambda: torch.ops.slimops.lowrank_linear(x, v, u, None)  # noqa: E731
        peer = lambda: F.linear(F.linear(x, v), u)  # noqa: E731
        a, b = ours().double(), peer().double()
        err = ((a - b).norm() / b.norm()).item()
        t_ours = median_us(ours, flush, args.reps)
        t_peer = median_us(peer, flush, args.reps)
        ratio = t_ours / t_peer
        verdict = "" if target is None else (f"<= {target} " + ("met" if ratio <= target else "MISSED"))
        try:
            graphs = f"{graph_us(ours, flush, args.reps):.1f} / {graph_us(peer, flush, args.reps):.1f}"
        except RuntimeError as e:  # capture is a bonus; the events column is the measure
            graphs = f"n/a ({str(e)[:40]})"
        print(f"| {k} | {r} | {m} | {t_ours:.1f} | {t_peer:.1f} | {ratio:.2f} | {verdict} | {graphs} | {err:.1e} |")


if __name__ == "__main__":
    main()
