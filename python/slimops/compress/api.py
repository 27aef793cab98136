"""slimops.compress: replace a model's nn.Linear layers in place."""

import fnmatch
import math
import re

from torch import nn

from ..nn.lowrank_linear import LowRankLinear
from ..nn.quant_linear import QuantLinear
from ..nn.sparse24_linear import Sparse24Linear

# "int8" / "int4", optionally "-g<group size>", "-asym" and "+lr<rank>" (a
# low-rank correction of the quantisation error). int8 defaults to one scale
# per output channel, int4 to groups of 128.
_QUANT_RECIPE = re.compile(r"^int(?P<bits>[48])(?:-g(?P<gs>\d+))?(?P<asym>-asym)?(?:\+lr(?P<lr>\d+))?$")
_DEFAULT_GROUP = {8: -1, 4: 128}


# "lowrank:<ratio>": truncated SVD keeping that fraction of each layer's parameters.
_LOWRANK_PREFIX = "lowrank:"

# "2:4": magnitude pruning to 2:4 sparsity; "int4+2:4[-g<group size>]": the
# kept values also quantised to int4 (groups of 128 dense columns by default).
_SPARSE_RECIPE = re.compile(r"^(?:int4\+)?2:4(?:-g(?P<gs>\d+))?$")


def _parse_recipe(recipe: str):
    """The factory that builds a compressed layer from an nn.Linear, and its kwargs."""
    if not isinstance(recipe, str):
        raise ValueError(f"slimops.compress: recipe must be a string, got {type(recipe).__name__}")
    if recipe.startswith(_LOWRANK_PREFIX):
        return LowRankLinear.from_linear, {"param_ratio": _parse_ratio(recipe), "method": "svd"}
    sparse = _SPARSE_RECIPE.match(recipe)
    if sparse is not None and (recipe.startswith("int4+") or sparse["gs"] is None):
        bits = 4 if recipe.startswith("int4+") else 16
        return Sparse24Linear.from_linear, {"prune": True, "bits": bits, "group_size": int(sparse["gs"] or 128)}
    m = _QUANT_RECIPE.match(recipe)
    if m is None:
        raise ValueError(
            f"slimops.compress: unknown recipe {recipe!r}; supported: 'int8', 'int4', "
            "with optional '-g<group size>', '-asym' and '+lr<rank>' (e.g. 'int4-g64-asym', 'int4+lr64'), and 'lowrank:<ratio>' "
            "with 0 < ratio < 1 (e.g. 'lowrank:0.5'), '2:4' and 'int4+2:4[-g<group size>]'"
        )
    bits = int(m["bits"])
    return QuantLinear.from_linear, {
        "bits": bits,
        "group_size": int(m["gs"]) if m["gs"] else _DEFAULT_GROUP[bits],
        "symmetric": m["asym"] is None,
        "lowrank_rank": int(m["lr"]) if m["lr"] else 0,
    }


def _parse_ratio(recipe: str) -> float:
    text = recipe[len(_LOWRANK_PREFIX):]
    try:
        ratio = float(text)
    except ValueError:
        ratio = math.nan
    # A ratio of 1 or more keeps at least as many parameters as the dense
    # layer: no compression, so it is surely a typo (say, a percentage).
    if not 0 < ratio < 1:
        raise ValueError(
            f"slimops.compress: recipe {recipe!r}: the low-rank ratio must be a number with 0 < ratio < 1 "
            f"(the fraction of each layer's parameters kept, e.g. 'lowrank:0.5'), got {text!r}"
        )
    return ratio


def _is_skipped(name: str, skip) -> bool:
    # A pattern matches the full dotted name (glob) or any one of its parts,
    # so ("lm_head",) skips "lm_head" and "model.lm_head" alike.
    parts = name.split(".")
    return any(fnmatch.fnmatchcase(name, pat) or pat in parts for pat in skip)


def compress(model: nn.Module, recipe: str = "int8", *, skip=("lm_head",)) -> nn.Module:
    """Replace every ``nn.Linear`` in ``model`` not named in ``skip`` by its
    compressed counterpart, in place, and return ``model``: a QuantLinear for
    ``"int8"``/``"int4..."``, a LowRankLinear (truncated SVD) for
    ``"lowrank:<ratio>"``, a Sparse24Linear (magnitude-pruned) for ``"2:4"``
    and ``"int4+2:4"``."""
    if isinstance(skip, str):
        skip = (skip,)
    factory, kwargs = _parse_recipe(recipe)
    targets = [
        (parent, child_name, f"{parent_name}.{child_name}" if parent_name else child_name)
        for parent_name, parent in model.named_modules()
        for child_name, child in parent.named_children()
        if type(child) is nn.Linear
    ]
    for parent, child_name, full_name in targets:
        if not _is_skipped(full_name, skip):
            try:
                layer = factory(getattr(parent, child_name), **kwargs)
            except ValueError as e:
                raise ValueError(f"slimops.compress: layer {full_name!r}: {e}") from None
            setattr(parent, child_name, layer)
    return model
