"""Calibration: the input statistics of every nn.Linear, gathered block by block.

For a decoder model (``model.model.layers`` and the like) the inputs of the
first block are captured once, then each block in turn runs on them with hooks
collecting its linears' input statistics, is compressed, and runs again to give
the next block its inputs, so each block is calibrated on the outputs of the
already-compressed blocks before it (as GPTQ and SparseGPT do) and memory holds
one block's activations at a time. Any other nn.Module is calibrated from
plain forwards over the calibration inputs, all linears at once.
"""

import torch
from torch import nn


class InputStats:
    """Running statistics of one layer's inputs ``x [.., K]``: ``H = sum x^T x``
    (GPTQ, SparseGPT, SVD-LLM; Wanda's ``||x_k||_2 = sqrt(H_kk)``) and
    ``sum |x_k|`` (AWQ, ASVD), over ``count`` rows."""

    def __init__(self, k: int, device):
        # float64 on the CPU: H sums many rows, and its Cholesky factor is taken later.
        dt = torch.float64 if torch.device(device).type == "cpu" else torch.float32
        self.H = torch.zeros(k, k, dtype=dt, device=device)
        self.abs_sum = torch.zeros(k, dtype=dt, device=device)
        self.count = 0

    def add(self, x: torch.Tensor):
        x = x.detach().reshape(-1, x.shape[-1]).to(self.H.dtype)
        self.H.addmm_(x.T, x)
        self.abs_sum += x.abs().sum(0)
        self.count += x.shape[0]

    @property
    def mean_abs(self) -> torch.Tensor:
        return self.abs_sum / max(self.count, 1)

    @property
    def col_norm(self) -> torch.Tensor:
        return self.H.diagonal().clamp_min(0).sqrt()

    def scaled(self, s: torch.Tensor) -> "InputStats":
        """The statistics of ``x / s`` (inputs after AWQ folds ``1/s`` into the op before)."""
        out = InputStats.__new__(InputStats)
        s = s.to(self.H)
        out.H = self.H / (s[:, None] * s[None, :])
        out.abs_sum = self.abs_sum / s
        out.count = self.count
        return out

    def hessian(self) -> torch.Tensor:
        """``H / count``: the mean of x^T x, the scale GPTQ's dampening is relative to."""
        return self.H / max(self.count, 1)


def _record(stats: dict, name: str, k: int, device):
    def hook(module, args):
        x = args[0]
        if name not in stats:
            stats[name] = InputStats(k, device)
        stats[name].add(x)
    return hook


class BlockStats(dict):
    """``{linear name: InputStats}`` of one block, plus ``module_inputs``:
    ``{child name: [(args, kwargs)]}``, the calls of the block's children that
    hold linears (self_attn, mlp) over the calibration samples, so that AWQ can
    score q/k/v scales on the attention's output and gate/up on the MLP's (as
    AutoAWQ does) rather than on each linear's own output."""

    module_inputs: dict = {}


def _record_call(calls: list):
    def hook(module, args, kwargs):
        calls.append((tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args), kwargs))
    return hook


def collect_stats(linears: dict, run, children: dict | None = None) -> dict:
    """``{name: InputStats}`` of ``linears`` ({name: nn.Linear}) over what ``run()``
    feeds them; with ``children`` ({name: module}) a :class:`BlockStats` that
    also holds their calls."""
    stats, handles = BlockStats(), []
    stats.module_inputs = {n: [] for n in children or {}}
    try:
        for name, lin in linears.items():
            handles.append(lin.register_forward_pre_hook(_record(stats, name, lin.in_features, lin.weight.device)))
        for name, child in (children or {}).items():
            handles.append(child.register_forward_pre_hook(_record_call(stats.module_inputs[name]), with_kwargs=True))
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return stats


_BLOCK_PATHS = ("model.layers", "model.model.layers", "layers", "transformer.h", "model.decoder.layers",
                "gpt_neox.layers", "transformer.blocks")


