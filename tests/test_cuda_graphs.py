"""CUDA graph replays of the split-K kernels give the answer for the inputs
of each replay, not of the capture: a replay reuses the captured launch's
arguments (its split-K counter tag included) and workspace, so the counters
must be left ready for it (common/split_k_counter.cuh)."""

import pytest
import torch
from torch import nn

import slimops
from slimops.testing import randn_with_outliers, rel_error

from conftest import TOL, requires_cuda

pytestmark = requires_cuda


def layer_of(kind, k, n, gen):
    lin = nn.Linear(k, n, bias=True)
    with torch.no_grad():
        lin.weight.copy_(randn_with_outliers(n, k, generator=gen) / k**0.5)
        lin.bias.copy_(randn_with_outliers(n, generator=gen))
    if kind == "int4":
        layer = slimops.QuantLinear.from_linear(lin, bits=4, group_size=128)
    elif kind == "int8":
        layer = slimops.QuantLinear.from_linear(lin, bits=8)
    elif kind == "2:4":
        layer = slimops.Sparse24Linear.from_linear(lin)
    else:
        layer = slimops.Sparse24Linear.from_linear(lin, bits=4, group_size=128)
    return layer.to(device="cuda", dtype=torch.bfloat16)


# M = 1 to 16 on a 4096 x 4096 layer: every kernel splits K there.
@pytest.mark.parametrize("kind", ["int4", "int8", "2:4", "int4+2:4"])
@pytest.mark.parametrize("m", [1, 16])
def test_graph_replays_follow_new_inputs(kind, m, gen):
    layer = layer_of(kind, 4096, 4096, gen)
    x = randn_with_outliers(m, 4096, dtype=torch.bfloat16, generator=gen).cuda()
    stream = torch.cuda.Stream()
    with torch.no_grad(), torch.cuda.stream(stream):
        layer(x)  # warm-up outside the capture
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            out = layer(x)
    for _ in range(3):
        x.copy_(randn_with_outliers(m, 4096, dtype=torch.bfloat16, generator=gen).cuda())
        graph.replay()
        torch.cuda.synchronize()
        with torch.no_grad():
            expected = layer(x)
        assert rel_error(out, expected) < TOL[torch.bfloat16]
