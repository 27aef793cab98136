"""Truncated-SVD factorisation shared by LowRankLinear and QuantLinear's
low-rank error correction."""

import torch


def low_rank_factors(w: torch.Tensor, rank: int, scale: torch.Tensor | None = None):
    """``(U [N, rank], V [rank, K])`` with ``U @ V`` the best rank-``rank``
    approximation of ``w`` (Frobenius norm), or, given a per-input-channel
    ``scale`` [K], of ``w`` on inputs whose channel k has magnitude ~scale_k
    (ASVD: factor ``w diag(scale)``, then fold ``diag(scale)^-1`` into V).

    Computed in float64 on CPU, where it costs little and makes the
    truncation optimal up to rounding; float32 on GPUs, many of which run
    float64 at a small fraction of their float32 rate.
    """
    work = torch.float64 if w.device.type == "cpu" else torch.float32
    w = w.detach().to(work)
    if scale is not None:
        w = w * scale.to(w)
    u_full, s, vh = torch.linalg.svd(w, full_matrices=False)
    # Split sqrt(S) evenly between the factors so neither has a much larger
    # range than the other: that matters once they are cast to bf16/fp16.
    root = s[:rank].sqrt()
    u = u_full[:, :rank] * root
    v = root[:, None] * vh[:rank]
    if scale is not None:
        v = v / scale.to(v)
    return u, v
