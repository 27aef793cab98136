"""Weight formats: how quantised weights are laid out for the kernels."""

from .int8 import dequantize_int8, quantize_int8

__all__ = ["dequantize_int8", "quantize_int8"]
