"""slimops.compress: replace a model's nn.Linear layers in place, by
round-to-nearest / magnitude / SVD, or by a calibrated method (GPTQ, AWQ,
Wanda, SparseGPT, ASVD, SVD-LLM) from calibration inputs."""

import fnmatch

import torch
from torch import nn

from ..formats.quantize import dequantize
from ..nn.lowrank_linear import LowRankLinear
from ..nn.quant_linear import QuantLinear
from ..nn.sparse24_linear import Sparse24Linear
from . import calibrate as cal
from .recipe import CALIBRATED, Recipe, fit_group_size


def _is_skipped(name: str, skip) -> bool:
    # A pattern matches the full dotted name (glob) or any one of its parts,
    # so ("lm_head",) skips "lm_head" and "model.lm_head" alike.
    parts = name.split(".")
    return any(fnmatch.fnmatchcase(name, pat) or pat in parts for pat in skip)


def _targets(model: nn.Module, recipe: Recipe, skip) -> dict:
    """{full name: (Spec, method)} of the linears to compress."""
    plan = {}
    for name, m in model.named_modules():
        if type(m) is nn.Linear and not _is_skipped(name, skip):
            choice = recipe.for_module(name)
            if choice is not None:
                plan[name] = choice
    return plan


def _build(linear: nn.Linear, spec, method: str, stats, name: str, awq=None, warned=None) -> nn.Module:
    """The compressed layer for one linear (its weight already scaled/clipped by AWQ when awq is set)."""
    if stats is None and method in CALIBRATED:
        raise ValueError(f"method {method!r} needs calibration statistics, and this layer got none from the calibration run")
    gs = fit_group_size(linear.in_features, spec, name, warned)
    if spec.kind == "quant":
        if method == "gptq":
            from .gptq import gptq_layer

            return gptq_layer(linear, stats, spec.bits, gs, spec.symmetric, spec.lowrank_rank)
        r = spec.lowrank_rank
        if r and stats is None:  # no calibration: the plain SVD of the error (QuantLinear's own)
            return QuantLinear.from_linear(linear, spec.bits, gs, spec.symmetric, lowrank_rank=r)
        layer = QuantLinear.from_linear(linear, spec.bits, gs, spec.symmetric, lowrank_rank=r)
        if r:
            from .svd_llm import fit_correction

            w_hat = dequantize(layer.qweight, layer.scales, layer.zeros, spec.bits, gs)
            layer_stats, target = awq if awq is not None else (stats, linear.weight)
            fit_correction(layer, target, w_hat, layer_stats)
        return layer
    if spec.kind == "sparse":
        if method == "wanda":
            from .wanda import wanda_layer

            return wanda_layer(linear, stats, spec.bits, gs)
        if method == "sparsegpt":
            from .sparsegpt import sparsegpt_layer

            return sparsegpt_layer(linear, stats, spec.bits, gs)
        return Sparse24Linear.from_linear(linear, prune=True, bits=spec.bits, group_size=gs)
    if method == "svd-llm":
        from .svd_llm import svd_llm_layer

        return svd_llm_layer(linear, stats, spec.ratio)
    if method == "asvd":
        return LowRankLinear.from_linear(linear, param_ratio=spec.ratio, method="asvd", calib=stats.mean_abs)
    return LowRankLinear.from_linear(linear, param_ratio=spec.ratio, method="svd")


