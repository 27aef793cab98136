"""A preallocated KV cache for Hugging Face transformers models, filled by slimops.kv_attention.

``KVCache`` holds, for every decoder layer, the key and value caches in the
layout the op reads and writes in place, ``[B, max_len, Hkv, D]`` (plus float32
per-(position, head) scales ``[B, max_len, Hkv]`` for int8), and the cached
length of each sequence as an int32 ``[B]`` tensor (the op's ``cache_seqlens``).

It is a :class:`transformers.Cache`, so ``model.generate(..., past_key_values=cache)``
accepts it, but it only works together with the ``"slimops"`` attention
(:mod:`slimops.integrations.transformers`): ``update()`` does *not* copy the new
keys and values into the cache. It returns them unchanged and records that
layer ``layer_idx`` has an append pending; the attention function then passes
them to ``slimops.kv_attention``, which writes them into the cache and attends
over it in one kernel, and advances the lengths. Used with any other attention
implementation the cache would hand only the new tokens to the attention, so
an update that finds the previous one never consumed raises instead.

transformers is imported lazily (on first construction) so that slimops keeps
working without it.
"""

from __future__ import annotations

import threading

import torch

_DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "int8": torch.int8,
}

# The append recorded by KVCache.update for the attention function of the same
# layer to perform. Thread-local because update and attention of one layer
# always run back to back on one thread, while two threads may each run a model.
_pending = threading.local()


class PendingAppend:
    """What the attention function needs to append and attend: the layer's
    storage and the new key/value states exactly as update() returned them
    (``[B, Hkv, Sq, D]``, transformers' layout)."""

    __slots__ = ("layer", "layer_idx", "key", "value")

    def __init__(self, layer, layer_idx, key, value):
        self.layer, self.layer_idx, self.key, self.value = layer, layer_idx, key, value


def take_pending_append() -> PendingAppend | None:
    """Pops the append recorded by the last ``KVCache.update`` on this thread (or None)."""
    p = getattr(_pending, "value", None)
    _pending.value = None
    return p


def _model_dims(config) -> tuple[int, int, int]:
    """(num layers, Hkv, D) of a decoder config; rejects layer kinds the op cannot serve."""
    if hasattr(config, "get_text_config"):
        config = config.get_text_config(decoder=True)
    n_layers = config.num_hidden_layers
    hq = config.num_attention_heads
    hkv = getattr(config, "num_key_value_heads", None) or hq
    # head_dim may be present but None on some configs, hence the `or`.
    d = getattr(config, "head_dim", None) or config.hidden_size // hq
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        other = sorted({t for t in layer_types if t != "full_attention"})
        if other:
            raise ValueError(
                f"slimops.KVCache: the model has {other} layers; only full causal attention layers are "
                "supported (no sliding-window, chunked, linear or hybrid attention)"
            )
    elif getattr(config, "sliding_window", None) is not None or getattr(config, "attention_chunk_size", None) is not None:
        raise ValueError(
            "slimops.KVCache: sliding-window / chunked attention is not supported (the config sets "
            f"sliding_window={getattr(config, 'sliding_window', None)}, "
            f"attention_chunk_size={getattr(config, 'attention_chunk_size', None)})"
        )
    if getattr(config, "num_kv_shared_layers", None):
        raise ValueError("slimops.KVCache: models sharing KV across layers (num_kv_shared_layers) are not supported")
    if hq % hkv:
        raise ValueError(f"slimops.KVCache: num_attention_heads {hq} is not a multiple of num_key_value_heads {hkv}")
    return n_layers, hkv, d


