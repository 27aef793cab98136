"""What the env-knob A/B probes (wo_gemm_ab.py, sparse24_ab.py) share: their
arguments, and the Markdown table they print (cuBLAS, then the op at each
value of the knob, timed in one process); and the layers they and the
one-call probes time."""
import argparse
import os


def parse_args(m_default: str, bits_default: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("var")
    ap.add_argument("--values", default="0,1",
                    help="the first is the baseline; a value may set more knobs: 2+OTHER_VAR=64+THIRD=1")
    ap.add_argument("--m", default=m_default)
    ap.add_argument("--bits", default=bits_default)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    args.values = args.values.split(",")
    return args


def print_header(var: str, values: list[str], err_label: str) -> None:
    print("| bits | K x N | M | cuBLAS us | " + " | ".join(f"{var}={v} us (x cuBLAS)" for v in values)
          + " | " + " | ".join(f"{v} vs {values[0]}" for v in values[1:]) + f" | {err_label} |")
    print("|---|---|---|---|" + "---|" * (2 * len(values)))


def print_row(bits: int, k: int, n: int, m: int, t_ref: float, times: list[float], err: str) -> None:
    """Times in ms: each value's time and speedup over cuBLAS, then each against the first."""
    cells = [f"{t*1e3:.1f} ({t_ref/t:.2f}x)" for t in times] + [f"{times[0]/t:.2f}x" for t in times[1:]]
    print(f"| {bits} | {k}x{n} | {m} | {t_ref*1e3:.1f} | " + " | ".join(cells) + f" | {err} |", flush=True)


def set_knobs(var: str, value: str) -> list[str]:
    """Sets var (and any OTHER=v joined to value by '+'); returns the names set."""
    first, *more = value.split("+")
    os.environ[var] = first
    names = [var]
    for assignment in more:
        name, _, v = assignment.partition("=")
        os.environ[name] = v
        names.append(name)
    return names


def clear_knobs(names: list[str]) -> None:
    for name in names:
        os.environ.pop(name, None)


def with_knobs(var: str, value: str, fn):
    """fn called with the knobs of value set, cleared after: for contenders
    timed in turn in one loop."""
    def call():
        names = set_knobs(var, value)
        try:
            return fn()
        finally:
            clear_knobs(names)
    return call


def sparse24_layer(k: int, n: int, bits: int):
    """A seeded bf16 nn.Linear [n, k] as Sparse24Linear (bf16 or g128 int4
    kept values) on the GPU, and its dense bf16 weight (cuBLAS's operand)."""
    import torch
    import torch.nn as nn

    from slimops.nn import Sparse24Linear

    torch.manual_seed(0)
    lin = nn.Linear(k, n, bias=False, dtype=torch.bfloat16, device="cuda")
    layer = Sparse24Linear.from_linear(lin, bits=bits, group_size=128)
    return layer, layer.dequantize()


def wo_gemm_call(k: int, n: int, m: int, bits: int):
    """A seeded quantised layer [n, k] (int4 g128 or int8 per channel,
    symmetric) and x [m, k] in bf16 on the GPU; returns the wo_gemm call."""
    import torch

    from slimops.formats.quantize import quantize
    from slimops.ops import wo_gemm
    from slimops.testing import randn_with_outliers

    gs = 128 if bits == 4 else -1
    gen = torch.Generator(device="cuda").manual_seed(0)
    qw = quantize(randn_with_outliers(n, k, device="cuda", generator=gen) * 0.02, bits, gs, symmetric=True)
    x = randn_with_outliers(m, k, device="cuda", generator=gen).to(torch.bfloat16)
    return lambda: wo_gemm(x, qw.qweight, qw.scales, zeros=qw.zeros, bits=bits, group_size=gs)

