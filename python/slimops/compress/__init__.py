"""Model compression: swap slimops modules into an existing model (optionally
with calibrated methods), and save / load the result."""

from .api import compress
from .recipe import Recipe
from .serialize import load, save

__all__ = ["compress", "load", "Recipe", "save"]
