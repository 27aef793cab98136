"""Import of AutoAWQ checkpoints in the GEMM format (``WQLinear_GEMM`` buffers).

Accepted layout, 4-bit only (the only width AutoAWQ's GEMM format has), with
``K`` input and ``N`` output features (N a multiple of 8) and
``G = K // group_size`` groups (``group_size = -1``: one group):

- ``qweight``: int32 ``[K, N // 8]``, packed along N. Nibble ``i`` of word
  ``qweight[k, c]`` (bits ``4*i .. 4*i + 3``, i = 0 lowest) holds ``q`` of output
  column ``8*c + AWQ_ORDER[i]``, ``AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]``:
  even columns in the low half-word, odd ones in the high half (AutoAWQ's
  ``order_map`` in ``WQLinear_GEMM.from_linear``; its unpacker
  ``awq/utils/packing_utils.py`` applies the inverse ``[0, 4, 1, 5, 2, 6, 3, 7]``).
- ``qzeros``: int32 ``[G, N // 8]``, packed the same interleaved way.
- ``scales``: float16 ``[G, N]`` (bfloat16 and float32 are accepted too).
- ``w[n, k] = (q[k, n] - zero[g, n]) * scale[g, n]``, ``g = k // group_size``;
  zeros as stored (no GPTQ "+1"), q and zero in ``[0, 15]``.

No act-order: AWQ groups are always consecutive input columns.
"""

import torch

from .checkpoint import FLOAT_DTYPES, ImportedWeight, check_device, check_shape, check_tensor, to_slimops, unpack_words
from .quantize import num_groups

WHO = "AWQ import"
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
# Column j of a word's 8 comes from nibble AWQ_INVERSE[j].
AWQ_INVERSE = tuple(AWQ_ORDER.index(j) for j in range(8))


def unpack_awq(words: torch.Tensor) -> torch.Tensor:
    """int32 ``[R, C]`` in AWQ's interleaved packing -> int32 ``[R, 8*C]`` in column order."""
    nibbles = unpack_words(words, 4)
    order = torch.tensor(AWQ_INVERSE, device=words.device)
    return nibbles.index_select(-1, order).reshape(words.shape[0], -1)


def convert_awq(qweight, qzeros, scales, bits: int, group_size: int) -> ImportedWeight:
    """AutoAWQ GEMM ``qweight / qzeros / scales`` -> slimops int4 layout (see module doc)."""
    if bits != 4:
        raise ValueError(f"{WHO}: only bits=4 exists in AutoAWQ's GEMM format, got bits={bits}")
    check_tensor(WHO, "qweight", qweight, (torch.int32,), 2, "[K, N / 8]")
    k, n = qweight.shape[0], qweight.shape[1] * 8
    try:
        g = num_groups(k, group_size, bits)
    except ValueError as e:
        raise ValueError(f"{WHO}: {e} (K from qweight's rows)") from None
    check_tensor(WHO, "qzeros", qzeros, (torch.int32,), 2, "[G, N / 8]")
    check_shape(WHO, "qzeros", qzeros, (g, n // 8), "[K / group_size, N / 8]")
    check_tensor(WHO, "scales", scales, FLOAT_DTYPES, 2, "[G, N]")
    check_shape(WHO, "scales", scales, (g, n), "[K / group_size, N]")
    for name, t in (("qzeros", qzeros), ("scales", scales)):
        check_device(WHO, name, t, qweight.device)

    q = unpack_awq(qweight).t()
    zeros = unpack_awq(qzeros).t().to(torch.float32)
    return to_slimops(q, zeros, scales.t().to(torch.float32), bits, None)
