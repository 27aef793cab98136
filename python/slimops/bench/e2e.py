"""`slimops bench e2e`: decode speed and memory of a whole Llama-3-8B-shaped
model, slimops variants against the bf16 transformers baseline, in one
process with one harness (e2e_decode.GreedyDecoder: static cache, decode
step in a CUDA graph, after warm-up).

Per variant and batch size: prefill ms, decode ms per step, decode tokens/s
(all sequences of the batch), peak GPU memory while serving, weight bytes,
KV-cache bytes, and the relative error of the prompt's next-token logits
against the baseline's (a check that each variant computes the same model:
bf16 rounding alone for dense + slimops attention, the quantisation or
pruning error on top for the others; on random weights that error says
nothing about quality, `slimops eval` measures that). The JSON also holds
the share of greedy tokens equal to the baseline's; in bf16 a random model's
near-tied logits flip and greedy decoding then diverges, so only the float32
runs of the tests hold it to 100%.
"""

from __future__ import annotations

import argparse
import gc
import time

import torch

from .e2e_decode import GreedyDecoder, profile_decode
from .e2e_model import BASELINE, VARIANTS, apply_variant, build_model, cache_bytes, llama_config, make_cache, weight_bytes
from ..testing import rel_error
from .runner import DTYPES, machine_description, markdown_table, publish, utc_stamp


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default: 1 8)")
    p.add_argument("--prompt", type=int, default=512, help="prompt tokens (default 512)")
    p.add_argument("--new", type=int, default=128, help="tokens generated after the prompt (default 128)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="V",
                   help=f"variants to run, the baseline always included (default: all: {' '.join(VARIANTS)})")
    p.add_argument("--layers", type=int, default=None, help="decoder layers (default: 32 on cuda, 2 on cpu)")
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default=None,
                   help="model dtype (default: bf16 on cuda; fp32 on cpu, where bf16 matmuls without native support crawl)")
    p.add_argument("--reps", type=int, default=3, help="timed generations per case, median reported (default 3)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    p.add_argument("--no-graph", action="store_true", help="decode eagerly on CUDA too (no CUDA graph)")
    p.add_argument("--profile", action="store_true", help="add a per-op breakdown of one decode step (eager) per case")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the results as JSON here")
    p.add_argument("--markdown", default=None, help="write the table as Markdown here")
    p.add_argument("--plot", default=None, help="write a plot (tokens/s and memory per variant) here; needs matplotlib")


def run_case(model, variant, batch: int, args, device: torch.device) -> tuple[dict, tuple]:
    """Times one variant at one batch size; returns its row, and its greedy
    tokens and prefill logits."""
    gen = torch.Generator(device="cpu").manual_seed(args.seed + batch)
    prompt = torch.randint(0, model.config.vocab_size, (batch, args.prompt), generator=gen).to(device)
    cuda = device.type == "cuda"
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    cache = make_cache(model, variant, batch, args.prompt + args.new)
    decoder = GreedyDecoder(model, cache, prompt, args.new, use_graph=cuda and not args.no_graph)
    timing = decoder.time(args.reps)
    tokens, logits = decoder.generate()
    row = {
        "variant": variant.name,
        "batch": batch,
        "prefill ms": timing["prefill_ms"],
        "ms/step": timing["decode_ms_per_step"],
        "tok/s": batch * 1e3 / timing["decode_ms_per_step"],
        "peak GB": torch.cuda.max_memory_allocated() / 1e9 if cuda else None,
        "weights GB": weight_bytes(model) / 1e9,
        "KV GB": cache_bytes(cache) / 1e9,
    }
    if args.profile:
        row["profile"] = profile_decode(decoder)
    del decoder, cache
    return row, (tokens, logits)


def run(args) -> dict:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("slimops bench e2e: --device cuda asked for, but no CUDA device is visible")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.new < 4:
        raise SystemExit("slimops bench e2e: --new must be at least 4 (the decode step is warmed up before timing)")
    layers = args.layers or (32 if device.type == "cuda" else 2)
    args.dtype = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    config = llama_config(layers, DTYPES[args.dtype], **getattr(args, "config_overrides", {}))
    names = [BASELINE] + [v for v in dict.fromkeys(args.variants) if v != BASELINE]
    title = (f"end-to-end greedy decode, Llama-3-8B dims ({layers} of 32 layers), random weights, {args.dtype}, "
             f"prompt {args.prompt}, {args.new} new tokens, {args.device}")
    machine = machine_description(args.device)
    print(f"# {title}\n# {machine}", flush=True)
    rows, baseline = [], {}
    for name in names:
        variant = VARIANTS[name]
        t0 = time.perf_counter()
        model = build_model(config, device, args.seed)
        t1 = time.perf_counter()
        apply_variant(model, variant)
        t2 = time.perf_counter()
        print(f"  {name}: built in {t1 - t0:.1f} s, compressed in {t2 - t1:.1f} s", flush=True)
        for batch in args.batch:
            row, (tokens, logits) = run_case(model, variant, batch, args, device)
            if name == BASELINE:
                baseline[batch] = (tokens, logits)
            row["logits err"] = rel_error(logits, baseline[batch][1])
            row["same tokens"] = (tokens == baseline[batch][0]).float().mean().item()
            base = next(r for r in rows + [row] if r["variant"] == BASELINE and r["batch"] == batch)
            row["x tok/s"] = row["tok/s"] / base["tok/s"]
            row["x memory"] = row["peak GB"] / base["peak GB"] if row["peak GB"] is not None else None
            rows.append(row)
            print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in row.items() if k != "profile"), flush=True)
            for op in row.get("profile", []):
                print(f"      {op['ms_per_step']:8.3f} ms {100 * op['share']:5.1f}%  {op['op']}", flush=True)
        del model
    return _report(title, machine, config, rows, args)


def _report(title: str, machine: str, config, rows: list[dict], args) -> dict:
    stamp = utc_stamp()
    graph = "decode step replayed from a CUDA graph" if args.device == "cuda" and not args.no_graph else "eager decode"
    header = (f"### {title}\n\n{machine}; {stamp}; medians of {args.reps} generations; {graph}; "
              "prefill eager; static caches on both sides")
    table_rows = []
    for r in rows:
        t = {k: v for k, v in r.items() if k not in ("profile", "same tokens")}
        t["x tok/s"] = f"{r['x tok/s']:.2f}x"
        t["x memory"] = f"{r['x memory']:.2f}x" if r["x memory"] is not None else "-"
        t["peak GB"] = r["peak GB"] if r["peak GB"] is not None else "-"
        table_rows.append(t)
    result = {"title": title, "machine": machine, "date": stamp, "reps": args.reps, "prompt": args.prompt,
              "new": args.new, "layers": config.num_hidden_layers, "dtype": args.dtype, "graph": graph,
              "variants": {name: VARIANTS[name].what for name in dict.fromkeys(r["variant"] for r in rows)}, "rows": rows}
    publish(result, header, markdown_table(table_rows), args)
    if args.plot:
        from .e2e_plot import plot

        plot(result, args.plot)
    return result
