"""slimops attention for Hugging Face transformers (5.x).

Usage::

    import slimops
    from slimops.integrations.transformers import register

    register()                                   # once per process; idempotent
    model = AutoModelForCausalLM.from_pretrained(name, attn_implementation="slimops", dtype=torch.bfloat16)
    cache = slimops.KVCache(model.config, batch_size=1, max_len=4096, dtype="int8", device=model.device)
    out = model.generate(input_ids, past_key_values=cache, max_new_tokens=128)

How the pieces cooperate: a decoder layer calls ``past_key_values.update(k, v,
layer_idx)`` and then the registered attention function. :meth:`KVCache.update`
only validates and records the new states (a thread-local hand-over); the
attention function takes them and calls :func:`slimops.kv_attention` with
them as ``k``/``v``, so the op writes them into the cache (quantising them for
int8) and attends over the cache in the same kernel, then advances the
cache's lengths. No separate copy into the cache, no ``repeat_kv`` (the op
does GQA), no mask tensor (the op applies bottom-right causal masking itself).
One exception: a prompt into an empty float cache runs SDPA and copies its
k/v into the cache (``_prefill_empty_cache`` says why).

Without a :class:`slimops.KVCache` (transformers' own DynamicCache, or
``use_cache=False``) the attention function still works: it attends over the
full key/value states it is given (a contiguous copy of them serves as the
"cache"), which is correct but does not fuse the append.

Supported: decoder-only models whose attention calls
``past_key_values.update`` then the attention interface with the returned
states unchanged (Llama, Qwen2 and most of their descendants), full causal
attention, GQA/MQA, batches of equal-length sequences. Rejected with an
error: padding (an attention mask with zeros), sliding-window / chunked
attention, logit soft-capping, attention dropout in training, custom 4D masks,
packed sequences, non-causal (bidirectional) attention. No gradients: this is
for inference.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, causal_mask_function

from ..nn.kv_cache import take_pending_append
from ..ops import kv_attention

NAME = "slimops"


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether the op can address a and b with one set of strides (it ignores
    the strides of size-1 dims, which address nothing)."""
    return all(n <= 1 or sa == sb for n, sa, sb in zip(a.shape, a.stride(), b.stride()))


def slimops_mask(
    batch_size: int,
    q_length: int,
    kv_length: int,
    q_offset: int = 0,
    kv_offset: int = 0,
    mask_function=causal_mask_function,
    attention_mask: torch.Tensor | None = None,
    **kwargs,
):
    """The mask "builder" registered for ``"slimops"``: the op masks causally
    by itself, so no mask is ever built; this only refuses what the op cannot
    express. Runs once per forward, before any layer."""
    if mask_function is not causal_mask_function:
        raise ValueError(
            "slimops attention supports plain causal attention only; this model / call needs another mask "
            f"pattern ({getattr(mask_function, '__name__', mask_function)}: sliding window, packed sequences, "
            "bidirectional or blockwise attention)"
        )
    if attention_mask is not None and attention_mask.dtype != torch.bool:
        attention_mask = attention_mask.bool()
    # One device sync per forward (as transformers' own sdpa path does).
    if attention_mask is not None and not bool(attention_mask.all()):
        raise ValueError(
            "slimops attention does not support padding: the attention_mask has zeros. The op attends to every "
            "cached position of a sequence, so pad tokens would be attended. Batch prompts of equal length "
            "(or generate one sequence at a time)."
        )
    return None


