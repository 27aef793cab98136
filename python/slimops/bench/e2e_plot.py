"""The plot of `slimops bench e2e`: decode tokens/s and peak memory per variant,
one group of bars per batch size. Also a command, for results measured on a
machine without matplotlib (the GPU box):

    python -m slimops.bench.e2e_plot results.json plot.png
"""

from __future__ import annotations

import json
import sys


def plot(result: dict, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("slimops bench e2e --plot needs matplotlib (pip install matplotlib), "
                         "or plot the --json file later with python -m slimops.bench.e2e_plot") from None
    rows = result["rows"]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    batches = list(dict.fromkeys(r["batch"] for r in rows))
    by_key = {(r["variant"], r["batch"]): r for r in rows}
    has_memory = any(r.get("peak GB") is not None for r in rows)
    panels = [("tok/s", "decode tokens/s (all sequences)")] + ([("peak GB", "peak GPU memory (GB)")] if has_memory else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False)
    width = 0.8 / len(batches)
    for ax, (key, label) in zip(axes[0], panels):
        for i, batch in enumerate(batches):
            xs = [j + (i - (len(batches) - 1) / 2) * width for j in range(len(variants))]
            ys = [by_key[(v, batch)][key] if (v, batch) in by_key else 0 for v in variants]
            bars = ax.bar(xs, ys, width, label=f"batch {batch}")
            for bar, v in zip(bars, variants):
                r = by_key.get((v, batch))
                ratio = r and (r["x tok/s"] if key == "tok/s" else r.get("x memory"))
                if ratio:
                    ax.annotate(f"{ratio:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                                ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{result['title']}\n{result['machine']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        plot(json.load(f), argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
