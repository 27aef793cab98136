"""Model compression: swap slimops modules into an existing model."""

from .api import compress

__all__ = ["compress"]
