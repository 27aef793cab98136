"""slimops: fast kernels for compressed LLMs, as torch custom ops.

Importing slimops loads the native extension, which registers the ops under
``torch.ops.slimops``; this module re-exports the public API.
"""

import torch  # noqa: F401  (loads libtorch before the extension that links against it)

from . import _C  # noqa: F401  (registers torch.ops.slimops.*)
from . import formats, ops, reference
from .compress import Recipe, compress, load, save
from .formats.sparse24 import prune_2_4
from .nn import KVCache, LowRankLinear, QuantLinear, Sparse24Linear
from .ops import kv_attention, lowrank_linear, sparse24_gemm, wo_gemm, wo_gemm_lowrank

__version__ = _C.build_info()["version"]

__all__ = [
    "compress",
    "evaluate",
    "formats",
    "kv_attention",
    "KVCache",
    "load",
    "lowrank_linear",
    "LowRankLinear",
    "ops",
    "prune_2_4",
    "QuantLinear",
    "Recipe",
    "reference",
    "save",
    "sparse24_gemm",
    "Sparse24Linear",
    "wo_gemm",
    "wo_gemm_lowrank",
    "info",
    "__version__",
]


def evaluate(model, tokenizer, **kwargs) -> dict:
    """Perplexity on fixed offline English text and decode tokens/s
    (:func:`slimops.compress.evaluate.evaluate`)."""
    from .compress.evaluate import evaluate as _evaluate

    return _evaluate(model, tokenizer, **kwargs)


def info() -> dict:
    """Build and run-time facts: versions, CUDA archs built, CPU paths, registered ops."""
    from ._info import collect_info

    return collect_info()
