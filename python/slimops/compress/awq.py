"""AWQ (Lin et al. 2023): activation-aware scaling and clipping before
round-to-nearest quantisation.

Scales are *folded into the previous op*, so the compressed model is plain
QuantLinear layers (nothing extra runs at inference, and save/load works as
for RTN): for a group of linears reading the same input (q/k/v after the
attention norm, gate/up after the MLP norm, down after up, o after v when no
grouped-query attention, or two linears of an nn.Sequential with only
ReLU-like ops between them), input channel k is multiplied by
``s_k = mean|x_k|^alpha`` (normalised) in the linears' weights and divided out
of the previous op's weight (and bias). alpha is searched over a grid of 20
values in [0, 1) for the smallest output error ``sum tr(E H E^T)`` (E the
quantisation error of the scaled weights mapped back, H = mean x^T x of the
calibration inputs), which equals the mean squared output error over the
calibration tokens. Then each linear's weights are clipped per group (and
row) to the ratio in 1.0, 0.95 .. 0.55 of their range with the smallest output
error, except q/k projections (as AutoAWQ). A linear with no foldable
previous op gets the clipping only.
"""

import torch
from torch import nn

from .gptq import grid_params
from ..formats.quantize import QRANGE

_HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Dropout)
N_GRID = 20


def fake_quant(w: torch.Tensor, bits: int, group_size: int, symmetric: bool) -> torch.Tensor:
    """RTN dequantised ``w [N, K]`` on slimops' grid, computed in w's dtype."""
    n, k = w.shape
    gs = k if group_size == -1 else group_size
    wg = w.reshape(n, k // gs, gs)
    scale, zero = grid_params(wg, bits, symmetric)
    lo, hi = QRANGE[bits]
    q = torch.round(wg / scale[..., None] + zero[..., None]).clamp_(lo, hi)
    return ((q - zero[..., None]) * scale[..., None]).reshape(n, k)


def _output_error(E: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    return ((E @ H) * E).sum()


def scale_groups(module: nn.Module):
    """``[(previous op, [consumer linear names])]`` in ``module`` (names relative to it)."""
    groups = []
    get = lambda name: _get(module, name)  # noqa: E731
    attn_norm, mlp_norm = get("input_layernorm"), get("post_attention_layernorm")
    qkv = [n for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj") if isinstance(get(n), nn.Linear)]
    if attn_norm is not None and qkv:
        groups.append((attn_norm, qkv))
    gate_up = [n for n in ("mlp.gate_proj", "mlp.up_proj") if isinstance(get(n), nn.Linear)]
    if mlp_norm is not None and gate_up:
        groups.append((mlp_norm, gate_up))
    up, down = get("mlp.up_proj"), get("mlp.down_proj")
    if isinstance(up, nn.Linear) and isinstance(down, nn.Linear) and up.out_features == down.in_features:
        groups.append((up, ["mlp.down_proj"]))
    v, o = get("self_attn.v_proj"), get("self_attn.o_proj")
    if isinstance(v, nn.Linear) and isinstance(o, nn.Linear) and v.out_features == o.in_features:
        groups.append((v, ["self_attn.o_proj"]))
    for seq_name, seq in module.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        children = list(seq.named_children())
        for i, (_, first) in enumerate(children):
            if type(first) is not nn.Linear:
                continue
            j = i + 1
            while j < len(children) and isinstance(children[j][1], _HOMOGENEOUS):
                j += 1
            if j < len(children) and type(children[j][1]) is nn.Linear and children[j][1].in_features == first.out_features:
                groups.append((first, [f"{seq_name}.{children[j][0]}" if seq_name else children[j][0]]))
    return groups


def _get(module, name):
    try:
        return module.get_submodule(name)
    except AttributeError:
        return None


@torch.no_grad()
def search_scale(weights: list, stats, specs: list) -> torch.Tensor:
    """The per-input-channel scale s [K] minimising the group's output error."""
    H = stats.hessian().float()
    x_mean = stats.mean_abs.float()
    best, best_s = None, torch.ones_like(x_mean)
    for i in range(N_GRID):
        alpha = i / N_GRID
        s = x_mean.pow(alpha).clamp_min(1e-4)
        s = s / (s.max() * s.min()).sqrt()
        loss = 0.0
        for w, (bits, gs, sym) in zip(weights, specs):
            w = w.float()
            E = w - fake_quant(w * s, bits, gs, sym) / s
            loss += _output_error(E, H).item()
        if best is None or loss < best:
            best, best_s = loss, s
    return best_s


def _fold_into_previous(prev: nn.Module, s: torch.Tensor):
    if isinstance(prev, nn.Linear):
        prev.weight.div_(s.to(prev.weight)[:, None])
    else:
        prev.weight.div_(s.to(prev.weight))
    if getattr(prev, "bias", None) is not None:
        prev.bias.div_(s.to(prev.bias))


@torch.no_grad()
def clip_weight(w: torch.Tensor, stats, bits: int, group_size: int, symmetric: bool, max_shrink: float = 0.5):
    """``w`` clipped per (row, group) to the range ratio with the smallest
    output error on inputs of second moment ``stats.hessian()`` (the groups'
    diagonal blocks of H)."""
    n, k = w.shape
    gs = k if group_size == -1 else group_size
    G = k // gs
    H = stats.hessian().float()
    Hg = torch.stack([H[g * gs:(g + 1) * gs, g * gs:(g + 1) * gs] for g in range(G)])  # [G, gs, gs]
    wf = w.float().reshape(n, G, gs)
    hi0, lo0 = wf.amax(-1, keepdim=True), wf.amin(-1, keepdim=True)
    amax = wf.abs().amax(-1, keepdim=True)
    best_err = torch.full((n, G), float("inf"), device=w.device)
    best = wf.clone()
    for i in range(int(max_shrink * N_GRID)):
        r = 1 - i / N_GRID
        c = wf.clamp(-r * amax, r * amax) if symmetric else wf.clamp(r * lo0, r * hi0)
        E = wf - fake_quant(c.reshape(n, k), bits, group_size, symmetric).reshape(n, G, gs)
        err = torch.einsum("ngi,gij,ngj->ng", E, Hg, E)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = torch.where(better[..., None], c, best)
    return best.reshape(n, k).to(w.dtype)


@torch.no_grad()
def awq_prepare(module: nn.Module, stats: dict, specs: dict) -> dict:
    """Scales (folded into previous ops) and clips, in place, the AWQ-targeted
    linears of ``module``: ``specs`` {relative name: (bits, group_size, symmetric)}.
    Returns {name: (stats of the layer's new inputs, its scaled unclipped weight)}
    for the quantisation (and low-rank correction) that follows."""
    stats = dict(stats)
    for prev, names in scale_groups(module):
        if not names or any(n not in specs or n not in stats for n in names):
            continue
        lins = [module.get_submodule(n) for n in names]
        s = search_scale([lin.weight for lin in lins], stats[names[0]], [specs[n] for n in names])
        _fold_into_previous(prev, s)
        for n, lin in zip(names, lins):
            lin.weight.mul_(s.to(lin.weight)[None, :])
            stats[n] = stats[n].scaled(s)
    out = {}
    for n, spec in specs.items():
        if n not in stats:
            continue
        lin = module.get_submodule(n)
        target = lin.weight.detach().clone()
        if not n.endswith(("q_proj", "k_proj")):
            with torch.no_grad():
                lin.weight.copy_(clip_weight(lin.weight, stats[n], *spec))
        out[n] = (stats[n], target)
    return out
