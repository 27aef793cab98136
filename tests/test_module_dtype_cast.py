"""model.to(dtype) after compression: every slimops module follows the cast
with its weights and bias while quantisation scales and zero points stay
float32, and the model still runs (a user's usual `compress(...); .to(bf16)`)."""

import pytest
import torch

import slimops
from slimops.testing import randn_with_outliers, rel_error


@pytest.mark.parametrize("recipe", ["int8", "int4-g64", "int4-g64-asym+lr8", "2:4", "int4+2:4-g64", "lowrank:0.5"])
def test_compressed_model_casts_to_bf16(recipe, gen):
    model = torch.nn.Sequential(torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64))
    slimops.compress(model, recipe)
    x = randn_with_outliers(3, 128, generator=gen)
    ref = model(x)
    keys = list(model.state_dict())
    model.to(torch.bfloat16)
    assert list(model.state_dict()) == keys  # the state_dict layout is unchanged
    for m in model.modules():
        for name in ("scales", "zeros"):
            t = getattr(m, name, None)
            if isinstance(t, torch.Tensor):
                assert t.dtype == torch.float32, (type(m).__name__, name)
    out = model(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    assert rel_error(out, ref) < 3e-2  # bf16 weights and activations through two layers
