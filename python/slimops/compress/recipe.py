"""Recipes: what a layer becomes (the recipe string), how it gets there (the
method), and per-module overrides by name pattern (:class:`Recipe`)."""

import fnmatch
import math
import re
import warnings
from dataclasses import dataclass

# "int8" / "int4", optionally "-g<group size>", "-asym" and "+lr<rank>" (a
# low-rank correction of the quantisation error). int8 defaults to one scale
# per output channel, int4 to groups of 128.
_QUANT_RECIPE = re.compile(r"^int(?P<bits>[48])(?:-g(?P<gs>\d+))?(?P<asym>-asym)?(?:\+lr(?P<lr>\d+))?$")
_DEFAULT_GROUP = {8: -1, 4: 128}

# "lowrank:<ratio>": keep that fraction of each layer's parameters.
_LOWRANK_PREFIX = "lowrank:"

# "2:4": 2:4 sparsity; "int4+2:4[-g<group size>]": the kept values also
# quantised to int4 (groups of 128 dense columns by default).
_SPARSE_RECIPE = re.compile(r"^(?:int4\+)?2:4(?:-g(?P<gs>\d+))?$")

# Methods by kind of recipe; the first is the default (needs no calibration).
METHODS = {
    "quant": ("rtn", "gptq", "awq"),
    "sparse": ("magnitude", "wanda", "sparsegpt"),
    "lowrank": ("svd", "asvd", "svd-llm"),
}
CALIBRATED = {"gptq", "awq", "wanda", "sparsegpt", "asvd", "svd-llm"}


@dataclass(frozen=True)
class Spec:
    """One parsed recipe string."""

    text: str
    kind: str  # "quant", "sparse", "lowrank"
    bits: int = 16  # quant: 4 / 8; sparse: 16 (values in the layer's dtype) or 4
    group_size: int = -1
    symmetric: bool = True
    lowrank_rank: int = 0  # quant: rank of the error correction
    ratio: float = 0.0  # lowrank: fraction of parameters kept


def parse(recipe: str) -> Spec:
    if not isinstance(recipe, str):
        raise ValueError(f"slimops.compress: recipe must be a string or a slimops.Recipe, got {type(recipe).__name__}")
    if recipe.startswith(_LOWRANK_PREFIX):
        return Spec(recipe, "lowrank", ratio=_parse_ratio(recipe))
    sparse = _SPARSE_RECIPE.match(recipe)
    if sparse is not None and (recipe.startswith("int4+") or sparse["gs"] is None):
        bits = 4 if recipe.startswith("int4+") else 16
        return Spec(recipe, "sparse", bits=bits, group_size=int(sparse["gs"] or 128))
    m = _QUANT_RECIPE.match(recipe)
    if m is None:
        raise ValueError(
            f"slimops.compress: unknown recipe {recipe!r}; supported: 'int8', 'int4', "
            "with optional '-g<group size>', '-asym' and '+lr<rank>' (e.g. 'int4-g64-asym', 'int4+lr64'), and 'lowrank:<ratio>' "
            "with 0 < ratio < 1 (e.g. 'lowrank:0.5'), '2:4' and 'int4+2:4[-g<group size>]'"
        )
    bits = int(m["bits"])
    return Spec(
        recipe, "quant", bits=bits,
        group_size=int(m["gs"]) if m["gs"] else _DEFAULT_GROUP[bits],
        symmetric=m["asym"] is None,
        lowrank_rank=int(m["lr"]) if m["lr"] else 0,
    )


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


def check_method(spec: Spec, method: str | None) -> str:
    """The method to use for ``spec`` (its kind's default when None)."""
    allowed = METHODS[spec.kind]
    if method is None:
        return allowed[0]
    if method not in allowed:
        raise ValueError(
            f"slimops.compress: method {method!r} does not apply to recipe {spec.text!r}; "
            f"for it choose one of {allowed}"
        )
    return method


