"""GPTQ (Frantar et al. 2022): quantise a weight column by column, each
column's rounding error spread over the columns not yet quantised through the
inverse Hessian ``(X^T X)^-1`` of the layer's inputs.

As in the reference implementation: act-order (columns in decreasing order of
``H_kk``), dampening by 1% of the mean diagonal, blocks of 128 columns with
the updates to later blocks applied lazily once per block. Groups of
``group_size`` are contiguous in the processing order and their scales are
taken when the group is reached (from the already-updated weights), so the
layer stores its columns permuted, with QuantLinear's ``perm``
(``act_order=True``): column j of the packed weight multiplies input ``perm[j]``.
The grid is exactly slimops' RTN format (:func:`slimops.formats.quantize`).
"""

import torch
from torch import nn

from ..formats.int4 import pack_int4
from ..formats.quantize import QRANGE, SYMMETRIC_ZERO
from ..nn.quant_linear import QuantLinear


def grid_params(w: torch.Tensor, bits: int, symmetric: bool):
    """``(scale, zero)`` of each row of ``w [N, G]`` as slimops.formats.quantize sets them."""
    lo, hi = QRANGE[bits]
    if symmetric:
        half = 127.0 if bits == 8 else 7.5
        absmax = w.abs().amax(dim=-1)
        scale = torch.where(absmax > 0, absmax / half, torch.ones_like(absmax))
        zero = torch.full_like(scale, SYMMETRIC_ZERO[bits])
    else:
        wmin, wmax = w.amin(dim=-1).clamp(max=0), w.amax(dim=-1).clamp(min=0)
        span = wmax - wmin
        scale = torch.where(span > 0, span / (hi - lo), torch.ones_like(span))
        zero = (lo - torch.round(wmin / scale)).clamp(lo, hi)
    return scale, zero


def search_params(w: torch.Tensor, bits: int, symmetric: bool, grid: int = 20, max_shrink: float = 0.5, norm: float = 2.4):
    """``(scale, zero)`` per row of ``w [N, G]``: the range shrunk by the factor
    in 1, 1 - 1/grid, .. 1 - max_shrink that minimises ``sum |w - q(w)|^norm``
    (the reference GPTQ quantiser's ``mse`` option); the grid is still slimops'."""
    best_s, best_z = grid_params(w, bits, symmetric)
    best_err = None
    for i in range(int(max_shrink * grid) + 1):
        r = 1 - i / grid
        s, z = grid_params(w * r, bits, symmetric)
        err = ((_round(w, s[:, None], z[:, None], bits) - z[:, None]) * s[:, None] - w).abs().pow(norm).sum(1)
        if best_err is None:
            best_err = err
            continue
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_s, best_z = torch.where(better, s, best_s), torch.where(better, z, best_z)
    return best_s, best_z


def _round(w, scale, zero, bits):
    lo, hi = QRANGE[bits]
    return torch.round(w / scale + zero).clamp_(lo, hi)


def damped_inverse_cholesky(H: torch.Tensor, W: torch.Tensor, percdamp: float):
    """Upper Cholesky factor of ``(H + damp I)^-1``; dead inputs (H_kk = 0) get
    H_kk = 1 and a zero weight column. W is modified in place."""
    H = H.clone()
    dead = H.diagonal() == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * H.diagonal().mean()
    for attempt in range(6):
        try:
            Hd = H + damp * (10 ** attempt) * torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
            L = torch.linalg.cholesky(Hd)
            Hinv = torch.cholesky_inverse(L)
            return torch.linalg.cholesky(Hinv, upper=True)
        except torch.linalg.LinAlgError:
            continue
    raise ValueError("the calibration Hessian is not positive definite even after dampening")


def gptq_quantize(W: torch.Tensor, H: torch.Tensor, bits: int, group_size: int, symmetric: bool,
                  blocksize: int = 128, percdamp: float = 0.01, act_order: bool = True, mse: bool = True):
    """GPTQ of ``W [N, K]`` for the mean input Hessian ``H [K, K]``. Returns
    ``(q [N, K] integers, scales [N, G], zeros [N, G], perm [K] or None, W_hat [N, K])``,
    q/scales/zeros in the permuted column order, W_hat (the dequantised
    weight) in the original order. ``mse``: each group's range is shrunk to
    the factor minimising its rounding error (the reference implementation's
    ``mse`` quantiser option) rather than taken from min/max."""
    n, k = W.shape
    work = torch.float64 if W.device.type == "cpu" else torch.float32
    W = W.detach().to(work).clone()
    H = H.to(work)
    perm = None
    if act_order:
        perm = torch.argsort(H.diagonal(), descending=True)
        W, H = W[:, perm], H[perm][:, perm]
    Hinv = damped_inverse_cholesky(H, W, percdamp)
    gs = k if group_size == -1 else group_size
    G = k // gs
    Q = torch.zeros_like(W)
    q_int = torch.zeros(n, k, dtype=torch.int16, device=W.device)
    scales = torch.zeros(n, G, dtype=work, device=W.device)
    zeros = torch.zeros(n, G, dtype=work, device=W.device)
    scale = zero = None
    for i1 in range(0, k, blocksize):
        i2 = min(i1 + blocksize, k)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if col % gs == 0:
                # The group's scale from its current (already updated) weights:
                # the columns of this block from i on, and those of later blocks.
                g_end = col + gs
                grp = torch.cat([W1[:, i:min(i2 - i1, g_end - i1)], W[:, i2:g_end]], dim=1) if g_end > i2 else W1[:, i:g_end - i1]
                scale, zero = (search_params if mse else grid_params)(grp, bits, symmetric)
                scales[:, col // gs], zeros[:, col // gs] = scale, zero
            w = W1[:, i]
            qi = _round(w, scale, zero, bits)
            q = (qi - zero) * scale
            q_int[:, col] = qi.to(torch.int16)
            Q[:, col] = q
            err = (w - q) / Hinv1[i, i]
            W1[:, i:] -= err[:, None] * Hinv1[i, i:][None, :]
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    W_hat = Q if perm is None else torch.empty_like(Q).index_copy_(1, perm, Q)
    return q_int, scales.float(), zeros.float(), perm, W_hat


def gptq_layer(linear: nn.Linear, stats, bits: int, group_size: int, symmetric: bool, lowrank_rank: int = 0,
               act_order: bool = True) -> QuantLinear:
    """A QuantLinear holding GPTQ's quantisation of ``linear`` for the inputs ``stats``."""
    w = linear.weight
    q, scales, zeros, perm, w_hat = gptq_quantize(w, stats.hessian(), bits, group_size, symmetric, act_order=act_order)
    layer = QuantLinear(
        linear.in_features, linear.out_features, bias=linear.bias is not None, bits=bits, group_size=group_size,
        symmetric=symmetric, act_order=perm is not None, lowrank_rank=lowrank_rank, device=w.device, dtype=w.dtype,
    )
    layer.qweight.copy_(q.to(torch.int8) if bits == 8 else pack_int4(q.to(torch.uint8)))
    layer.scales.copy_(scales)
    if not symmetric:
        layer.zeros.copy_(zeros)
    if perm is not None:
        layer.perm.copy_(perm)
    if linear.bias is not None:
        layer.bias.copy_(linear.bias.detach())
    if lowrank_rank:
        from .svd_llm import fit_correction

        fit_correction(layer, w, w_hat, stats)
    return layer
