"""One GEMM for sibling projections: the q/k/v projections of an attention
block and the gate/up projections of a gated MLP read the same input, so
their weights can be stacked into one layer of N = sum of their outputs.

Why: at decode (M of 1 to 16) a weight-only GEMM is bound by how fast it
streams its weight, and a small N (Llama-3-8B's k/v projections: N = 1024)
cannot keep every SM busy. Stacked, q/k/v is one 4096 x 6144 GEMM and
gate/up one 4096 x 28672, each launched once instead of three or two times.
This is what serving engines do with merged QKV / gate-up layers; here it is
done to an existing transformers model without touching its forward code.

How: :func:`fuse_projections` replaces each group of sibling ``nn.Linear``s
by one :class:`FusedLinearGroup` (registered on the parent under a new name,
``qkv_proj`` or ``gate_up_proj``, so :func:`slimops.compress` finds and
compresses its stacked ``fused`` layer like any other) and each sibling by a
:class:`SiblingSlice` of it. The model's forward still calls ``q_proj(x)``,
``k_proj(x)``, ``v_proj(x)`` in turn; the first call runs the stacked layer on
``x`` and the others return their slices of that same output.

Run it before :func:`slimops.compress` (RTN quantises rows independently, so
the stacked layer quantises exactly as its parts would). It changes the
state_dict's names: save and load the fused model as such.
"""

from __future__ import annotations

import torch
from torch import nn

# Sibling groups by the names transformers' Llama / Qwen / Mistral families use.
SIBLING_GROUPS = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


class FusedLinearGroup(nn.Module):
    """The stacked layer ``fused`` and the output it last computed, kept until
    every sibling has taken its slice (then dropped, so no activation outlives
    the step)."""

    def __init__(self, fused: nn.Module, sizes: list[int]):
        super().__init__()
        self.fused = fused
        self.sizes = sizes
        self._input = self._output = None
        self._taken = 0

    def output_for(self, x: torch.Tensor, index: int) -> torch.Tensor:
        if x is not self._input:
            self._input, self._output, self._taken = x, self.fused(x), 0
        start = sum(self.sizes[:index])
        out = self._output[..., start : start + self.sizes[index]]
        self._taken += 1
        if self._taken == len(self.sizes):
            self._input = self._output = None
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The stacked output (all siblings' outputs side by side)."""
        return self.fused(x)


class SiblingSlice(nn.Module):
    """Stands in for sibling ``index`` of a group: its slice of the group's output."""

    def __init__(self, group: FusedLinearGroup, index: int, in_features: int, out_features: int):
        super().__init__()
        # A plain attribute, not a submodule: the group is registered once, on the parent.
        object.__setattr__(self, "group", group)
        self.index, self.in_features, self.out_features = index, in_features, out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.group.output_for(x, self.index)

    def extra_repr(self) -> str:
        return f"slice {self.index} of the fused group, in_features={self.in_features}, out_features={self.out_features}"


def _stack(linears: list[nn.Linear]) -> nn.Linear:
    first = linears[0]
    has_bias = first.bias is not None
    fused = nn.Linear(first.in_features, sum(m.out_features for m in linears), bias=has_bias,
                      device=first.weight.device, dtype=first.weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(torch.cat([m.weight for m in linears]))
        if has_bias:
            fused.bias.copy_(torch.cat([m.bias for m in linears]))
    return fused


def fuse_projections(model: nn.Module) -> int:
    """Stacks every group of sibling ``nn.Linear`` projections in ``model`` (in
    place) and returns how many groups were fused. A group is fused only when
    all its members are plain ``nn.Linear`` with the same in_features, dtype,
    device and bias presence; anything else is left as it is."""
    fused = 0
    for parent in list(model.modules()):
        for group_name, names in SIBLING_GROUPS.items():
            linears = [getattr(parent, n, None) for n in names]
            if not all(type(m) is nn.Linear for m in linears) or hasattr(parent, group_name):
                continue
            first = linears[0]
            if any(
                m.in_features != first.in_features or m.weight.dtype != first.weight.dtype
                or m.weight.device != first.weight.device or (m.bias is None) != (first.bias is None)
                for m in linears
            ):
                continue
            group = FusedLinearGroup(_stack(linears), [m.out_features for m in linears])
            setattr(parent, group_name, group)
            for i, (name, m) in enumerate(zip(names, linears)):
                setattr(parent, name, SiblingSlice(group, i, m.in_features, m.out_features))
            fused += 1
    return fused