def slimops_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    sliding_window: int | None = None,
    softcap: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers attention interface: ``query`` ``[B, Hq, Sq, D]``, ``key``/``value``
    ``[B, Hkv, S, D]`` as the model's attention passes them; returns
    ``([B, Sq, Hq, D], None)`` (no attention weights)."""
    # Taken first, so that whatever is raised below leaves no stale hand-over behind.
    pending = take_pending_append()
    layer_idx = getattr(module, "layer_idx", None)
    where = f"slimops attention (layer {layer_idx})"
    if dropout:
        raise ValueError(f"{where}: attention dropout is not supported (inference only; call model.eval())")
    if sliding_window is not None:
        raise ValueError(f"{where}: sliding-window attention (window {sliding_window}) is not supported")
    if softcap is not None:
        raise ValueError(f"{where}: attention logit soft-capping is not supported")
    if not kwargs.get("is_causal", getattr(module, "is_causal", True)):
        raise ValueError(f"{where}: only causal (decoder) self-attention is supported")
    if attention_mask is not None:
        # slimops_mask never builds one, so this is a mask the caller prepared.
        raise ValueError(f"{where}: custom attention masks are not supported (the op masks causally itself)")
    q = query.transpose(1, 2)  # [B, Sq, Hq, D] view; the op takes strided q/k/v

    if pending is not None:
        if (layer_idx is not None and pending.layer_idx != layer_idx) or key is not pending.key or value is not pending.value:
            raise RuntimeError(
                f"{where}: the key/value states reaching attention are not the ones slimops.KVCache.update "
                f"returned for layer {pending.layer_idx}; this model transforms them in between, which the fused "
                "append cannot follow"
            )
        layer = pending.layer
        if layer.length == 0 and q.shape[1] > 1 and layer.dtype != torch.int8:
            return _prefill_empty_cache(layer, query, key, value, scaling), None
        k_new, v_new = key.transpose(1, 2), value.transpose(1, 2)
        if not _same_layout(k_new, v_new):
            # The op takes one set of strides for the new k and v. In Llama/Qwen2
            # the rotary embedding leaves k [B, Hkv, Sq, D]-contiguous while v is
            # a transposed view of the projection's [B, Sq, Hkv, D]: copy the
            # new tokens (Sq x Hkv x D each, never the cache) into v's layout.
            k_new = torch.empty_like(v_new).copy_(k_new)
            if not _same_layout(k_new, v_new):  # v not dense: both get a fresh layout
                v_new = torch.empty_like(k_new).copy_(v_new)
        out = kv_attention(
            q,
            layer.keys,
            layer.values,
            layer.cache_seqlens,
            k_new,
            v_new,
            softmax_scale=scaling,
            causal=True,
            k_scale=layer.k_scale,
            v_scale=layer.v_scale,
        )
        # The op does not advance cache_seqlens: the caller does, once the append happened.
        layer.advance(q.shape[1])
        return out, None

    # Not a slimops.KVCache: key/value hold every position (DynamicCache or no
    # cache). Attend over them as a full cache; bottom-right causal alignment
    # is exactly what a cache of S positions with Sq new queries needs.
    B, _, S, _ = key.shape
    seqlens = torch.full((B,), S, dtype=torch.int32, device=key.device)
    out = kv_attention(
        q,
        key.transpose(1, 2).contiguous(),
        value.transpose(1, 2).contiguous(),
        seqlens,
        softmax_scale=scaling,
        causal=True,
    )
    return out, None


def _prefill_empty_cache(layer, query, key, value, scaling):
    """A prompt into an empty float cache: SDPA (flash on GPUs) attends, then
    the prompt's k/v are copied into the cache. The fused op is a decode
    kernel: it packs a kv head's query rows in tiles of 16 and re-reads the
    keys for every tile, so a 512-token prompt ran at half SDPA's speed. An
    int8 cache keeps the op, which quantises on append exactly as it will
    later read; so do appends to a non-empty cache (chunked prefill, decode)."""
    import torch.nn.functional as F

    sq = query.shape[2]
    out = F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scaling,
                                         enable_gqa=query.shape[1] != key.shape[1])
    layer.keys[:, :sq].copy_(key.transpose(1, 2))
    layer.values[:, :sq].copy_(value.transpose(1, 2))
    layer.advance(sq)
    return out.transpose(1, 2)


def register(name: str = NAME) -> None:
    """Registers the attention function (and its mask hook) with transformers
    under ``name``; then ``attn_implementation=name`` selects it. Safe to call
    any number of times."""
    AttentionInterface.register(name, slimops_attention_forward)
    AttentionMaskInterface.register(name, slimops_mask)


__all__ = ["NAME", "register", "slimops_attention_forward", "slimops_mask"]
