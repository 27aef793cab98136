import sys, torch, slimops
from slimops.formats import quantize_int8
case = sys.argv[1]
if case == "cpu_throw":
    q, s = quantize_int8(torch.randn(32, 64), 16)
    try:
        torch.ops.slimops.wo_gemm(torch.randn(4, 64).double(), q, s, None, 8, 16)
    except RuntimeError as e:
        print("caught:", str(e)[:200])
elif case == "cuda_big":
    w = torch.randn(4096, 4096, device="cuda")
    q, s = quantize_int8(w)
    x = torch.randn(1, 4096, device="cuda").bfloat16()
    print(slimops.wo_gemm(x, q, s).float().norm().item())
    torch.cuda.synchronize()
elif case == "cuda_throw":
    q, s = quantize_int8(torch.randn(32, 64), 16)
    try:
        torch.ops.slimops.wo_gemm(torch.randn(4, 64).cuda().float(), q.cuda(), s.cuda(), None, 8, 16)
    except RuntimeError as e:
        print("caught:", str(e)[:200])
print("ok", case)
