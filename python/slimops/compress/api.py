"""slimops.compress: replace a model's nn.Linear layers in place."""

import fnmatch
import re

from torch import nn

from ..nn.quant_linear import QuantLinear

# "int8" / "int4", optionally "-g<group size>" and "-asym".
# int8 defaults to one scale per output channel, int4 to groups of 128.
_QUANT_RECIPE = re.compile(r"^int(?P<bits>[48])(?:-g(?P<gs>\d+))?(?P<asym>-asym)?$")
_DEFAULT_GROUP = {8: -1, 4: 128}


def _parse_recipe(recipe: str) -> dict:
    m = _QUANT_RECIPE.match(recipe)
    if m is None:
        raise ValueError(
            f"slimops.compress: unknown recipe {recipe!r}; supported: 'int8', 'int4', "
            "with optional '-g<group size>' and '-asym' (e.g. 'int4-g64-asym')"
        )
    bits = int(m["bits"])
    return {
        "bits": bits,
        "group_size": int(m["gs"]) if m["gs"] else _DEFAULT_GROUP[bits],
        "symmetric": m["asym"] is None,
    }


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
            try:
                layer = QuantLinear.from_linear(getattr(parent, child_name), **kwargs)
            except ValueError as e:
                raise ValueError(f"slimops.compress: layer {full_name!r}: {e}") from None
            setattr(parent, child_name, layer)
    return model
