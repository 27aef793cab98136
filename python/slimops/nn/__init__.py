"""Drop-in modules that run on slimops kernels."""

from .fuse import fuse_projections
from .kv_cache import KVCache
from .lowrank_linear import LowRankLinear
from .quant_linear import QuantLinear
from .sparse24_linear import Sparse24Linear

__all__ = ["fuse_projections", "KVCache", "LowRankLinear", "QuantLinear", "Sparse24Linear"]