def find_blocks(model: nn.Module):
    """The ``nn.ModuleList`` of transformer blocks of a decoder model, or None."""
    for path in _BLOCK_PATHS:
        try:
            m = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(m, nn.ModuleList) and len(m) and any(isinstance(x, nn.Linear) for x in m[0].modules()):
            return path, m
    return None


def prepare_calib(calib, tokenizer=None, device=None) -> list:
    """A list of calibration inputs: token-id tensors ``[T]`` / ``[B, T]`` (or
    texts with ``tokenizer``), or any tensors a plain module takes."""
    if calib is None:
        return []
    if isinstance(calib, (torch.Tensor, str)):
        calib = [calib]
    out = []
    for item in calib:
        if isinstance(item, str):
            if tokenizer is None:
                raise ValueError("slimops.compress: calib holds texts: pass tokenizer= too (or token-id tensors)")
            item = tokenizer(item, return_tensors="pt")["input_ids"]
        if not isinstance(item, torch.Tensor):
            raise ValueError(f"slimops.compress: calib must be tensors (or texts with a tokenizer), got {type(item).__name__}")
        if not item.is_floating_point() and item.dim() == 1:
            item = item[None]
        out.append(item.to(device) if device is not None else item)
    if not out:
        raise ValueError("slimops.compress: calib is empty")
    return out


class _Stop(Exception):
    pass


def capture_block_inputs(model: nn.Module, first_block: nn.Module, calib: list) -> list:
    """``[(args, kwargs)]`` the first block receives for each calibration sample."""
    captured = []

    def hook(module, args, kwargs):
        captured.append((args, kwargs))
        raise _Stop

    h = first_block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            for ids in calib:
                try:
                    if ids.is_floating_point():
                        model(ids)
                    else:
                        model(input_ids=ids, use_cache=False)
                except _Stop:
                    pass
    finally:
        h.remove()
    if len(captured) != len(calib):
        raise RuntimeError("slimops.compress: the model's forward never reached its first block during calibration")
    return captured


def run_block(block: nn.Module, inputs: list) -> list:
    """The block's outputs for each captured ``(args, kwargs)``, as the next block's inputs."""
    outs = []
    with torch.no_grad():
        for args, kwargs in inputs:
            y = block(*args, **kwargs)
            if isinstance(y, (tuple, list)):
                y = y[0]
            outs.append(((y,) + tuple(args[1:]), kwargs))
    return outs


def calibrate_blocks(model, calib, compress_group, progress: bool):
    """Sequential block-wise calibration of a decoder model: for each block,
    ``compress_group(block, prefix, stats)`` is called with the input
    statistics of the block's linears (names relative to the block)."""
    path, blocks = find_blocks(model)
    inputs = capture_block_inputs(model, blocks[0], calib)
    it = range(len(blocks))
    if progress:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # progress bars are a nicety, not a dependency
            pass
        else:
            it = tqdm(it, desc="slimops.compress", unit="block")
    for i in it:
        block = blocks[i]
        linears = {n: m for n, m in block.named_modules() if type(m) is nn.Linear}
        children = {n: c for n, c in block.named_children()
                    if not isinstance(c, nn.Linear) and any(type(m) is nn.Linear for m in c.modules())}
        stats = collect_stats(linears, lambda: run_block(block, inputs), children)
        compress_group(block, f"{path}.{i}", stats)
        if i + 1 < len(blocks):
            inputs = run_block(block, inputs)
    return model


def calibrate_whole(model, calib, compress_group):
    """One pass over ``calib`` collecting the statistics of every linear, then
    ``compress_group(model, "", stats)``."""
    linears = {n: m for n, m in model.named_modules() if type(m) is nn.Linear}

    def run():
        for x in calib:
            model(x) if x.is_floating_point() else model(input_ids=x)

    stats = collect_stats(linears, run)
    compress_group(model, "", stats)
    return model
