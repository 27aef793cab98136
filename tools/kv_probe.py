"""One kv_attention configuration called repeatedly, for ncu / nsys:
python tools/kv_probe.py B L [int8] [append]."""
import sys

import torch

import slimops
from slimops.reference import quantize_kv_int8

B, L = int(sys.argv[1]), int(sys.argv[2])
int8, append = "int8" in sys.argv, "append" in sys.argv
HQ, HKV, D = 32, 8, 128
dev = "cuda"
k = torch.randn(B, L + 64, HKV, D, device=dev, dtype=torch.bfloat16)
v = torch.randn_like(k)
q = torch.randn(B, 1, HQ, D, device=dev, dtype=torch.bfloat16)
kn, vn = (torch.randn(B, 1, HKV, D, device=dev, dtype=torch.bfloat16) for _ in range(2))
lens = torch.full((B,), L, dtype=torch.int32, device=dev)
extra = {}
if int8:
    (k, ks), (v, vs) = quantize_kv_int8(k), quantize_kv_int8(v)
    extra = dict(k_scale=ks, v_scale=vs)
args = (kn, vn) if append else ()
for _ in range(20):
    slimops.kv_attention(q, k, v, lens, *args, **extra)
torch.cuda.synchronize()
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
start.record()
for _ in range(200):
    slimops.kv_attention(q, k, v, lens, *args, **extra)
end.record()
torch.cuda.synchronize()
print(f"B={B} L={L} int8={int8} append={append}: {start.elapsed_time(end) / 200 * 1e3:.1f} us/call (back to back, L2 warm)")
