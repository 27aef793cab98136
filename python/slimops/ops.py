"""Typed Python wrappers of the slimops ops, their fake (meta) kernels for
torch.compile / FakeTensor tracing, and their autograd formulas.

The fake kernels repeat the shape checks of the C++ bindings, so a bad call
fails with the same clear message while tracing as it does when run.
"""

import torch

from .formats.quantize import dequantize


def wo_gemm(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    zeros: torch.Tensor | None = None,
    bits: int = 8,
    group_size: int = -1,
) -> torch.Tensor:
    """Weight-only quantised linear: ``x @ dequant(qweight)^T + bias``.

    ``x`` is ``[..., K]`` (float32/bf16/fp16 on CPU, fp16/bf16 on CUDA);
    ``qweight``/``scales``/``zeros`` are in the layouts of :mod:`slimops.formats`
    (int8 ``[N, K]``, or packed int4 ``[N, K/2]``); the output is ``[..., N]``
    in x's dtype.
    """
    return torch.ops.slimops.wo_gemm(x, qweight, scales, zeros, bias, bits, group_size)


@torch.library.register_fake("slimops::wo_gemm")
def _wo_gemm_fake(x, qweight, scales, zeros, bias, bits, group_size):
    torch._check(bits in (4, 8), lambda: f"slimops.wo_gemm: bits must be 4 or 8, got {bits}")
    torch._check(x.dim() >= 1, lambda: "slimops.wo_gemm: x must have at least 1 dimension, got a scalar")
    torch._check(
        x.dtype in (torch.float32, torch.float16, torch.bfloat16),
        lambda: f"slimops.wo_gemm: x must be float32, float16 or bfloat16, got {x.dtype}",
    )
    torch._check(qweight.dim() == 2, lambda: f"slimops.wo_gemm: qweight must be 2-D, got {tuple(qweight.shape)}")
    want = torch.int8 if bits == 8 else torch.uint8
    torch._check(qweight.dtype == want, lambda: f"slimops.wo_gemm: qweight must be {want} for bits={bits}, got {qweight.dtype}")
    n = qweight.shape[0]
    k = qweight.shape[1] * (1 if bits == 8 else 2)
    torch._check(
        x.shape[-1] == k,
        lambda: f"slimops.wo_gemm: x's last dimension must equal K = {k}, got x of shape {tuple(x.shape)}",
    )
    gs = k if group_size == -1 else group_size
    torch._check(gs > 0 and k % gs == 0, lambda: f"slimops.wo_gemm: K = {k} must be divisible by group_size = {gs}")
    for name, t in (("scales", scales), ("zeros", zeros)):
        if t is not None:
            torch._check(
                t.dtype == torch.float32 and tuple(t.shape) == (n, k // gs),
                lambda: f"slimops.wo_gemm: {name} must be float32 [N, K / group_size] = [{n}, {k // gs}], "
                f"got {t.dtype} {tuple(t.shape)}",
            )
    if bias is not None:
        torch._check(bias.shape == (n,), lambda: f"slimops.wo_gemm: bias must have shape [N] = [{n}], got {tuple(bias.shape)}")
    return x.new_empty((*x.shape[:-1], n))


def _wo_gemm_setup_context(ctx, inputs, output):
    x, qweight, scales, zeros, bias, bits, group_size = inputs
    ctx.save_for_backward(qweight, scales, zeros)
    ctx.bits, ctx.group_size = bits, group_size
    ctx.bias_needs_grad = bias is not None and bias.requires_grad
    ctx.bias_dtype = None if bias is None else bias.dtype


def _wo_gemm_backward(ctx, grad_out):
    # Quantised weights are frozen; gradients flow to x (and bias), which is
    # what adapter training on a quantised base model needs.
    qweight, scales, zeros = ctx.saved_tensors
    grad_x = grad_bias = None
    if ctx.needs_input_grad[0]:
        w = dequantize(qweight, scales, zeros, ctx.bits, ctx.group_size).to(grad_out.dtype)
        grad_x = grad_out @ w
    if ctx.bias_needs_grad:
        grad_bias = grad_out.reshape(-1, grad_out.shape[-1]).sum(0).to(ctx.bias_dtype)
    return grad_x, None, None, None, grad_bias, None, None


torch.library.register_autograd("slimops::wo_gemm", _wo_gemm_backward, setup_context=_wo_gemm_setup_context)


def wo_gemm_lowrank(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    lr_a: torch.Tensor,
    lr_b: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    zeros: torch.Tensor | None = None,
    bits: int = 4,
    group_size: int = 128,
) -> torch.Tensor:
    """Weight-only quantised linear with a low-rank correction of the weight:
    ``x @ (dequant(qweight) + lr_a @ lr_b)^T + bias``.

    The weight arguments are :func:`wo_gemm`'s; ``lr_a`` ``[N, r]`` and
    ``lr_b`` ``[r, K]`` are in x's dtype. On CUDA at small M (<= 16) this is
    one kernel: ``x @ lr_b^T`` is kept in float32 and the correction joins
    the GEMM's split-K sum before the output is rounded. Elsewhere it runs
    :func:`wo_gemm` and :func:`lowrank_linear`.
    """
    return torch.ops.slimops.wo_gemm_lowrank(x, qweight, scales, zeros, bias, lr_a, lr_b, bits, group_size)


@torch.library.register_fake("slimops::wo_gemm_lowrank")
def _wo_gemm_lowrank_fake(x, qweight, scales, zeros, bias, lr_a, lr_b, bits, group_size):
    who = "slimops.wo_gemm_lowrank"
    out = _wo_gemm_fake(x, qweight, scales, zeros, bias, bits, group_size)
    n, k = out.shape[-1], x.shape[-1]
    torch._check(
        lr_a.dim() == 2 and lr_b.dim() == 2,
        lambda: f"{who}: lr_a must be 2-D [N, r] and lr_b 2-D [r, K], got shapes {tuple(lr_a.shape)} and {tuple(lr_b.shape)}",
    )
    r = lr_b.shape[0]
    torch._check(r >= 1, lambda: f"{who}: the rank (rows of lr_b) must be at least 1, got lr_b of shape {tuple(lr_b.shape)}")
    torch._check(lr_b.shape[1] == k, lambda: f"{who}: lr_b must be [r, K] = [{r}, {k}], got {tuple(lr_b.shape)}")
    torch._check(
        tuple(lr_a.shape) == (n, r), lambda: f"{who}: lr_a must be [N, r] = [{n}, {r}], got {tuple(lr_a.shape)}"
    )
    for name, t in (("lr_a", lr_a), ("lr_b", lr_b)):
        torch._check(t.dtype == x.dtype, lambda: f"{who}: {name} must have x's dtype ({x.dtype}), got {t.dtype}")
    return out


def _wo_gemm_lowrank_setup_context(ctx, inputs, output):
    x, qweight, scales, zeros, bias, lr_a, lr_b, bits, group_size = inputs
    _wo_gemm_setup_context(ctx, (x, qweight, scales, zeros, bias, bits, group_size), output)
    ctx.lowrank = (lr_a, lr_b)


def _wo_gemm_lowrank_backward(ctx, grad_out):
    # As wo_gemm's: gradients flow to x and bias; the correction is frozen
    # with the weight it corrects.
    grad_x, _, _, _, grad_bias, _, _ = _wo_gemm_backward(ctx, grad_out)
    if grad_x is not None:
        lr_a, lr_b = ctx.lowrank
        grad_x = grad_x + (grad_out @ lr_a.to(grad_out.dtype)) @ lr_b.to(grad_out.dtype)
    return grad_x, None, None, None, grad_bias, None, None, None, None


torch.library.register_autograd(
    "slimops::wo_gemm_lowrank", _wo_gemm_lowrank_backward, setup_context=_wo_gemm_lowrank_setup_context
)


def lowrank_linear(x: torch.Tensor, V: torch.Tensor, U: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Low-rank projection ``(x @ V^T) @ U^T + bias`` in one op.

    ``x`` is ``[..., K]``; ``V`` ``[r, K]`` and ``U`` ``[N, r]`` share x's dtype
    (float32/bf16/fp16 on CPU, fp16/bf16 on CUDA); ``bias`` ``[N]`` any float
    dtype. The ``[M, r]`` intermediate is kept in float32, never rounded to
    x's dtype; the output is ``[..., N]`` in x's dtype.
    """
    return torch.ops.slimops.lowrank_linear(x, V, U, bias)


@torch.library.register_fake("slimops::lowrank_linear")
def _lowrank_linear_fake(x, V, U, bias):
    who = "slimops.lowrank_linear"
    torch._check(x.dim() >= 1, lambda: f"{who}: x must have at least 1 dimension, got a scalar")
    torch._check(
        x.dtype in (torch.float32, torch.float16, torch.bfloat16),
        lambda: f"{who}: x must be float32, float16 or bfloat16, got {x.dtype}",
    )
    torch._check(V.dim() == 2, lambda: f"{who}: V must be 2-D [r, K], got shape {tuple(V.shape)}")
    torch._check(U.dim() == 2, lambda: f"{who}: U must be 2-D [N, r], got shape {tuple(U.shape)}")
    for name, t in (("V", V), ("U", U)):
        torch._check(t.dtype == x.dtype, lambda: f"{who}: {name} must have x's dtype ({x.dtype}), got {t.dtype}")
    r, k, n = V.shape[0], V.shape[1], U.shape[0]
    torch._check(U.shape[1] == r, lambda: f"{who}: U must be [N, r] with r = {r} (V's rows), got U of shape {tuple(U.shape)}")
    torch._check(x.shape[-1] == k, lambda: f"{who}: x's last dimension must equal K = {k}, got x of shape {tuple(x.shape)}")
    if bias is not None:
        torch._check(bias.shape == (n,), lambda: f"{who}: bias must have shape [N] = [{n}], got {tuple(bias.shape)}")
    return x.new_empty((*x.shape[:-1], n))


def _lowrank_setup_context(ctx, inputs, output):
    x, V, U, bias = inputs
    ctx.save_for_backward(x, V, U)
    ctx.has_bias = bias is not None
    ctx.bias_dtype = None if bias is None else bias.dtype


def _lowrank_backward(ctx, grad_out):
    # Plain matmuls: a low-rank layer is small enough that its backward is
    # never the bottleneck, and every factor may be trained (fine-tuning
    # after factorisation recovers accuracy).
    x, V, U = ctx.saved_tensors
    g = grad_out.reshape(-1, grad_out.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    t = x2 @ V.T
    gt = g @ U
    grad_x = (gt @ V).reshape(x.shape) if ctx.needs_input_grad[0] else None
    grad_v = (gt.T @ x2) if ctx.needs_input_grad[1] else None
    grad_u = (g.T @ t) if ctx.needs_input_grad[2] else None
    grad_b = g.sum(0).to(ctx.bias_dtype) if ctx.has_bias and ctx.needs_input_grad[3] else None
    return grad_x, grad_v, grad_u, grad_b


torch.library.register_autograd("slimops::lowrank_linear", _lowrank_backward, setup_context=_lowrank_setup_context)


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
    """Attention of ``q`` over a KV cache, appending ``k``/``v`` first, in one op
    (the semantics of flash-attention's ``flash_attn_with_kvcache``).

    - ``q`` ``[B, Sq, Hq, D]``; ``k_cache``/``v_cache`` ``[B, S_max, Hkv, D]``, or
      paged ``[num_blocks, block_size, Hkv, D]`` with ``block_table``
      ``[B, max_blocks]`` int32; ``cache_seqlens`` ``[B]`` int32, the tokens
      already cached per sequence. ``Hq % Hkv == 0`` (GQA / MQA).
    - ``k``/``v`` ``[B, Sq, Hkv, D]``, if given, are written into the caches in
      place at positions ``cache_seqlens[b] .. cache_seqlens[b] + Sq - 1`` and
      attended to; ``cache_seqlens`` is not changed (the caller advances it).
    - ``causal``: query ``i`` sees positions up to ``total_b - Sq + i``
      (bottom-right aligned); a query that sees no key returns zeros.
    - dtypes: q (and k, v, the output) float16/bfloat16 on CUDA, float32/bfloat16
      on CPU; the caches in q's dtype, or int8 with float32 scales
      ``k_scale``/``v_scale`` shaped like the cache without its last dim
      (``[B, S_max, Hkv]`` or ``[num_blocks, block_size, Hkv]``), quantised
      per (position, head) on append (:func:`slimops.reference.quantize_kv_int8`).
    - ``softmax_scale`` defaults to ``D ** -0.5``.
    """
    return torch.ops.slimops.kv_attention(
        q, k_cache, v_cache, cache_seqlens, k, v, softmax_scale, causal, block_table, k_scale, v_scale
    )


@torch.library.register_fake("slimops::kv_attention")
def _kv_attention_fake(q, k_cache, v_cache, cache_seqlens, k, v, softmax_scale, causal, block_table, k_scale, v_scale):
    who = "slimops.kv_attention"
    torch._check(q.dim() == 4, lambda: f"{who}: q must be 4-D [B, Sq, Hq, D], got shape {tuple(q.shape)}")
    torch._check(
        q.dtype in (torch.float32, torch.float16, torch.bfloat16),
        lambda: f"{who}: q must be float32, float16 or bfloat16, got {q.dtype}",
    )
    B, sq, hq, d = q.shape
    for name, t in (("q", q), ("k_cache", k_cache), ("v_cache", v_cache), ("k", k), ("v", v)):
        if t is not None:
            torch._check(
                t.dim() == 0 or t.stride(-1) == 1,
                lambda: f"{who}: {name} must have a contiguous last dimension (stride 1), got strides {t.stride()}",
            )
    for name, t in (("k_cache", k_cache), ("v_cache", v_cache)):
        torch._check(t.dim() == 4, lambda: f"{who}: {name} must be 4-D, got shape {tuple(t.shape)}")
        torch._check(
            t.dtype in (q.dtype, torch.int8), lambda: f"{who}: {name} must be q's dtype ({q.dtype}) or int8, got {t.dtype}"
        )
    torch._check(
        k_cache.shape == v_cache.shape and k_cache.dtype == v_cache.dtype,
        lambda: f"{who}: k_cache and v_cache must match, got {k_cache.dtype} {tuple(k_cache.shape)} and "
        f"{v_cache.dtype} {tuple(v_cache.shape)}",
    )
    hkv = k_cache.shape[2]
    torch._check(k_cache.shape[3] == d, lambda: f"{who}: the caches' head dim must be q's D = {d}, got {k_cache.shape[3]}")
    torch._check(hkv > 0 and hq % hkv == 0, lambda: f"{who}: Hq = {hq} must be a multiple of the caches' Hkv = {hkv}")
    torch._check(
        cache_seqlens.dtype == torch.int32 and tuple(cache_seqlens.shape) == (B,),
        lambda: f"{who}: cache_seqlens must be int32 [B] = [{B}], got {cache_seqlens.dtype} {tuple(cache_seqlens.shape)}",
    )
    torch._check((k is None) == (v is None), lambda: f"{who}: give both k and v, or neither")
    if k is not None:
        for name, t in (("k", k), ("v", v)):
            torch._check(
                tuple(t.shape) == (B, sq, hkv, d) and t.dtype == q.dtype,
                lambda: f"{who}: {name} must be {q.dtype} [B, Sq, Hkv, D] = [{B}, {sq}, {hkv}, {d}], "
                f"got {t.dtype} {tuple(t.shape)}",
            )
    if block_table is None:
        torch._check(k_cache.shape[0] == B, lambda: f"{who}: the caches' batch must be q's B = {B}, got {k_cache.shape[0]}")
    else:
        torch._check(
            block_table.dtype == torch.int32 and block_table.dim() == 2 and block_table.shape[0] == B,
            lambda: f"{who}: block_table must be int32 [B, max_blocks] with B = {B}, got "
            f"{block_table.dtype} {tuple(block_table.shape)}",
        )
    int8 = k_cache.dtype == torch.int8
    for name, t in (("k_scale", k_scale), ("v_scale", v_scale)):
        if int8:
            torch._check(
                t is not None and t.dtype == torch.float32 and t.shape == k_cache.shape[:3],
                lambda: f"{who}: an int8 cache needs {name} float32 {tuple(k_cache.shape[:3])}, got "
                f"{None if t is None else (t.dtype, tuple(t.shape))}",
            )
        else:
            torch._check(t is None, lambda: f"{who}: {name} is only for int8 caches (the caches are {k_cache.dtype})")
    return torch.empty_like(q, memory_format=torch.contiguous_format)


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
    """2:4 sparse linear ``x @ W^T + bias`` from the compressed weight.

    ``values``/``meta`` are in the layouts of :mod:`slimops.formats.sparse24`
    (``layout=0``, canonical: the CPU's) or its CUDA order (``layout=1``,
    :func:`slimops.formats.sparse24_cuda.to_cuda_layout`: the CUDA kernel's);
    ``bits=4`` takes packed int4 kept values with float32 ``scales`` (and
    ``zeros``) per ``group_size`` dense columns. ``x`` is ``[..., K]``
    (float32/bf16 on CPU, fp16/bf16 on CUDA); the output is ``[..., N]`` in
    x's dtype. :class:`slimops.nn.Sparse24Linear` manages all of this.
    """
    return torch.ops.slimops.sparse24_gemm(x, values, meta, scales, zeros, bias, bits, group_size if bits == 4 else 0, layout)


@torch.library.register_fake("slimops::sparse24_gemm")
def _sparse24_gemm_fake(x, values, meta, scales, zeros, bias, bits, group_size, layout):
    who = "slimops.sparse24_gemm"
    torch._check(bits in (4, 16), lambda: f"{who}: bits must be 16 (values in x's dtype) or 4 (int4 kept values), got {bits}")
    torch._check(layout in (0, 1), lambda: f"{who}: layout must be 0 (canonical) or 1 (CUDA), got {layout}")
    torch._check(x.dim() >= 1, lambda: f"{who}: x must have at least 1 dimension, got a scalar")
    torch._check(
        x.dtype in (torch.float32, torch.float16, torch.bfloat16),
        lambda: f"{who}: x must be float32, float16 or bfloat16, got {x.dtype}",
    )
    torch._check(
        meta.dim() == 2 and meta.dtype == torch.uint8, lambda: f"{who}: meta must be uint8 [N, K/8], got {meta.dtype} {tuple(meta.shape)}"
    )
    n, k = meta.shape[0], meta.shape[1] * 8
    torch._check(x.shape[-1] == k, lambda: f"{who}: x's last dimension must equal K = {k}, got x of shape {tuple(x.shape)}")
    if bits == 16:
        torch._check(
            values.dtype == x.dtype and tuple(values.shape) == (n, k // 2),
            lambda: f"{who}: values must be {x.dtype} [N, K/2] = [{n}, {k // 2}], got {values.dtype} {tuple(values.shape)}",
        )
    else:
        torch._check(
            values.dtype == torch.uint8 and tuple(values.shape) == (n, k // 4),
            lambda: f"{who}: values must be uint8 [N, K/4] = [{n}, {k // 4}] for bits = 4, got {values.dtype} {tuple(values.shape)}",
        )
        torch._check(scales is not None, lambda: f"{who}: bits = 4 needs scales")
    if bias is not None:
        torch._check(bias.shape == (n,), lambda: f"{who}: bias must have shape [N] = [{n}], got {tuple(bias.shape)}")
    return x.new_empty((*x.shape[:-1], n))
