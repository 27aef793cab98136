"""slimops.save / slimops.load: a compressed model round-trips through one
safetensors file into a freshly built float model, bit for bit; a file that
does not fit the model, or is not a slimops file, is a clear error."""

import pytest
import torch
from torch import nn

import slimops
from slimops.nn import LowRankLinear, QuantLinear
from slimops.testing import randn_with_outliers


def build(seed=0, hidden=128):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 96), nn.ReLU(), nn.Linear(96, 32))


def compressed():
    model = build()
    model[0] = QuantLinear.from_linear(model[0], bits=4, group_size=32, lowrank_rank=4)
    model[2] = QuantLinear.from_linear(model[2], bits=8, group_size=64, symmetric=False)
    model[4] = LowRankLinear.from_linear(model[4], rank=16)
    return model  # model[6] stays a float nn.Linear


def test_round_trip_is_bitwise(tmp_path):
    model = compressed()
    path = tmp_path / "model.safetensors"
    slimops.save(model, path)
    fresh = slimops.load(build(seed=1), path)
    assert [type(m).__name__ for m in fresh] == [type(m).__name__ for m in model]
    x = randn_with_outliers(5, 64)
    assert torch.equal(fresh(x), model(x))
    # Loading into a model already compressed the same way also works.
    assert torch.equal(slimops.load(compressed(), path)(x), model(x))


def test_mismatched_model_names_the_module(tmp_path):
    path = tmp_path / "model.safetensors"
    slimops.save(compressed(), path)
    with pytest.raises(ValueError, match=r"module '2': the file has a QuantLinear\(128 -> 128\), the model a Linear\(128 -> 256\)"):
        slimops.load(nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 256)), path)
    with pytest.raises(ValueError, match=r"module '4' of the file does not exist in the model"):
        slimops.load(nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128)), path)


def test_corrupt_and_foreign_files_are_clear_errors(tmp_path):
    path = tmp_path / "model.safetensors"
    slimops.save(compressed(), path)
    data = path.read_bytes()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="is not a readable safetensors file"):
        slimops.load(build(), bad)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="has no slimops description"):
        slimops.load(build(), foreign)


def test_loaded_mixed_model_compiles_fullgraph(tmp_path):
    """torch.compile(fullgraph=True) on a model mixing every slimops module
    (no graph break in any of them) gives the eager outputs."""
    path = tmp_path / "model.safetensors"
    slimops.save(compressed(), path)
    model = slimops.load(build(seed=2), path)
    x = randn_with_outliers(3, 64)
    with torch.no_grad():
        assert torch.equal(torch.compile(model, fullgraph=True)(x), model(x))
