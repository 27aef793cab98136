"""The shared part of every benchmark family: machine description, timing of
a list of implementations per problem, and the table / JSON output.

A family module describes its problems as `Problem`s, each with the
implementations to time (ours and the peers); this module times them all in
one process and renders the table. New families register in FAMILIES.
"""

import argparse
import dataclasses
import datetime
import json
import platform
from typing import Callable

import torch

from .timing import L2Flusher, time_cpu_interleaved, time_cuda_blocks


# Short dtype names of the --dtype options of the families.
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_dtypes(text: str) -> list[str]:
    """A comma-separated list of DTYPES names; an argparse type, so a bad
    list fails at parse time with the usage line."""
    names = [d.strip() for d in text.split(",")]
    bad = [d for d in names if d not in DTYPES]
    if bad:
        raise argparse.ArgumentTypeError(f"dtypes are from {sorted(DTYPES)}, got {bad}")
    return names


@dataclasses.dataclass
class Impl:
    name: str
    fn: Callable[[], object]
    ours: bool = False


@dataclasses.dataclass
class Problem:
    label: dict  # e.g. {"K x N": "8192x8192", "M": 1}
    impls: list[Impl]
    bytes_moved: int  # fewest bytes our op must move (for effective GB/s)
    # Relative error of our output against the reference on these very
    # inputs: a table never shows a time for a wrong answer.
    verify: Callable[[], float] | None = None


def machine_description(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def time_problems(problems: list[Problem], device: str, reps: int) -> list[dict]:
    flush = L2Flusher(torch.device("cuda")) if device == "cuda" else None
    rows = []
    for prob in problems:
        if device == "cuda":
            times = time_cuda_blocks({impl.name: impl.fn for impl in prob.impls}, reps=reps, flush=flush)
        else:
            times = time_cpu_interleaved({impl.name: impl.fn for impl in prob.impls}, reps=reps)
        ours = {i.name: times[i.name] for i in prob.impls if i.ours}
        peers = {i.name: times[i.name] for i in prob.impls if not i.ours}
        best_ours = min(ours.values())
        row = dict(prob.label)
        if prob.verify is not None:
            row["rel err"] = prob.verify()
        row.update({f"{k} (ms)": v for k, v in times.items()})
        row["ours GB/s"] = prob.bytes_moved / (best_ours * 1e-3) / 1e9
        for peer, t in peers.items():
            row[f"x vs {peer}"] = t / best_ours
        # A family may also time our own op in another form (a baseline, named
        # "slimops ..."): "fastest torch" is over torch's contenders only.
        torch_peers = [t for name, t in peers.items() if not name.startswith("slimops")]
        if len(peers) > 1 and torch_peers:
            row["x vs fastest torch"] = min(torch_peers) / best_ours
        rows.append(row)
        print("  " + ", ".join(f"{k}={_fmt(v)}" for k, v in row.items()), flush=True)
    return rows


def _fmt(v) -> str:
    if isinstance(v, float):
        if 0 < abs(v) < 1e-3:
            return f"{v:.1e}"
        return f"{v:.3f}" if v < 10 else f"{v:.1f}"
    return str(v)


def markdown_table(rows: list[dict]) -> str:
    cols = list(rows[0].keys())
    for r in rows[1:]:
        cols += [c for c in r if c not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            if isinstance(v, float):
                v = f"{v:.2f}x" if c.startswith("x vs") else _fmt(v)
            cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


FAMILIES: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], tuple[str, list[Problem]]]]] = {}


def register_family(name: str, add_arguments, build_problems):
    FAMILIES[name] = (add_arguments, build_problems)


def run_family(name: str, args: argparse.Namespace) -> dict:
    _, build = FAMILIES[name]
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("slimops bench: --device cuda asked for, but no CUDA device is visible")
    if args.threads:
        torch.set_num_threads(args.threads)
    title, problems = build(args)
    machine = machine_description(args.device)
    print(f"# {title}\n# {machine}", flush=True)
    rows = time_problems(problems, args.device, args.reps)
    table = markdown_table(rows)
    stamp = utc_stamp()
    if args.device == "cuda":
        how = (f"the lower of two medians of {args.reps // 2} runs (contenders in blocks A B A B), "
               "L2 flushed before each call")
    else:
        how = f"medians of {args.reps} runs, contenders timed round-robin"
    header = f"### {title}\n\n{machine}; {stamp}; {how}"
    result = {"title": title, "machine": machine, "date": stamp, "reps": args.reps, "rows": rows}
    publish(result, header, table, args)
    return result


def utc_stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def publish(result: dict, header: str, table: str, args) -> None:
    """Prints the table under its header, and writes --json / --markdown if asked."""
    print("\n" + header + "\n\n" + table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(header + "\n\n" + table + "\n")
