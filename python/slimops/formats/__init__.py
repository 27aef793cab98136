"""Weight formats: how quantised weights are laid out for the kernels.

``int8.py`` and ``int4.py`` document the layouts; ``quantize.py`` quantises
into them and defines dequantisation. ``gptq.py`` and ``awq.py`` convert
AutoGPTQ and AutoAWQ checkpoint tensors into them (``QuantLinear.from_gptq`` /
``from_awq`` build layers from those).
"""

from .awq import convert_awq
from .checkpoint import ImportedWeight
from .gptq import convert_gptq
from .int4 import pack_int4, unpack_int4
from .int8 import dequantize_int8, quantize_int8
from .quantize import QuantizedWeight, dequantize, quantize

__all__ = [
    "ImportedWeight",
    "QuantizedWeight",
    "convert_awq",
    "convert_gptq",
    "dequantize",
    "dequantize_int8",
    "pack_int4",
    "quantize",
    "quantize_int8",
    "unpack_int4",
]
