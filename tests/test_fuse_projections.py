"""slimops.nn.fuse_projections: q/k/v and gate/up stacked into one layer each
give the model's outputs unchanged, dense and compressed."""

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import slimops
from slimops.nn import fuse_projections
from slimops.nn.fuse import FusedLinearGroup, SiblingSlice

DIMS = dict(hidden_size=128, intermediate_size=320, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=300, max_position_embeddings=128)


def tiny_llama(**overrides):
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**{**DIMS, **overrides})).eval()


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


IDS = torch.randint(0, 300, (2, 11), generator=torch.Generator().manual_seed(3))


def test_dense_outputs_unchanged():
    model = tiny_llama()
    ref = logits(model, IDS)
    assert fuse_projections(model) == 2 * DIMS["num_hidden_layers"]
    attn = model.model.layers[0].self_attn
    assert isinstance(attn.qkv_proj, FusedLinearGroup) and isinstance(attn.k_proj, SiblingSlice)
    assert attn.qkv_proj.fused.out_features == 128 + 2 * 64
    assert model.model.layers[0].mlp.gate_up_proj.fused.out_features == 2 * 320
    torch.testing.assert_close(logits(model, IDS), ref, rtol=1e-5, atol=1e-5)
    # No activation kept once every sibling took its slice.
    assert attn.qkv_proj._output is None and model.model.layers[1].mlp.gate_up_proj._output is None


def test_parameters_counted_once():
    model = tiny_llama()
    n = sum(p.numel() for p in model.parameters())
    fuse_projections(model)
    assert sum(p.numel() for p in model.parameters()) == n


@pytest.mark.parametrize("recipe", ["int8", "int4-g64"])
def test_compressed_like_unfused(recipe):
    """RTN quantises each output row on its own: the stacked layer's rows are
    the parts' rows, so fused and unfused compressed models agree."""
    plain = tiny_llama()
    fused = copy.deepcopy(plain)
    fuse_projections(fused)
    slimops.compress(plain, recipe, progress=False)
    slimops.compress(fused, recipe, progress=False)
    assert isinstance(fused.model.layers[0].self_attn.qkv_proj.fused, slimops.QuantLinear)
    torch.testing.assert_close(logits(fused, IDS), logits(plain, IDS), rtol=1e-4, atol=1e-4)


def test_mismatched_siblings_left_alone():
    model = tiny_llama(attention_bias=True)
    model.model.layers[0].self_attn.k_proj.bias = None  # not all alike: that group stays as it is
    ref = logits(model, IDS)
    assert fuse_projections(model) == 2 * DIMS["num_hidden_layers"] - 1
    assert not hasattr(model.model.layers[0].self_attn, "qkv_proj")
    assert isinstance(model.model.layers[1].self_attn.qkv_proj, FusedLinearGroup)
    torch.testing.assert_close(logits(model, IDS), ref, rtol=1e-5, atol=1e-5)
    assert fuse_projections(model) == 0  # idempotent


def test_torch_compile_fullgraph():
    """The hand-over between siblings is plain attribute state: dynamo traces it
    without a graph break."""
    model = tiny_llama()
    fuse_projections(model)
    slimops.compress(model, "int4-g64", progress=False)
    ref = logits(model, IDS)
    compiled = torch.compile(model, fullgraph=True)
    torch.testing.assert_close(logits(compiled, IDS), ref, rtol=1e-4, atol=1e-4)
