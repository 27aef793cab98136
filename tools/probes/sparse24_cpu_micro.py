"""Single-thread, cache-resident timing of the CPU 2:4 transposed-x kernel
(K = 8192, N = 512, M = 16: the weight fits in L2/L3, so memory noise on a
shared box stays out): ns per kept value, fp32 and bf16 kept values.
SLIMOPS_CPU_ISA=avx2 picks the AVX2 kernel."""
import sys, time, torch
from slimops.nn import Sparse24Linear
from slimops.testing import randn_with_outliers
torch.set_num_threads(1)
k, n, m = 8192, 512, 16
gen = torch.Generator().manual_seed(0)
lin = torch.nn.Linear(k, n, bias=False)
with torch.no_grad(): lin.weight.copy_(randn_with_outliers(n, k, generator=gen) * k**-0.5)
out = []
for dname, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
    layer = Sparse24Linear.from_linear(lin.to(dt))
    x = randn_with_outliers(m, k, dtype=dt, generator=gen)
    for _ in range(5): layer(x)
    ts = []
    for _ in range(60):
        t0 = time.perf_counter(); layer(x); ts.append(time.perf_counter() - t0)
    ts.sort()
    out.append(f"{dname} min {ts[0]*1e3:.3f} ms p25 {ts[15]*1e3:.3f} ({ts[0]*1e9/(n*k/2):.2f} ns/value)")
print(" | ".join(out))
