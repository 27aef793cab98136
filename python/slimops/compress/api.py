"""slimops.compress: replace a model's nn.Linear layers in place."""

import fnmatch
import re

from torch import nn

from ..nn.quant_linear import QuantLinear

# "int8" (one scale per output channel) or "int8-g<group size>".
_INT8_RECIPE = re.compile(r"^int8(?:-g(\d+))?$")


def _parse_recipe(recipe: str) -> dict:
    m = _INT8_RECIPE.match(recipe)
    if m is None:
        raise ValueError(f"slimops.compress: unknown recipe {recipe!r}; supported: 'int8', 'int8-g<group size>'")
    return {"bits": 8, "group_size": int(m.group(1)) if m.group(1) else -1}


def _is_skipped(name: str, skip) -> bool:
    # A pattern matches the full dotted name (glob) or any one of its parts,
    # so ("lm_head",) skips "lm_head" and "model.lm_head" alike.
    parts = name.split(".")
    return any(fnmatch.fnmatchcase(name, pat) or pat in parts for pat in skip)


def compress(model: nn.Module, recipe: str = "int8", *, skip=("lm_head",)) -> nn.Module:
    """Replace every ``nn.Linear`` in ``model`` not named in ``skip`` by its
    compressed counterpart, in place, and return ``model``."""
    if isinstance(skip, str):
        skip = (skip,)
    kwargs = _parse_recipe(recipe)
    targets = [
        (parent, child_name, f"{parent_name}.{child_name}" if parent_name else child_name)
        for parent_name, parent in model.named_modules()
        for child_name, child in parent.named_children()
        if type(child) is nn.Linear
    ]
    for parent, child_name, full_name in targets:
        if not _is_skipped(full_name, skip):
            setattr(parent, child_name, QuantLinear.from_linear(getattr(parent, child_name), **kwargs))
    return model