def fit_group_size(k: int, spec: Spec, layer_name: str, warned: set | None = None) -> int:
    """The group size to use on a layer with ``k`` inputs: the recipe's when it
    divides k, else the largest of its halvings that does (128 -> 64 -> 32),
    else the largest smaller multiple of the format's unit that does (with a
    warning). A group size the format cannot take at all (int4: not a multiple
    of 32; int4 + 2:4: of 64) is left as is, for the layer to reject clearly.
    ``warned``: (k, group size) pairs already warned about in this run: one
    warning per pair, naming the first layer."""
    gs = spec.group_size
    if gs == -1 or gs <= 0 or k % gs == 0:
        return gs
    if spec.kind == "quant":
        unit = 32 if spec.bits == 4 else 1
    elif spec.kind == "sparse" and spec.bits == 4:
        unit = 64
    else:
        return gs
    if gs % unit:
        return gs
    # Halvings first (128 -> 64 -> 32: the sizes kernels are specialised for), then any other multiple of the unit.
    halvings = [gs >> i for i in range(1, gs.bit_length()) if (gs >> i) % unit == 0 and (gs >> i) << i == gs]
    others = [c for c in range(gs - unit, 0, -unit) if c not in halvings]
    for cand in halvings + others:
        if k % cand == 0:
            if warned is None or (k, gs) not in warned:
                warnings.warn(
                    f"slimops.compress: group size {gs} does not divide in_features={k} (layer {layer_name!r} "
                    f"and any others of that width): using {cand}", stacklevel=4,
                )
                if warned is not None:
                    warned.add((k, gs))
            return cand
    return gs


def name_matches(name: str, pattern: str) -> bool:
    """A pattern matches the full dotted name (glob), any one of its parts, or
    a dotted suffix of it: "lm_head", "mlp.down_proj" and "*.self_attn.*"
    all work on "model.layers.3.mlp.down_proj"-style names."""
    parts = name.split(".")
    return (
        fnmatch.fnmatchcase(name, pattern)
        or pattern in parts
        or name.endswith("." + pattern)
    )


class Recipe:
    """A recipe with a method and per-module overrides.

    ``Recipe("int4-g64", method="gptq", overrides={"mlp.down_proj": "int8",
    "*.self_attn.*": ("int4-g64", "awq"), "layers.0.*": None})``: every
    compressed layer gets ``"int4-g64"`` by GPTQ, except that the first
    override pattern matching a layer's name decides for it: a recipe string
    (the default method of its kind, or ``method`` when it applies), a
    ``(recipe, method)`` pair, or ``None`` to leave the layer as it is.
    Patterns: a glob of the full name, one of its dotted parts, or a dotted
    suffix. ``skip`` of :func:`slimops.compress` still applies first.
    """

    def __init__(self, default: str, method: str | None = None, overrides: dict | None = None):
        self.default = parse(default)
        self.method = check_method(self.default, method)
        self.overrides = []
        for pattern, value in (overrides or {}).items():
            if value is None:
                self.overrides.append((pattern, None))
                continue
            if isinstance(value, str):
                spec = parse(value)
                m = method if method in METHODS[spec.kind] else None
            elif isinstance(value, tuple) and len(value) == 2:
                spec, m = parse(value[0]), value[1]
            else:
                raise ValueError(
                    f"slimops.Recipe: override {pattern!r} must be a recipe string, a (recipe, method) pair or None, "
                    f"got {value!r}"
                )
            self.overrides.append((pattern, (spec, check_method(spec, m))))

    def for_module(self, name: str):
        """``(Spec, method)`` for the layer called ``name``, or None to keep it."""
        for pattern, choice in self.overrides:
            if name_matches(name, pattern):
                return choice
        return self.default, self.method

    def methods(self) -> set:
        return {self.method} | {c[1] for _, c in self.overrides if c is not None}

    def __repr__(self) -> str:
        over = {p: (None if c is None else (c[0].text, c[1])) for p, c in self.overrides}
        return f"Recipe({self.default.text!r}, method={self.method!r}, overrides={over!r})"
