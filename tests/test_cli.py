"""The `slimops` command line and the run-time CPU path choice."""

import json
import os
import subprocess
import sys

import pytest

import slimops
from slimops.cli import main


def test_info_lists_build_and_ops(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "wo_gemm" in out and "cpu isa selected" in out and slimops.__version__ in out


def test_bench_gemm_tiny_cpu(tmp_path, capsys):
    path = tmp_path / "r.json"
    md = tmp_path / "r.md"
    assert main(["bench", "gemm", "--device", "cpu", "--shapes", "256x96,128x40", "--m", "1,5", "--reps", "3",
                 "--json", str(path), "--markdown", str(md)]) == 0
    result = json.loads(path.read_text())
    # Two shapes: each timed closure must hold its own weights.
    assert [(r["K x N"], r["M"]) for r in result["rows"]] == [("256x96", 1), ("256x96", 5), ("128x40", 1), ("128x40", 5)]
    assert all(r["rel err"] < 1e-2 for r in result["rows"])
    row = result["rows"][0]
    assert row["x vs torch int8pack bf16"] > 0 and row["slimops int8 fp32-x (ms)"] > 0
    assert "| K x N | M |" in md.read_text()


def _selected_isa_with_env(value: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SLIMOPS_CPU_ISA=value)
    code = "import slimops; print(slimops._C.selected_cpu_isa())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_env_forces_scalar_path():
    proc = _selected_isa_with_env("scalar")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "scalar"


def test_env_with_unknown_isa_fails_loudly():
    proc = _selected_isa_with_env("sse9")
    assert proc.returncode != 0 and "unknown CPU ISA 'sse9'" in proc.stderr


def test_default_is_best_isa():
    proc = _selected_isa_with_env("")
    # available_cpu_isas lists from least to most capable.
    assert proc.stdout.strip() == slimops._C.available_cpu_isas()[-1]
