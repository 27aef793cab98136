"""Microbenchmarks behind `slimops bench`: our ops against the peers a user
would otherwise pick, timed in the same process on the same shapes."""

from .runner import FAMILIES, run_family

__all__ = ["FAMILIES", "run_family"]
