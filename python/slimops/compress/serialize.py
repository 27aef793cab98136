"""slimops.save / slimops.load: a compressed model as one safetensors file.

The file holds the model's whole state_dict and, in its metadata, a JSON
description of every slimops module (its type and constructor arguments).
`load` rebuilds those modules in a freshly built float model (where they are
still nn.Linear) before loading the tensors, so a model is compressed once
and loaded many times without re-running the compression.
"""

import json

import torch
from torch import nn

from ..nn.lowrank_linear import LowRankLinear
from ..nn.quant_linear import QuantLinear
from ..nn.sparse24_linear import Sparse24Linear

FORMAT = "slimops"
VERSION = 1
_METADATA_KEY = "slimops"


def _quant_config(m: QuantLinear) -> dict:
    return {
        "in_features": m.in_features,
        "out_features": m.out_features,
        "bias": m.bias is not None,
        "bits": m.bits,
        "group_size": m.group_size,
        "symmetric": m.symmetric,
        "act_order": m.perm is not None,
        "lowrank_rank": m.lowrank_rank,
        "dtype": str(m.bias.dtype if m.bias is not None else (m.lr_a.dtype if m.lr_a is not None else torch.float32)),
    }


def _lowrank_config(m: LowRankLinear) -> dict:
    return {
        "in_features": m.in_features,
        "out_features": m.out_features,
        "rank": m.rank,
        "bias": m.bias is not None,
        "dtype": str(m.V.dtype),
    }


def _sparse24_config(m: Sparse24Linear) -> dict:
    return {
        "in_features": m.in_features,
        "out_features": m.out_features,
        "bias": m.bias is not None,
        "bits": m.bits,
        "group_size": m.group_size,
        "dtype": str(m.dtype),
    }


# type name -> (class, config of an instance, constructor from a config)
_MODULES = {
    "QuantLinear": (
        QuantLinear,
        _quant_config,
        lambda c, device: QuantLinear(
            c["in_features"], c["out_features"], bias=c["bias"], bits=c["bits"], group_size=c["group_size"],
            symmetric=c["symmetric"], act_order=c["act_order"], lowrank_rank=c["lowrank_rank"],
            device=device, dtype=_dtype(c["dtype"]),
        ),
    ),
    "LowRankLinear": (
        LowRankLinear,
        _lowrank_config,
        lambda c, device: LowRankLinear(
            c["in_features"], c["out_features"], c["rank"], bias=c["bias"], device=device, dtype=_dtype(c["dtype"])
        ),
    ),
    "Sparse24Linear": (
        Sparse24Linear,
        _sparse24_config,
        lambda c, device: Sparse24Linear(
            c["in_features"], c["out_features"], bias=c["bias"], bits=c["bits"], group_size=c["group_size"],
            device=device, dtype=_dtype(c["dtype"]),
        ),
    ),
}


def _dtype(name: str) -> torch.dtype:
    dt = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(dt, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return dt


def save(model: nn.Module, path) -> None:
    """Write ``model``'s state and the description of its slimops modules to
    ``path`` (safetensors)."""
    from safetensors.torch import save_file

    modules = {}
    for name, m in model.named_modules():
        for type_name, (cls, config, _) in _MODULES.items():
            if type(m) is cls:
                modules[name] = {"type": type_name, "config": config(m)}
    description = {"format": FORMAT, "version": VERSION, "modules": modules}
    # Contiguous private copies: safetensors refuses views and storage shared
    # between entries (tied embeddings); load_state_dict re-ties them.
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={_METADATA_KEY: json.dumps(description)})


def load(model: nn.Module, path, *, device=None) -> nn.Module:
    """Rebuild in ``model`` (a freshly built float model of the same
    architecture, or one already compressed the same way) the slimops modules
    ``path`` describes, load every tensor, and return ``model``. A file that
    is not a slimops file, is corrupt, or does not match the model raises a
    ValueError naming what does not match."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = str(path)
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(path, device="cpu")
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"slimops.load: {path!r} is not a readable safetensors file: {e}") from None
    try:
        description = json.loads(meta[_METADATA_KEY])
        assert description["format"] == FORMAT
        modules = description["modules"]
    except (KeyError, ValueError, AssertionError, TypeError):
        raise ValueError(f"slimops.load: {path!r} has no slimops description (was it written by slimops.save?)") from None
    if description.get("version") != VERSION:
        raise ValueError(f"slimops.load: {path!r} is format version {description.get('version')}, this slimops reads {VERSION}")

    for name, entry in modules.items():
        _rebuild(model, name, entry, device)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise ValueError(f"slimops.load: {path!r} does not match the model: {e}") from None
    return model


def _rebuild(model: nn.Module, name: str, entry: dict, device) -> None:
    kind = entry.get("type")
    if kind not in _MODULES:
        raise ValueError(f"slimops.load: module {name!r}: unknown slimops module type {kind!r}")
    cls, config_of, build = _MODULES[kind]
    config = entry["config"]
    parent_name, _, child = name.rpartition(".")
    try:
        parent = model.get_submodule(parent_name)
        current = getattr(parent, child)
    except AttributeError:
        raise ValueError(f"slimops.load: module {name!r} of the file does not exist in the model") from None
    if type(current) is cls and config_of(current) == config:
        return  # already compressed this way
    if not isinstance(current, nn.Linear) or (current.in_features, current.out_features) != (
        config["in_features"], config["out_features"]
    ):
        got = f"{type(current).__name__}" + (
            f"({current.in_features} -> {current.out_features})" if isinstance(current, nn.Linear) else ""
        )
        raise ValueError(
            f"slimops.load: module {name!r}: the file has a {kind}({config['in_features']} -> "
            f"{config['out_features']}), the model a {got}"
        )
    target = device if device is not None else current.weight.device
    setattr(parent, child, build(config, target))
