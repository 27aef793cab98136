"""Model compression: swap slimops modules into an existing model, and save /
load the result."""

from .api import compress
from .serialize import load, save

__all__ = ["compress", "load", "save"]
