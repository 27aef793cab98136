"""Drop-in modules that run on slimops kernels."""

from .kv_cache import KVCache
from .lowrank_linear import LowRankLinear
from .quant_linear import QuantLinear
from .sparse24_linear import Sparse24Linear

__all__ = ["KVCache", "LowRankLinear", "QuantLinear", "Sparse24Linear"]
