"""Module.to(dtype) for layers whose quantisation metadata must stay float32.

``nn.Module._apply`` casts every floating-point buffer, so ``model.to(torch.bfloat16)``
would round a layer's scales and zero points to bf16 (and the kernels
rightly refuse them). These layers move such buffers with the module's
device but keep them float32; the weights and bias follow the cast.
"""

import torch
from torch import nn


def apply_keeping_float32(module: nn.Module, fn, recurse: bool, names: tuple, super_apply):
    """Runs ``super_apply(fn, recurse)`` with the buffers ``names`` held aside,
    then moves them to wherever ``fn`` sends a float32 tensor, as float32."""
    held = {n: module._buffers[n] for n in names if module._buffers.get(n) is not None}
    for n in held:
        module._buffers[n] = None  # _apply skips None buffers; the slot keeps the state_dict order
    try:
        out = super_apply(fn, recurse)
    finally:
        for n, t in held.items():
            target = fn(torch.empty(0, dtype=torch.float32, device=t.device)).device
            module._buffers[n] = t.to(device=target)
    return out
