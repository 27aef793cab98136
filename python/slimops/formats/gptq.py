"""Import of AutoGPTQ checkpoints (the ``QuantLinear`` buffers AutoGPTQ saves).

Accepted layout, for ``bits`` in {4, 8}, ``pf = 32 // bits`` values per word,
``K`` input and ``N`` output features, ``G = K // group_size`` groups
(``group_size = -1``: one group, ``G = 1``):

- ``qweight``: int32 ``[K // pf, N]``, packed along K: word ``qweight[r, n]``
  holds ``q[r*pf + i, n]`` in bits ``i*bits .. i*bits + bits - 1``, i = 0 in the
  lowest bits. ``q`` is unsigned, in ``[0, 2^bits)``.
- ``qzeros``: int32 ``[G, N // pf]``, packed along N the same way: word
  ``qzeros[g, c]`` holds the stored zero of output column ``c*pf + i``.
- ``scales``: float16 ``[G, N]`` (bfloat16 and float32 are accepted too).
- ``g_idx``: int32 (or int64) ``[K]``, the group of each input column, or None
  for ``arange(K) // group_size``. Act-order (``desc_act``) checkpoints permute
  it; each group must still have exactly ``group_size`` members.
- AutoGPTQ stores ``zero - 1``: ``w[n, k] = scale[g, n] * (q[k, n] - (stored_zero[g, n] + 1))``
  with ``g = g_idx[k]``. (GPTQ "v2" checkpoints without the offset are not this format.)

Result (see ``checkpoint.ImportedWeight``): slimops int8/int4 weights with
float32 zeros; 8-bit values move to the signed range (``q - 128``, ``zero - 128``).
With a permuted ``g_idx`` the packed columns are ordered by group
(``perm = stable argsort(g_idx)``), and the layer must gather its input with
``x.index_select(-1, perm)``.
"""

import torch

from .checkpoint import (
    FLOAT_DTYPES,
    INT_INDEX_DTYPES,
    ImportedWeight,
    check_device,
    check_shape,
    check_tensor,
    to_slimops,
    unpack_words,
)
from .quantize import num_groups

WHO = "GPTQ import"


def convert_gptq(qweight, qzeros, scales, g_idx, bits: int, group_size: int) -> ImportedWeight:
    """AutoGPTQ ``qweight / qzeros / scales / g_idx`` -> slimops layout (see module doc)."""
    if bits not in (4, 8):
        raise ValueError(f"{WHO}: bits must be 4 or 8, got {bits}")
    pf = 32 // bits
    check_tensor(WHO, "qweight", qweight, (torch.int32,), 2, "[K * bits / 32, N]")
    k, n = qweight.shape[0] * pf, qweight.shape[1]
    try:
        g = num_groups(k, group_size, bits)
    except ValueError as e:
        raise ValueError(f"{WHO}: {e} (K from qweight's {qweight.shape[0]} rows x {pf})") from None
    if n % pf:
        raise ValueError(f"{WHO}: N = {n} (qweight's columns) must be divisible by {pf} to pack qzeros for bits={bits}")
    check_tensor(WHO, "qzeros", qzeros, (torch.int32,), 2, "[G, N * bits / 32]")
    check_shape(WHO, "qzeros", qzeros, (g, n // pf), "[K / group_size, N * bits / 32]")
    check_tensor(WHO, "scales", scales, FLOAT_DTYPES, 2, "[G, N]")
    check_shape(WHO, "scales", scales, (g, n), "[K / group_size, N]")
    for name, t in (("qzeros", qzeros), ("scales", scales)):
        check_device(WHO, name, t, qweight.device)
    perm = _act_order_perm(g_idx, k, g, k // g, qweight.device)

    q = unpack_words(qweight.t(), bits).reshape(n, k)
    zeros = (unpack_words(qzeros, bits).reshape(g, n) + 1).t().to(torch.float32)
    return to_slimops(q, zeros, scales.t().to(torch.float32), bits, perm)


def _act_order_perm(g_idx, k: int, g: int, gs: int, device) -> torch.Tensor | None:
    """None when g_idx is the plain ``arange(K) // group_size``; otherwise the
    stable sort that makes each group's columns contiguous, in group order."""
    if g_idx is None:
        return None
    check_tensor(WHO, "g_idx", g_idx, INT_INDEX_DTYPES, 1, "[K]")
    check_shape(WHO, "g_idx", g_idx, (k,), "[K]")
    check_device(WHO, "g_idx", g_idx, device)
    gi = g_idx.to(torch.int64)
    lo, hi = int(gi.min()), int(gi.max())
    if lo < 0 or hi >= g:
        raise ValueError(f"{WHO}: g_idx values must lie in [0, {g}) (the groups of scales), got [{lo}, {hi}]")
    if torch.equal(gi, torch.arange(k, device=device) // gs):
        return None
    # The kernels take groups of consecutive columns, so after sorting every
    # group has to fill exactly group_size of them.
    counts = torch.bincount(gi, minlength=g)
    bad = (counts != gs).nonzero()
    if bad.numel():
        j = int(bad[0])
        raise ValueError(
            f"{WHO}: g_idx puts {int(counts[j])} input columns in group {j}; act-order import needs "
            f"exactly group_size = {gs} in each of the {g} groups"
        )
    return torch.argsort(gi, stable=True)
