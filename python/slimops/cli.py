"""The `slimops` command: `slimops info` and `slimops bench <family>`."""

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


def build_parser() -> argparse.ArgumentParser:
    import torch

    from .bench import FAMILIES
    from .bench import attention, gemm, lowrank, sparse24  # noqa: F401  (register the families)

    parser = argparse.ArgumentParser(prog="slimops", description="Fast kernels for compressed LLMs")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, CUDA archs built, CPU paths, registered ops").set_defaults(func=_cmd_info)

    bench = sub.add_parser("bench", help="time slimops ops against their peers")
    fam = bench.add_subparsers(dest="family", required=True)
    for name, (add_arguments, _) in FAMILIES.items():
        fp = fam.add_parser(name)
        fp.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
        fp.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
        fp.add_argument("--reps", type=int, default=None, help="timed runs per case (default: 30 cuda, 15 cpu)")
        fp.add_argument("--json", default=None, help="write the results as JSON here")
        fp.add_argument("--markdown", default=None, help="write the table as Markdown here")
        add_arguments(fp)
        fp.set_defaults(func=_cmd_bench)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "reps", None) is None and args.command == "bench":
        args.reps = 30 if args.device == "cuda" else 15
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
