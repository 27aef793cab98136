"""AWQ (Lin et al. 2023): activation-aware scaling and clipping before
round-to-nearest quantisation.

Scales are *folded into the previous op*, so the compressed model is plain
QuantLinear layers (nothing extra runs at inference, and save/load works as
for RTN): for a group of linears reading the same input (q/k/v after the
attention norm, gate/up after the MLP norm, down after up, o after v, or two
linears of an nn.Sequential with only ReLU-like ops between them), input
channel k is multiplied by a scale s_k in the linears' weights and divided out
of the previous op's weight (and bias).

Scale candidates, as AutoAWQ: ``s = mean|x|^alpha`` and ("duo scaling")
``s = mean|x|^alpha / mean|w|^(1 - alpha)`` (|w| normalised by its group's
max, averaged over the group's rows), alpha on a grid of 20 in [0, 1). The
candidate kept has the smallest output error with the group's linears
*quantised*: for q/k/v the attention's output and for gate/up the MLP's
(replayed on the first INSPECT_SAMPLES calibration samples, as AutoAWQ's
"module to inspect"); for a lone linear (o, down) its own output error over
all calibration tokens, ``tr(E H E^T)`` (E the quantisation error of the
scaled weights mapped back, H = mean x^T x).

o_proj under grouped-query attention: v_proj's outputs are shared by several
query heads, so o_proj's scales are tied across those heads (one scale per
v_proj output channel), which still folds exactly into v_proj's rows.

Then each linear's weights are clipped per (row, group) to the range ratio in
1.0, 0.95 .. 0.55 with the smallest output error on the calibration inputs:
first each group alone (its diagonal block of H, AutoAWQ's criterion), then
sweeps of coordinate descent over the groups with the *full* H, since the
errors of neighbouring groups of a row are correlated through the inputs. q/k
projections are clipped too (their own output error; AutoAWQ skips them only
for want of an objective). A linear with no foldable previous op gets the
clipping only.
"""

import torch
from torch import nn

from .gptq import grid_params
from ..formats.quantize import QRANGE

_HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Dropout)
# Choices checked on held-out pydoc text after the calibration samples (never the evaluation
# windows), SmolLM2-135M int4 g64: clipping q/k too did better than not (+15.0% vs +16.7% ppl);
# a finer clip grid (40) with 3 sweeps fitted the calibration set closer but did worse (+16.9%).
N_GRID = 20  # alpha grid of the scale search
CLIP_GRID = 20  # clip ratios 1 - i / CLIP_GRID down to 1 - max_shrink
CLIP_SWEEPS = 2  # coordinate-descent sweeps of the clip search over the full H
CLIP_QK = True
INSPECT_SAMPLES = 8  # calibration samples the block-output scale search replays (one forward each per candidate)


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


