"""SparseGPT (Frantar & Alistarh 2023) for 2:4: in blocks of 128 columns, each
group of 4 columns keeps the 2 weights of each row with the largest OBS
saliency ``w^2 / [H^-1]_kk^2``, and every pruned weight's error is spread over
the columns not yet visited through the inverse Hessian of the layer's inputs
(dampened by 1% of its mean diagonal), later blocks lazily once per block."""

import torch
from torch import nn

from ..nn.sparse24_linear import Sparse24Linear
from .gptq import damped_inverse_cholesky


def sparsegpt_prune(W: torch.Tensor, H: torch.Tensor, blocksize: int = 128, percdamp: float = 0.01,
                    prunen: int = 2, prunem: int = 4) -> torch.Tensor:
    """The 2:4-pruned, error-compensated ``W [N, K]`` (in W's dtype)."""
    n, k = W.shape
    work = torch.float64 if W.device.type == "cpu" else torch.float32
    dtype = W.dtype
    W = W.detach().to(work).clone()
    Hinv = damped_inverse_cholesky(H.to(work), W, percdamp)
    blocksize = max(prunem, blocksize - blocksize % prunem)
    for i1 in range(0, k, blocksize):
        i2 = min(i1 + blocksize, k)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        d = Hinv1.diagonal()
        mask1 = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(i2 - i1):
            if i % prunem == 0:
                sal = W1[:, i:i + prunem] ** 2 / d[i:i + prunem][None, :] ** 2
                drop = torch.topk(sal, prunen, dim=1, largest=False)[1]
                mask1.scatter_(1, i + drop, True)
            w = W1[:, i]
            q = torch.where(mask1[:, i], torch.zeros_like(w), w)
            err = (w - q) / d[i]
            W1[:, i:] -= err[:, None] * Hinv1[i, i:][None, :]
            W1[:, i] = q
            Err1[:, i] = err
        W[:, i1:i2] = W1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return W.to(dtype)


def sparsegpt_layer(linear: nn.Linear, stats, bits: int = 16, group_size: int = 128) -> Sparse24Linear:
    w = sparsegpt_prune(linear.weight, stats.hessian())
    pruned = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None,
                       device=w.device, dtype=w.dtype)
    with torch.no_grad():
        pruned.weight.copy_(w)
        if linear.bias is not None:
            pruned.bias.copy_(linear.bias)
    return Sparse24Linear.from_linear(pruned, prune=False, bits=bits, group_size=group_size)
