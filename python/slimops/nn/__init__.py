"""Drop-in modules that run on slimops kernels."""

from .quant_linear import QuantLinear

__all__ = ["QuantLinear"]
