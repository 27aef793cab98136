"""Plain-PyTorch references of every slimops op: the ground truth of the tests.

Each computes in float32 from the dequantised weights and returns the op's
output dtype, so a test compares the kernel against exactly the function it
claims to compute.
"""

import torch

from .formats.quantize import dequantize


def wo_gemm(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    bits: int = 8,
    group_size: int = -1,
) -> torch.Tensor:
    """``x @ dequant(qweight)^T + bias`` in float32, returned in x's dtype."""
    w = dequantize(qweight.cpu(), scales.cpu(), None if zeros is None else zeros.cpu(), bits, group_size)
    b = None if bias is None else bias.to(torch.float32)
    return torch.nn.functional.linear(x.to(torch.float32), w.to(x.device), b).to(x.dtype)


def wo_gemm_lowrank(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    bias: torch.Tensor | None,
    lr_a: torch.Tensor,
    lr_b: torch.Tensor,
    bits: int = 4,
    group_size: int = 128,
) -> torch.Tensor:
    """``x @ (dequant(qweight) + lr_a @ lr_b)^T + bias`` in float32, returned
    in x's dtype."""
    w = dequantize(qweight.cpu(), scales.cpu(), None if zeros is None else zeros.cpu(), bits, group_size).to(x.device)
    w = w + lr_a.to(torch.float32) @ lr_b.to(torch.float32)
    b = None if bias is None else bias.to(torch.float32)
    return torch.nn.functional.linear(x.to(torch.float32), w, b).to(x.dtype)


def lowrank_linear(
    x: torch.Tensor, V: torch.Tensor, U: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``(x @ V^T) @ U^T + bias`` in float64 (the intermediate unrounded, as
    the fused kernels keep it in float32), returned in x's dtype."""
    t = x.to(torch.float64) @ V.to(torch.float64).T
    out = t @ U.to(torch.float64).T
    if bias is not None:
        out = out + bias.to(torch.float64)
    return out.to(x.dtype)


def quantize_kv_int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row int8 quantisation of the last dim, as the kv_attention kernels
    do on append: ``scale = max|x| / 127``, ``q = round_half_even(x / scale)``
    clamped to [-127, 127]; an all-zero row gets scale 0 and q 0."""
    x = x.to(torch.float32)
    # A tensor divisor: torch turns division by a Python float into a
    # multiply by its reciprocal on CUDA, one ulp off the IEEE max / 127 the
    # kernels compute.
    scale = x.abs().amax(dim=-1) / torch.tensor(127.0, device=x.device)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(x / safe.unsqueeze(-1)).clamp_(-127, 127)
    return q.to(torch.int8), scale


def _cache_rows(cache, b, positions, block_table):
    """Rows [len(positions), Hkv, D] of sequence b's cache (contiguous or paged)."""
    if block_table is None:
        return cache[b, positions]
    bs = cache.shape[1]
    return cache[block_table[b, positions // bs].long(), positions % bs]


def _write_cache_rows(cache, b, positions, rows, block_table):
    if block_table is None:
        cache[b, positions] = rows
    else:
        bs = cache.shape[1]
        cache[block_table[b, positions // bs].long(), positions % bs] = rows


def kv_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    cache_seqlens: torch.Tensor,
    k: torch.Tensor | None = None,
    v: torch.Tensor | None = None,
    *,
    softmax_scale: float | None = None,
    causal: bool = True,
    block_table: torch.Tensor | None = None,
    k_scale: torch.Tensor | None = None,
    v_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """Append ``k``/``v`` into the caches in place (int8 caches: quantised by
    :func:`quantize_kv_int8`, scales written) exactly as the op does, then
    attend in float32 over the (dequantised) cache; returns q's dtype. A query
    that sees no key (causal, short cache) gets zeros."""
    B, sq, hq, d = q.shape
    hkv = k_cache.shape[2]
    group = hq // hkv
    scale = d**-0.5 if softmax_scale is None else softmax_scale
    int8 = k_cache.dtype == torch.int8
    out = torch.zeros(B, sq, hq, d, dtype=torch.float32, device=q.device)
    for b in range(B):
        start = int(cache_seqlens[b])
        if k is not None:
            pos = torch.arange(start, start + sq, device=q.device)
            for cache, new, sc in ((k_cache, k, k_scale), (v_cache, v, v_scale)):
                if int8:
                    qv, s = quantize_kv_int8(new[b])
                    _write_cache_rows(cache, b, pos, qv, block_table)
                    _write_cache_rows(sc, b, pos, s, block_table)
                else:
                    _write_cache_rows(cache, b, pos, new[b].to(cache.dtype), block_table)
            total = start + sq
        else:
            total = start
        pos = torch.arange(total, device=q.device)
        kk = _cache_rows(k_cache, b, pos, block_table).to(torch.float32)  # [t, hkv, d]
        vv = _cache_rows(v_cache, b, pos, block_table).to(torch.float32)
        if int8:
            kk = kk * _cache_rows(k_scale, b, pos, block_table).unsqueeze(-1)
            vv = vv * _cache_rows(v_scale, b, pos, block_table).unsqueeze(-1)
        kk = kk.repeat_interleave(group, dim=1)  # [t, hq, d]
        vv = vv.repeat_interleave(group, dim=1)
        s = torch.einsum("ihd,jhd->hij", q[b].to(torch.float32), kk) * scale  # [hq, sq, t]
        if causal:
            limit = total - sq + torch.arange(sq, device=q.device)  # last visible key of query i
            s = s.masked_fill(pos.view(1, 1, -1) > limit.view(1, -1, 1), float("-inf"))
        p = torch.softmax(s, dim=-1).nan_to_num(0.0)  # fully masked rows: 0
        out[b] = torch.einsum("hij,jhd->ihd", p, vv)
    return out.to(q.dtype)


def sparse24_gemm(
    x: torch.Tensor,
    values: torch.Tensor,
    meta: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    scales: torch.Tensor | None = None,
    zeros: torch.Tensor | None = None,
    bits: int = 16,
    group_size: int = 128,
    layout: int = 0,
) -> torch.Tensor:
    """``x @ W^T + bias`` in float32 with W decompressed from the (canonical
    or CUDA-ordered) 2:4 weight, returned in x's dtype."""
    from .formats import sparse24, sparse24_cuda

    if layout == 1:
        values, meta = sparse24_cuda.from_cuda_layout(values, meta, bits)
    w = sparse24.dense_weight(sparse24.Sparse24Weight(values, meta, scales, zeros), bits=bits)
    b = None if bias is None else bias.to(torch.float32)
    return torch.nn.functional.linear(x.to(torch.float32), w.to(x.device), b).to(x.dtype)
