"""Condenses saved `slimops bench gemm` JSON into the README's tables.

Usage: python tools/readme_tables.py bench/results/gemm_int4_cuda_h100.json [...]
Prints Markdown: for GPU results a shape x M grid of speedups over each peer;
for CPU results one row per shape and M with our time and the ratios.
"""

import json
import sys


def ratio_columns(row):
    return [c for c in row if c.startswith("x vs ")]


def gpu_grid(result) -> str:
    rows = result["rows"]
    ms = sorted({r["M"] for r in rows})
    shapes = list(dict.fromkeys(r["K x N"] for r in rows))
    out = []
    for col in ratio_columns(rows[0]):
        if col == "x vs fastest torch":
            continue
        out.append(f"{col[5:]} (speedup of slimops):\n")
        out.append("| K x N | " + " | ".join(f"M={m}" for m in ms) + " |")
        out.append("|---" * (len(ms) + 1) + "|")
        for s in shapes:
            cells = [next((f"{r[col]:.2f}x" for r in rows if r["K x N"] == s and r["M"] == m), "") for m in ms]
            out.append(f"| {s} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def cpu_rows(result) -> str:
    rows = result["rows"]
    ours = [c for c in rows[0] if c.startswith("slimops") and c.endswith("(ms)")]
    cols = ["K x N", "M", *ours, *ratio_columns(rows[0])]
    out = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    for r in rows:
        cells = [f"{r[c]:.2f}x" if c.startswith("x vs") else (f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c])) for c in cols]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(paths):
    for path in paths:
        result = json.load(open(path))
        print(f"**{result['title']}** ({result['machine']}; {result['date']}; `{path}`)\n")
        print(gpu_grid(result) if "cuda" in result["title"] else cpu_rows(result))
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