def _make_classes():
    """Builds the transformers subclasses on first use (transformers is optional for slimops)."""
    from transformers.cache_utils import Cache, CacheLayerMixin

    class KVCacheLayer(CacheLayerMixin):
        """One layer's storage. ``keys``/``values`` are ``[B, max_len, Hkv, D]``
        (the op's layout, not transformers' ``[B, H, S, D]``); ``cache_seqlens``
        int32 ``[B]`` on the cache's device; ``length`` the same count as a
        Python int (all sequences have equal lengths, padding is rejected), so
        get_seq_length never waits for the device."""

        is_compileable = False  # update/attention hand state over through Python, see module docstring
        is_croppable = True
        is_sliding = False

        def __init__(self, batch_size, max_len, hkv, d, dtype, device):
            super().__init__()
            self.batch_size, self.max_len, self.num_heads, self.head_dim = batch_size, max_len, hkv, d
            self.dtype, self.device = dtype, torch.device(device)
            shape = (batch_size, max_len, hkv, d)
            self.keys = torch.zeros(shape, dtype=dtype, device=device)
            self.values = torch.zeros(shape, dtype=dtype, device=device)
            # The storage's own device: "cuda" names no index, the tensors' does.
            self.device = self.keys.device
            if dtype == torch.int8:
                self.k_scale = torch.zeros(shape[:3], dtype=torch.float32, device=device)
                self.v_scale = torch.zeros(shape[:3], dtype=torch.float32, device=device)
            else:
                self.k_scale = self.v_scale = None
            self.cache_seqlens = torch.zeros(batch_size, dtype=torch.int32, device=device)
            self.length = 0
            self.is_initialized = True

        def lazy_initialization(self, key_states, value_states):
            pass  # allocated up front: the op writes into fixed storage

        def update(self, key_states, value_states, *args, **kwargs):
            raise RuntimeError("slimops.KVCache layers are updated through KVCache.update")

        def advance(self, n: int) -> None:
            """Called by the attention function once the op has appended n tokens."""
            self.cache_seqlens.add_(n)
            self.length += n

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.length + query_length, 0

        def get_seq_length(self) -> int:
            return self.length

        def get_max_length(self) -> int:
            return self.max_len

        def reset(self) -> None:
            # Only the lengths: the op never reads a row at or past cache_seqlens
            # (it writes the append first), so zeroing gigabytes of storage would
            # buy nothing.
            self.cache_seqlens.zero_()
            self.length = 0

        def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
            # In place, so the storage the op writes into stays the same.
            idx = beam_idx.to(self.device)
            n = self.length
            for t in (self.keys, self.values, self.k_scale, self.v_scale):
                if t is not None and n:
                    t[:, :n].copy_(t[:, :n].index_select(0, idx))

        def crop(self, tokens_to_remove: int) -> None:
            # transformers 5.x: negative = drop that many tokens; positive
            # (legacy) = keep that many.
            keep = self.length - abs(tokens_to_remove) if tokens_to_remove <= 0 else min(tokens_to_remove, self.length)
            keep = max(keep, 0)
            self.cache_seqlens.fill_(keep)
            self.length = keep

        def offload(self):
            pass  # the op needs the storage where it was allocated

        def prefetch(self):
            pass

    class KVCache(Cache):
        """The transformers ``Cache`` behind :class:`slimops.KVCache` (documented there)."""

        def __init__(self, config, batch_size: int, max_len: int, dtype="bfloat16", device="cpu"):
            if isinstance(dtype, str):
                if dtype not in _DTYPES:
                    raise ValueError(f"slimops.KVCache: dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
                dtype = _DTYPES[dtype]
            elif dtype not in _DTYPES.values():
                raise ValueError(f"slimops.KVCache: dtype must be one of {sorted(_DTYPES)}, got {dtype}")
            if batch_size < 1 or max_len < 1:
                raise ValueError(f"slimops.KVCache: batch_size and max_len must be >= 1, got {batch_size}, {max_len}")
            n_layers, hkv, d = _model_dims(config)
            super().__init__(layers=[KVCacheLayer(batch_size, max_len, hkv, d, dtype, device) for _ in range(n_layers)])
            self.max_len, self.dtype = max_len, dtype
            self.device = self.layers[0].device if self.layers else torch.device(device)

        def update(self, key_states, value_states, layer_idx: int, *args, **kwargs):
            """Validates the new ``[B, Hkv, Sq, D]`` states and records them for the
            slimops attention of this layer, which appends them inside the op.
            Returns them unchanged (not the whole cache: the op reads that itself)."""
            stale = take_pending_append()
            if stale is not None:
                raise RuntimeError(
                    f"slimops.KVCache: the append recorded for layer {stale.layer_idx} was never performed. "
                    "A KVCache only works with attn_implementation='slimops' (call "
                    "slimops.integrations.transformers.register() and load or build the model with it); "
                    "with any other attention the model would attend to the new tokens only. "
                    "(This also follows an exception raised between a layer's cache update and its attention.)"
                )
            layer = self.layers[layer_idx]
            B, hkv, sq, d = key_states.shape
            who = f"slimops.KVCache (layer {layer_idx})"
            if (B, hkv, d) != (layer.batch_size, layer.num_heads, layer.head_dim) or value_states.shape != key_states.shape:
                raise ValueError(
                    f"{who}: new key/value states must be [B, Hkv, Sq, D] with B={layer.batch_size}, "
                    f"Hkv={layer.num_heads}, D={layer.head_dim}; got {tuple(key_states.shape)} and "
                    f"{tuple(value_states.shape)} (build the cache with the model's config and the batch size of the inputs)"
                )
            if key_states.device != layer.device:
                raise ValueError(f"{who}: the cache is on {layer.device}, the model's states on {key_states.device}")
            if layer.dtype != torch.int8 and key_states.dtype != layer.dtype:
                want, got = (str(t).removeprefix("torch.") for t in (layer.dtype, key_states.dtype))
                raise ValueError(
                    f"{who}: a {want} cache needs a {want} model, got {got} states "
                    "(build the cache with the model's dtype, or dtype='int8')"
                )
            if layer.length + sq > layer.max_len:
                # Must be caught here: the kernels trust cache_seqlens + Sq <= max_len.
                raise ValueError(
                    f"{who}: appending {sq} tokens to {layer.length} cached would exceed max_len={layer.max_len}"
                )
            _pending.value = PendingAppend(layer, layer_idx, key_states, value_states)
            return key_states, value_states

        def reset(self):
            """Empties every sequence (lengths to 0), keeping the storage for reuse."""
            take_pending_append()
            super().reset()

    return KVCache, KVCacheLayer


_classes = None


def _get_classes():
    global _classes
    if _classes is None:
        _classes = _make_classes()
    return _classes


class _LazyKVCacheMeta(type):
    # isinstance/issubclass against slimops.KVCache resolve to the real class.
    def __instancecheck__(cls, obj):
        return isinstance(obj, _get_classes()[0])

    def __subclasscheck__(cls, sub):
        return issubclass(sub, _get_classes()[0])


class KVCache(metaclass=_LazyKVCacheMeta):
    """Preallocated per-layer KV cache for ``attn_implementation="slimops"`` models.

    Args:
        config: the model's config (``PretrainedConfig``); its text/decoder part
            gives ``num_hidden_layers``, ``num_key_value_heads`` (default:
            ``num_attention_heads``) and ``head_dim`` (default:
            ``hidden_size // num_attention_heads``).
        batch_size: sequences per batch (prompts of equal length, no padding).
        max_len: capacity per sequence in tokens, prompt included; an append
            past it raises.
        dtype: storage dtype, ``"bfloat16"``, ``"float16"``, ``"float32"``
            (must then equal the model's dtype) or ``"int8"`` (any model dtype:
            the op quantises each new (position, head) row on append and keeps
            float32 scales). A ``torch.dtype`` is accepted too.
        device: where the storage lives (the model's device).

    Memory: ``2 * num_layers * batch_size * max_len * Hkv * D`` elements
    (plus ``2 * num_layers * batch_size * max_len * Hkv`` float32 scales for int8).

    Constructing one returns an instance of a ``transformers.Cache`` subclass
    built on first use (so slimops imports without transformers);
    ``isinstance(x, slimops.KVCache)`` works as expected.
    """

    def __new__(cls, config, batch_size: int, max_len: int, dtype="bfloat16", device="cpu"):
        return _get_classes()[0](config, batch_size, max_len, dtype=dtype, device=device)
