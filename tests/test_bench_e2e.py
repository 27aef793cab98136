"""`slimops bench e2e` on a tiny Llama: every variant runs through the same
harness, the harness decodes correctly (float32 dense + slimops attention
gives the baseline's tokens), CUDA-graph replay gives the eager tokens, and
the JSON / Markdown / plot come out."""

import json

import pytest
import torch

from slimops.bench import e2e
from slimops.bench.e2e_decode import GreedyDecoder
from slimops.bench.e2e_model import VARIANTS, apply_variant, build_model, llama_config, make_cache
from slimops.cli import build_parser

TINY = dict(hidden_size=256, num_attention_heads=4, num_key_value_heads=2, head_dim=64, intermediate_size=512, vocab_size=1000)
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def parse(*argv):
    args = build_parser().parse_args(["bench", "e2e", *argv])
    args.config_overrides = TINY
    return args


def test_cpu_all_variants(tmp_path):
    out = tmp_path / "e2e.json"
    args = parse("--device", "cpu", "--layers", "2", "--batch", "1", "3", "--prompt", "20", "--new", "6", "--reps", "1",
                 "--json", str(out), "--markdown", str(tmp_path / "e2e.md"), "--profile")
    result = e2e.run(args)
    rows = {(r["variant"], r["batch"]): r for r in result["rows"]}
    assert set(rows) == {(v, b) for v in VARIANTS for b in (1, 3)}
    for (variant, batch), r in rows.items():
        assert r["ms/step"] > 0 and r["prefill ms"] > 0, (variant, batch)
        assert r["tok/s"] == pytest.approx(batch * 1e3 / r["ms/step"])
        assert r["profile"], "the per-op breakdown is empty"
    # float32: the slimops attention and KV cache decode exactly the baseline's tokens.
    assert rows[("dense+attn", 1)]["same tokens"] == 1.0
    assert rows[("dense+attn", 3)]["same tokens"] == 1.0
    assert rows[("dense+attn", 3)]["logits err"] < 1e-5 and rows[("dense+fuse", 3)]["logits err"] < 1e-5
    assert 1e-4 < rows[("int4", 1)]["logits err"] < 0.5  # quantised: near, not equal
    # Compressed weights are smaller; the int8 KV cache is about half of float32's quarter plus scales.
    dense = rows[("dense", 1)]
    assert rows[("int4", 1)]["weights GB"] < rows[("int8", 1)]["weights GB"] < dense["weights GB"]
    assert rows[("int4+attn+kv8", 1)]["KV GB"] < 0.3 * rows[("int4+attn", 1)]["KV GB"]
    saved = json.loads(out.read_text())
    assert saved["layers"] == 2 and len(saved["rows"]) == len(rows)
    assert "| int4+2:4 | 3 |" in (tmp_path / "e2e.md").read_text()


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    args = parse("--device", "cpu", "--layers", "1", "--batch", "1", "2", "--prompt", "8", "--new", "4", "--reps", "1",
                 "--variants", "int4", "--plot", str(tmp_path / "e2e.png"))
    e2e.run(args)
    assert (tmp_path / "e2e.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_arguments():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "e2e", "--variants", "int3"])
    with pytest.raises(SystemExit, match="--new"):
        e2e.run(parse("--device", "cpu", "--new", "2"))


@cuda_only
@pytest.mark.parametrize("variant", ["dense", "dense+attn", "int4+attn+kv8", "int4+2:4", "int4+attn+fuse"])
def test_cuda_graph_decode_matches_eager(variant):
    """The decode step replayed from a CUDA graph produces the very tokens the
    eager step does (the graph updates the token, its position and the cache
    lengths itself)."""
    config = llama_config(2, torch.bfloat16, **TINY)
    model = apply_variant(build_model(config, torch.device("cuda")), VARIANTS[variant])
    prompt = torch.randint(0, TINY["vocab_size"], (3, 40), generator=torch.Generator().manual_seed(1)).cuda()
    tokens = {}
    for graph in (False, True):
        decoder = GreedyDecoder(model, make_cache(model, VARIANTS[variant], 3, 40 + 16), prompt, 16, use_graph=graph)
        if graph:
            decoder.capture()
            assert decoder.graph is not None
        tokens[graph] = decoder.generate()[0]
    torch.testing.assert_close(tokens[True], tokens[False], rtol=0, atol=0)


@cuda_only
def test_cuda_rows_report_memory():
    result = e2e.run(parse("--device", "cuda", "--layers", "2", "--batch", "2", "--prompt", "32", "--new", "8",
                           "--reps", "1", "--variants", "int4+attn"))
    for r in result["rows"]:
        assert r["peak GB"] >= r["weights GB"] > 0
