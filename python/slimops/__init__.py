"""slimops: fast kernels for compressed LLMs, as torch custom ops.

Importing slimops loads the native extension, which registers the ops under
``torch.ops.slimops``; this module re-exports the public API.
"""

import torch  # noqa: F401  (loads libtorch before the extension that links against it)

from . import _C  # noqa: F401  (registers torch.ops.slimops.*)
from . import formats, ops, reference
from .compress import compress, load, save
from .nn import KVCache, LowRankLinear, QuantLinear
from .ops import kv_attention, lowrank_linear, wo_gemm

__version__ = _C.build_info()["version"]

__all__ = ["KVCache", "LowRankLinear", "QuantLinear", "compress", "formats", "kv_attention", "load", "lowrank_linear", "ops", "reference", "save", "wo_gemm", "info", "__version__"]


def info() -> dict:
    """Build and run-time facts: versions, CUDA archs built, CPU paths, registered ops."""
    from ._info import collect_info

    return collect_info()
