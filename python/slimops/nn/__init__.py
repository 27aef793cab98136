"""Drop-in modules that run on slimops kernels."""

from .kv_cache import KVCache
from .lowrank_linear import LowRankLinear
from .quant_linear import QuantLinear

__all__ = ["KVCache", "LowRankLinear", "QuantLinear"]
