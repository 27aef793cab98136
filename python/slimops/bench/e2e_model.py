"""The model and the variants of `slimops bench e2e`.

The model is a transformers Llama with Llama-3-8B's dimensions and random
weights drawn from a fixed seed (no download: decode speed depends on the
shapes, not on what the weights say). A variant is what a user would do to
it: compress its linear layers with a recipe, and/or switch its attention
(and KV cache) to slimops'.
"""

from __future__ import annotations

import dataclasses

import torch

# Llama-3-8B (meta-llama/Meta-Llama-3-8B config.json).
LLAMA3_8B = {
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "intermediate_size": 14336,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    recipe: str | None  # slimops.compress recipe for every linear layer but lm_head; None: dense
    slimops_attention: bool  # attn_implementation "slimops" + slimops.KVCache, else "sdpa" + transformers' StaticCache
    kv_dtype: str | None = None  # slimops.KVCache storage; None: the model's dtype
    fuse: bool = False  # slimops.nn.fuse_projections before compressing: one GEMM for q/k/v, one for gate/up
    what: str = ""


VARIANTS = {
    v.name: v
    for v in (
        Variant("dense", None, False, what="baseline: the model's dtype (bf16), transformers sdpa, StaticCache"),
        Variant("dense+attn", None, True, what="dense weights, slimops attention and KV cache"),
        Variant("int8", "int8", False, what="int8 weights (per-channel), sdpa"),
        Variant("int4", "int4-g128", False, what="int4 g128 weights, sdpa"),
        Variant("int4+attn", "int4-g128", True, what="int4 g128 weights, slimops attention"),
        Variant("int4+attn+kv8", "int4-g128", True, "int8", what="int4 g128, slimops attention, int8 KV cache"),
        Variant("dense+fuse", None, False, fuse=True, what="baseline with q/k/v and gate/up stacked (cuBLAS)"),
        Variant("int8+fuse", "int8", False, fuse=True, what="int8 weights, q/k/v and gate/up stacked, sdpa"),
        Variant("int4+attn+fuse", "int4-g128", True, fuse=True,
                what="int4 g128, q/k/v and gate/up stacked, slimops attention"),
        Variant("2:4", "2:4", False, what="2:4 sparse weights, sdpa"),
        Variant("int4+2:4", "int4+2:4", False, what="2:4 sparse int4 g128 weights, sdpa"),
    )
}
BASELINE = "dense"


def llama_config(layers: int | None = None, dtype: torch.dtype = torch.bfloat16, **overrides):
    """A LlamaConfig with Llama-3-8B's dimensions; ``layers`` keeps only the
    first N decoder layers, ``overrides`` replace any other dimension (tests)."""
    from transformers import LlamaConfig

    dims = {**LLAMA3_8B, **overrides}
    if layers is not None:
        dims["num_hidden_layers"] = layers
    config = LlamaConfig(**dims)
    config.dtype = dtype
    return config


def build_model(config, device: torch.device, seed: int = 0) -> torch.nn.Module:
    """The model with transformers' own random initialisation from ``seed``,
    created directly on ``device`` in ``config.dtype`` (no float32 copy: 8B
    parameters in float32 would need 32 GB first)."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(config.dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval().requires_grad_(False)


def apply_variant(model: torch.nn.Module, variant: Variant) -> torch.nn.Module:
    """Compresses and switches attention in place, as a user would."""
    import slimops

    if variant.fuse:
        from ..nn.fuse import fuse_projections

        fuse_projections(model)
    if variant.recipe is not None:
        slimops.compress(model, variant.recipe, progress=False)
    if variant.slimops_attention:
        from ..integrations.transformers import NAME, register

        register()
        model.set_attn_implementation(NAME)
    else:
        model.set_attn_implementation("sdpa")
    return model


def make_cache(model, variant: Variant, batch: int, max_len: int):
    """The static, preallocated cache the variant decodes with: transformers'
    StaticCache for sdpa (its keys are allocated on the first forward),
    slimops.KVCache for the slimops attention."""
    device = next(model.parameters()).device
    if variant.slimops_attention:
        import slimops

        return slimops.KVCache(model.config, batch, max_len, dtype=variant.kv_dtype or model.config.dtype, device=device)
    from transformers import StaticCache

    return StaticCache(config=model.config, max_cache_len=max_len)


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of every distinct parameter and buffer (quantised weights, scales,
    embeddings, lm_head, norms)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        key = (t.untyped_storage().data_ptr(), t.data_ptr(), t.numel())
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


def cache_bytes(cache) -> int:
    """Bytes of the preallocated KV storage (StaticCache allocates on first use: call after prefill)."""
    total = 0
    for layer in cache.layers:
        for name in ("keys", "values", "k_scale", "v_scale"):
            t = getattr(layer, name, None)
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total
