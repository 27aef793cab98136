"""Drop-in modules that run on slimops kernels."""

from .lowrank_linear import LowRankLinear
from .quant_linear import QuantLinear

__all__ = ["LowRankLinear", "QuantLinear"]