def _compress_group(root: nn.Module, prefix: str, plan: dict, stats: dict | None, done: set, warned: set):
    """Compresses the planned linears under ``root`` (full names ``prefix.<relative>``)."""
    rel = {}
    for name, m in root.named_modules():
        full = f"{prefix}.{name}" if prefix and name else (prefix or name)
        if full in plan and full not in done and type(m) is nn.Linear:
            rel[name] = full
    awq_info = {}
    awq_specs = {}
    for name, full in rel.items():
        spec, method = plan[full]
        if method == "awq":
            gs = fit_group_size(root.get_submodule(name).in_features, spec, full, warned)
            awq_specs[name] = (spec.bits, gs, spec.symmetric)
    if awq_specs and stats is not None:
        from .awq import awq_prepare

        try:
            awq_info = awq_prepare(root, stats, awq_specs)
        except ValueError as e:
            raise ValueError(f"slimops.compress: AWQ under {prefix or 'the model'!r}: {e}") from None
    for name, full in rel.items():
        spec, method = plan[full]
        parent_name, _, child = name.rpartition(".")
        parent = root.get_submodule(parent_name) if parent_name else root
        st = awq_info[name][0] if name in awq_info else (stats.get(name) if stats is not None else None)
        try:
            layer = _build(getattr(parent, child), spec, method, st, full, awq_info.get(name), warned)
        except ValueError as e:
            raise ValueError(f"slimops.compress: layer {full!r}: {e}") from None
        setattr(parent, child, layer)
        done.add(full)


def compress(model: nn.Module, recipe="int8", method: str | None = None, calib=None, *, skip=("lm_head",),
             progress: bool = True, tokenizer=None) -> nn.Module:
    """Replace every ``nn.Linear`` in ``model`` not named in ``skip`` by its
    compressed counterpart, in place, and return ``model``.

    ``recipe``: ``"int8"``/``"int4[-g<gs>][-asym][+lr<r>]"`` (QuantLinear),
    ``"2:4"``/``"int4+2:4[-g<gs>]"`` (Sparse24Linear), ``"lowrank:<ratio>"``
    (LowRankLinear), or a :class:`slimops.Recipe` with per-module overrides.

    ``method``: for quantisation ``"rtn"`` (default), ``"gptq"``, ``"awq"``;
    for 2:4 ``"magnitude"`` (default), ``"wanda"``, ``"sparsegpt"``; for
    low-rank ``"svd"`` (default), ``"asvd"``, ``"svd-llm"``. All but the
    defaults need ``calib``: a list of token-id tensors (``[T]`` or
    ``[B, T]``), or of texts with ``tokenizer=``, for a decoder model; for any
    other module, a list of inputs for its forward. A decoder model
    (``model.model.layers`` and the like) is calibrated block by block, each
    block on the outputs of the compressed blocks before it; any other module
    from whole forwards. With ``calib``, an ``+lr<r>`` correction is fitted to
    the quantisation error on the calibration inputs (whitened SVD) rather
    than on the weights.

    A group size that does not divide a layer's in_features becomes the
    largest smaller valid one that does, with a warning (int4 g128 on K = 576:
    64).
    """
    if isinstance(skip, str):
        skip = (skip,)
    if isinstance(recipe, Recipe):
        if method is not None:
            raise ValueError("slimops.compress: with a slimops.Recipe, give the method in the Recipe, not as method=")
    else:
        recipe = Recipe(recipe, method)
    calibrated = sorted(recipe.methods() & CALIBRATED)
    if calibrated and calib is None:
        raise ValueError(
            f"slimops.compress: method {', '.join(map(repr, calibrated))} needs calibration data: pass calib=, "
            "a list of token-id tensors (or texts with tokenizer=), or for a plain module a list of its inputs"
        )
    plan = _targets(model, recipe, skip)
    done, warned = set(), set()
    # Calibration runs only for what uses it: a calibrated method, or the fit of a +lr correction.
    uses_calib = calibrated or any(spec.kind == "quant" and spec.lowrank_rank for spec, _ in plan.values())
    if calib is None or not uses_calib:
        _compress_group(model, "", plan, None, done, warned)
        return model
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = None
    calib = cal.prepare_calib(calib, tokenizer, device)
    group = lambda root, prefix, stats: _compress_group(root, prefix, plan, stats, done, warned)  # noqa: E731
    was_training = model.training
    model.eval()
    try:
        if cal.find_blocks(model) is not None:
            cal.calibrate_blocks(model, calib, group, progress)
        if any(name not in done for name in plan):
            cal.calibrate_whole(model, calib, group)
    finally:
        model.train(was_training)
    return model
