"""What the checkpoint importers (``gptq.py``, ``awq.py``) share: argument
checks that name the offending tensor, the unpacking of int32 words, and the
last step into the slimops layout of ``int8.py`` / ``int4.py``."""

from typing import NamedTuple

import torch

from .int4 import pack_int4
from .quantize import SYMMETRIC_ZERO

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
INT_INDEX_DTYPES = (torch.int32, torch.int64)


class ImportedWeight(NamedTuple):
    """A checkpoint's weight in the slimops layout, plus the input permutation."""

    qweight: torch.Tensor  # int8 [N, K] (bits=8) or packed uint8 [N, K/2] (bits=4)
    scales: torch.Tensor  # float32 [N, G]
    zeros: torch.Tensor | None  # float32 [N, G]; None when all equal the format's symmetric zero
    perm: torch.Tensor | None  # int64 [K]: packed column j is input column perm[j]; None = identity


def check_tensor(who: str, name: str, t, dtypes, ndim: int, layout: str) -> None:
    """ValueError naming ``name`` unless ``t`` is a tensor of one of ``dtypes`` and rank ``ndim``."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{who}: {name} must be a tensor {layout}, got {type(t).__name__}")
    if t.dtype not in dtypes or t.dim() != ndim:
        want = " or ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise ValueError(f"{who}: {name} must be {want} {layout}, got {t.dtype} of shape {list(t.shape)}")


def check_shape(who: str, name: str, t: torch.Tensor, expected: tuple, layout: str) -> None:
    if tuple(t.shape) != tuple(expected):
        raise ValueError(f"{who}: {name} must have shape {layout} = {list(expected)}, got {list(t.shape)}")


def check_device(who: str, name: str, t: torch.Tensor, device: torch.device) -> None:
    if t.device != device:
        raise ValueError(f"{who}: {name} is on {t.device}, but qweight is on {device}")


def unpack_words(words: torch.Tensor, bits: int) -> torch.Tensor:
    """int32 ``[..., W]`` -> int32 ``[..., W, 32 // bits]``; value i of a word is
    bits ``i*bits ..`` of it, lowest first (both GPTQ and AWQ pack this way)."""
    shifts = torch.arange(0, 32, bits, dtype=torch.int32, device=words.device)
    # Arithmetic shift of a negative word drags the sign bit in; the mask drops it.
    return (words.unsqueeze(-1) >> shifts) & ((1 << bits) - 1)


def to_slimops(q: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor, bits: int, perm) -> ImportedWeight:
    """Unsigned ``q`` [N, K] in [0, 2^bits) and float32 zeros/scales [N, G] with
    ``w = (q - zero) * scale``, K already in checkpoint order -> slimops layout."""
    if perm is not None:
        q = q.index_select(1, perm)
    if bits == 8:
        # The same shift on q and zero keeps q - zero, so dequantisation stays exact.
        q, zeros = (q - 128).to(torch.int8), zeros - 128
    else:
        q = pack_int4(q.to(torch.uint8))
    # Symmetric checkpoints store the midpoint everywhere; dropping it selects
    # the kernels' symmetric path and saves the zeros' bytes, exactly.
    if bool((zeros == SYMMETRIC_ZERO[bits]).all()):
        zeros = None
    return ImportedWeight(q.contiguous(), scales.contiguous(), None if zeros is None else zeros.contiguous(), perm)
