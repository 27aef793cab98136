"""Whitened truncated SVD (SVD-LLM, Wang et al. 2024): the rank-r ``W'``
minimising the error on the layer's outputs ``||(W - W') X^T||_F`` over the
calibration inputs X, not on the weights.

With ``X^T X = L L^T`` (Cholesky), ``||(W - W') X^T|| = ||(W - W') L||``, so
the best W' is the truncated SVD of ``W L`` mapped back by ``L^-1``. Also fits
QuantLinear's low-rank correction of the quantisation error the same way.
"""

import torch
from torch import nn

from ..nn.lowrank_linear import LowRankLinear, _choose_rank


def _cholesky(H: torch.Tensor, damp: float = 1e-2):
    """Lower Cholesky factor of ``H + damp * mean(diag H) I`` (more dampening if needed)."""
    H = H.to(torch.float64 if H.device.type == "cpu" else torch.float32)
    eye = torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
    base = H.diagonal().mean().clamp_min(1e-12)
    for attempt in range(8):
        L, info = torch.linalg.cholesky_ex(H + damp * (10 ** attempt) * base * eye)
        if info == 0:
            return L
    raise ValueError("the calibration Hessian is not positive definite even after dampening")


def whitened_factors(w: torch.Tensor, rank: int, H: torch.Tensor, damp: float = 1e-2):
    """``(U [N, r], V [r, K])`` with ``U @ V`` the best rank-r fit of ``w`` on
    inputs with second moment ``H [K, K]``."""
    L = _cholesky(H, damp)
    w = w.detach().to(L.dtype)
    u_full, s, vh = torch.linalg.svd(w @ L, full_matrices=False)
    root = s[:rank].sqrt()
    u = u_full[:, :rank] * root
    # V = sqrt(S) Vh L^-1, i.e. V L = sqrt(S) Vh: solve with L^T on the right.
    v = torch.linalg.solve_triangular(L, (root[:, None] * vh[:rank]), upper=False, left=False)
    return u, v


def svd_llm_layer(linear: nn.Linear, stats, param_ratio: float) -> LowRankLinear:
    w = linear.weight
    n, k = w.shape
    r = _choose_rank(n, k, None, param_ratio)
    u, v = whitened_factors(w, r, stats.hessian())
    layer = LowRankLinear(k, n, r, bias=linear.bias is not None, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        layer.U.copy_(u)
        layer.V.copy_(v)
        if linear.bias is not None:
            layer.bias.copy_(linear.bias.detach())
    return layer


def fit_correction(layer, w: torch.Tensor, w_hat: torch.Tensor, stats=None):
    """Sets a QuantLinear's ``lr_a @ lr_b`` to the best rank-r fit of the
    quantisation error ``w - w_hat`` (w_hat in the original column order): on
    the calibration inputs when ``stats`` is given, else in Frobenius norm."""
    from ..nn.factorize import low_rank_factors

    err = w.detach().double() - w_hat.double()
    r = layer.lowrank_rank
    a, b = whitened_factors(err, r, stats.hessian()) if stats is not None else low_rank_factors(err, r)
    layer.lr_a.copy_(a)
    layer.lr_b.copy_(b)
