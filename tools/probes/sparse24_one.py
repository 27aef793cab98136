#!/usr/bin/env python3
"""One 2:4 sparse matmul call, repeated: a target for ncu / nsys.
Usage: sparse24_one.py K N M [reps] [peer]; peer = int4 runs int4 + 2:4
(Sparse24Linear, bits = 4, groups of 128) instead. The path comes from
SLIMOPS_CUDA_SPARSE24 / SLIMOPS_S24_WGMMA_BT / SLIMOPS_S24_WGMMA_CLUSTER as in
the library. With peer = cusparselt the calls are torch's cuSPARSELt 2:4
matmul instead, and the names of the kernels it runs are printed."""
import sys

import torch
import torch.nn.functional as F

from slimops.formats import sparse24, sparse24_cuda
from slimops.ops import sparse24_gemm
from slimops.testing import randn_with_outliers

k, n, m = (int(v) for v in sys.argv[1:4])
reps = int(sys.argv[4]) if len(sys.argv) > 4 else 5
peer = sys.argv[5] if len(sys.argv) > 5 else None
gen = torch.Generator(device="cuda").manual_seed(0)
w = sparse24.prune_2_4(randn_with_outliers(n, k, device="cuda", generator=gen) * k**-0.5)[0].to(torch.bfloat16)
x = randn_with_outliers(m, k, device="cuda", generator=gen).to(torch.bfloat16)
if peer == "cusparselt":
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    SparseSemiStructuredTensor._FORCE_CUTLASS = False
    w_lt = to_sparse_semi_structured(w)
    fn = lambda: F.linear(x, w_lt)  # noqa: E731
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    print(sorted({e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA}))
elif peer == "int4":
    from slimops.nn import Sparse24Linear

    lin = torch.nn.Linear(k, n, bias=False, dtype=torch.bfloat16, device="cuda")
    with torch.no_grad():
        lin.weight.copy_(w)
    layer = Sparse24Linear.from_linear(lin, bits=4, group_size=128)
    fn = lambda: layer(x)  # noqa: E731
else:
    c = sparse24.compress(w)
    values, meta = sparse24_cuda.to_cuda_layout(c.values, c.meta, 16)
    fn = lambda: sparse24_gemm(x, values, meta, bits=16, layout=1)  # noqa: E731
for _ in range(reps):
    fn()
torch.cuda.synchronize()