def _gqa_tie(module, v: nn.Module, o: nn.Module):
    """Index ``[o.in_features]`` of the v_proj output channel feeding each o_proj
    input under grouped-query attention (query head h reads kv head h // rep), or None."""
    attn = _get(module, "self_attn")
    hd = getattr(attn, "head_dim", None)
    if hd is None or o.in_features % v.out_features or v.out_features % hd:
        return None
    rep = o.in_features // v.out_features
    c = torch.arange(o.in_features)
    return (c // hd // rep) * hd + c % hd


def scale_groups(module: nn.Module):
    """``[(previous op, [consumer linear names], tie)]`` in ``module`` (names
    relative to it); ``tie`` maps each consumer input channel to the previous
    op's output channel when several share one (GQA), else None."""
    groups = []
    get = lambda name: _get(module, name)  # noqa: E731
    attn_norm, mlp_norm = get("input_layernorm"), get("post_attention_layernorm")
    qkv = [n for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj") if isinstance(get(n), nn.Linear)]
    if attn_norm is not None and qkv:
        groups.append((attn_norm, qkv, None))
    gate_up = [n for n in ("mlp.gate_proj", "mlp.up_proj") if isinstance(get(n), nn.Linear)]
    if mlp_norm is not None and gate_up:
        groups.append((mlp_norm, gate_up, None))
    up, down = get("mlp.up_proj"), get("mlp.down_proj")
    if isinstance(up, nn.Linear) and isinstance(down, nn.Linear) and up.out_features == down.in_features:
        groups.append((up, ["mlp.down_proj"], None))
    v, o = get("self_attn.v_proj"), get("self_attn.o_proj")
    if isinstance(v, nn.Linear) and isinstance(o, nn.Linear):
        if v.out_features == o.in_features:
            groups.append((v, ["self_attn.o_proj"], None))
        else:
            tie = _gqa_tie(module, v, o)
            if tie is not None:
                groups.append((v, ["self_attn.o_proj"], tie))
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
                groups.append((first, [f"{seq_name}.{children[j][0]}" if seq_name else children[j][0]], None))
    return groups


def _get(module, name):
    try:
        return module.get_submodule(name)
    except AttributeError:
        return None


def _pool(v: torch.Tensor, tie, size: int) -> torch.Tensor:
    """Mean of ``v [K]`` over the channels tied to each of ``size`` shared ones."""
    if tie is None:
        return v
    tie = tie.to(v.device)
    return torch.zeros(size, dtype=v.dtype, device=v.device).index_add_(0, tie, v) / torch.bincount(tie, minlength=size).to(v)


def _weight_mean(weights: list, specs: list) -> torch.Tensor:
    """AutoAWQ's per-input-channel weight magnitude: |w| over its group's max, averaged over all rows."""
    rows = []
    for w, (_, gs, _) in zip(weights, specs):
        n, k = w.shape
        g = k if gs == -1 else gs
        wg = w.float().abs().reshape(n, k // g, g)
        rows.append((wg / (wg.amax(-1, keepdim=True) + 1e-6)).reshape(n, k))
    return torch.cat(rows).mean(0)


def _out(module, args, kwargs):
    y = module(*args, **kwargs)
    return y[0] if isinstance(y, (tuple, list)) else y


class _ModuleError:
    """Squared error of ``parent``'s output over its recorded ``calls`` when the
    group's linears hold the given weights instead of their own."""

    def __init__(self, parent: nn.Module, lins: list, calls: list):
        self.parent, self.lins, self.calls = parent, lins, calls
        self.orig = [lin.weight.detach().clone() for lin in lins]
        self.ref = [_out(parent, a, k).float() for a, k in calls]

    def __call__(self, weights: list) -> float:
        try:
            for lin, w in zip(self.lins, weights):
                lin.weight.copy_(w)
            return sum((_out(self.parent, a, k).float() - r).pow(2).sum().item() for (a, k), r in zip(self.calls, self.ref))
        finally:
            for lin, w in zip(self.lins, self.orig):
                lin.weight.copy_(w)


@torch.no_grad()
def search_scale(weights: list, stats, specs: list, tie=None, size=None, module_error=None) -> torch.Tensor:
    """The per-input-channel scale s minimising the group's output error
    (``[size]`` shared channels when ``tie`` is given, else ``[K]``): the
    output of the parent module (``module_error``, a :class:`_ModuleError`)
    when given, else the sum of the linears' own output errors (through H)."""
    H = stats.hessian().float()
    size = size if tie is not None else H.shape[0]
    x_mean = _pool(stats.mean_abs.float(), tie, size)
    w_mean = _pool(_weight_mean(weights, specs), tie, size)
    ws = [w.float() for w in weights]
    best, best_s = None, torch.ones_like(x_mean)
    for duo in (False, True):
        for i in range(N_GRID):
            alpha = i / N_GRID
            s = x_mean.pow(alpha) / (w_mean.pow(1 - alpha) + 1e-4) if duo else x_mean.pow(alpha)
            s = s.clamp_min(1e-4)
            s = s / (s.max() * s.min()).sqrt()
            sf = s[tie.to(s.device)] if tie is not None else s
            # The scaled weights quantised and mapped back: what the folded layers compute on unscaled x.
            w_q = [fake_quant(w * sf, bits, gs, sym) / sf for w, (bits, gs, sym) in zip(ws, specs)]
            if module_error is not None:
                loss = module_error([w.to(w0) for w, w0 in zip(w_q, weights)])
            else:
                loss = sum(_output_error(w - q, H).item() for w, q in zip(ws, w_q))
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
def clip_weight(w: torch.Tensor, stats, bits: int, group_size: int, symmetric: bool, max_shrink: float = 0.5,
                sweeps: int | None = None):
    """``w`` clipped per (row, group) to the range ratio with the smallest
    output error ``tr(E H E^T)`` on inputs of second moment H = ``stats.hessian()``:
    started from each group's best on its diagonal block of H alone, then
    ``sweeps`` rounds of exact minimisation over one group at a time with
    the cross terms to the row's other groups (never increases the error)."""
    sweeps = CLIP_SWEEPS if sweeps is None else sweeps
    n, k = w.shape
    gs = k if group_size == -1 else group_size
    G = k // gs
    H = stats.hessian().float()
    Hg = torch.stack([H[g * gs:(g + 1) * gs, g * gs:(g + 1) * gs] for g in range(G)])  # [G, gs, gs]
    wf = w.float().reshape(n, G, gs)
    hi0, lo0 = wf.amax(-1, keepdim=True), wf.amin(-1, keepdim=True)
    amax = wf.abs().amax(-1, keepdim=True)
    clipped, errors = [], []
    for i in range(int(max_shrink * CLIP_GRID)):
        r = 1 - i / CLIP_GRID
        c = wf.clamp(-r * amax, r * amax) if symmetric else wf.clamp(r * lo0, r * hi0)
        clipped.append(c)
        errors.append(wf - fake_quant(c.reshape(n, k), bits, group_size, symmetric).reshape(n, G, gs))
    C, Ec = torch.stack(clipped), torch.stack(errors)  # [R, n, G, gs]
    EcH = torch.einsum("rngi,gij->rngj", Ec, Hg)
    diag = (EcH * Ec).sum(-1)  # [R, n, G]: each group's own error term
    choice = diag.argmin(0)  # [n, G]
    rows = torch.arange(n, device=w.device)
    E = torch.stack([Ec[choice[:, g], rows, g] for g in range(G)], 1)  # [n, G, gs]
    for _ in range(sweeps if G > 1 else 0):
        for g in range(G):
            sl = slice(g * gs, (g + 1) * gs)
            # cross[n] = sum over the row's other groups h of E_h H_hg
            cross = E.reshape(n, k) @ H[:, sl] - E[:, g] @ Hg[g]
            f = diag[:, :, g] + 2 * (Ec[:, :, g] * cross[None]).sum(-1)  # [R, n]
            choice[:, g] = f.argmin(0)
            E[:, g] = Ec[choice[:, g], rows, g]
    best = torch.stack([C[choice[:, g], rows, g] for g in range(G)], 1)
    return best.reshape(n, k).to(w.dtype)


@torch.no_grad()
def awq_prepare(module: nn.Module, stats: dict, specs: dict) -> dict:
    """Scales (folded into previous ops) and clips, in place, the AWQ-targeted
    linears of ``module``: ``specs`` {relative name: (bits, group_size, symmetric)}.
    Returns {name: (stats of the layer's new inputs, its scaled unclipped weight)}
    for the quantisation (and low-rank correction) that follows."""
    calls = getattr(stats, "module_inputs", {})
    stats = dict(stats)
    for prev, names, tie in scale_groups(module):
        if not names or any(n not in specs or n not in stats for n in names):
            continue
        lins = [module.get_submodule(n) for n in names]
        size = prev.weight.shape[0] if tie is not None else None
        # Several linears under one child of the block (q/k/v in self_attn, gate/up in mlp): scored
        # on that child's output, as AutoAWQ, which weighs q/k by their effect through the softmax
        # and gate/up through the activation and down_proj; one linear: its own output error.
        parent = names[0].rpartition(".")[0]
        err = None
        if len(names) > 1 and parent and calls.get(parent) and all(n.rpartition(".")[0] == parent for n in names):
            err = _ModuleError(module.get_submodule(parent), lins, calls[parent][:INSPECT_SAMPLES])
        s = search_scale([lin.weight for lin in lins], stats[names[0]], [specs[n] for n in names], tie, size, err)
        _fold_into_previous(prev, s)
        sf = s[tie.to(s.device)] if tie is not None else s
        for n, lin in zip(names, lins):
            lin.weight.mul_(sf.to(lin.weight)[None, :])
            stats[n] = stats[n].scaled(sf)
    out = {}
    for n, spec in specs.items():
        if n not in stats:
            continue
        lin = module.get_submodule(n)
        target = lin.weight.detach().clone()
        if CLIP_QK or not n.endswith(("q_proj", "k_proj")):
            lin.weight.copy_(clip_weight(lin.weight, stats[n], *spec))
        out[n] = (stats[n], target)
    return out
