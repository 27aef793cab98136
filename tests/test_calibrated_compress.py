"""slimops.compress with calibrated methods (GPTQ, AWQ, Wanda, SparseGPT,
ASVD, SVD-LLM), Recipe overrides, group-size fallback, save/load, compile."""

import copy
import warnings

import pytest
import torch
from torch import nn

import slimops
from conftest import devices
from slimops.compress.gptq import gptq_quantize
from slimops.compress.calibrate import InputStats
from slimops.formats.quantize import dequantize


def structured_inputs(rows: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """Correlated inputs (a random mixing of few factors plus noise) with a
    few outlier channels, as real LLM activations have."""
    factors = torch.randn(rows, k // 8, generator=gen)
    mix = torch.randn(k // 8, k, generator=gen)
    x = factors @ mix / (k // 8) ** 0.5 + 0.1 * torch.randn(rows, k, generator=gen)
    out = torch.randperm(k, generator=gen)[:4]
    x[:, out] *= 12.0
    return x


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def one_layer(k=128, n=96, gen=None):
    lin = nn.Linear(k, n)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(n, k, generator=gen) / k ** 0.5)
        lin.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return nn.Sequential(lin)


@pytest.fixture
def gen0():
    return torch.Generator().manual_seed(1234)


def _err(recipe, method, base, calib, x):
    m = slimops.compress(copy.deepcopy(base), recipe, method=method, calib=calib, skip=(), progress=False)
    with torch.no_grad():
        return rel(m(x), base(x)), m


@pytest.mark.parametrize("recipe,baseline,methods", [
    ("int4-g32", "rtn", ["gptq"]),
    ("int4-g64-asym", "rtn", ["gptq"]),
    ("int8", "rtn", ["gptq"]),
    ("2:4", "magnitude", ["wanda", "sparsegpt"]),
    ("int4+2:4-g64", "magnitude", ["sparsegpt"]),
    ("lowrank:0.3", "svd", ["asvd", "svd-llm"]),
])
def test_calibrated_methods_beat_their_baseline_on_one_layer(recipe, baseline, methods, gen0):
    base = one_layer(gen=gen0)
    x = structured_inputs(512, 128, gen0)
    calib = [x[i:i + 128] for i in range(0, 512, 128)]
    ref_err, _ = _err(recipe, baseline, base, None, x)
    for method in methods:
        err, m = _err(recipe, method, base, calib, x)
        assert err < 0.9 * ref_err, (method, err, ref_err)


def two_layer_mlp(gen):
    """Linear -> ReLU -> Linear whose hidden channels have a few outliers."""
    model = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 64))
    with torch.no_grad():
        model[0].weight.copy_(torch.randn(256, 128, generator=gen) / 128 ** 0.5)
        model[0].weight[torch.randperm(256, generator=gen)[:6]] *= 15
        model[2].weight.copy_(torch.randn(64, 256, generator=gen) / 256 ** 0.5)
    return model


def test_awq_folds_scales_into_the_previous_layer_and_beats_rtn(gen0):
    base = two_layer_mlp(gen0)
    x = structured_inputs(512, 128, gen0)
    calib = [x[:256], x[256:]]
    # Layer 0 stays float (skipped): AWQ scales layer 2's inputs by folding 1/s into layer 0's rows.
    rtn_err, _ = (lambda m: (rel(m(x), base(x)), m))(slimops.compress(copy.deepcopy(base), "int4-g32", skip=("0",)))
    awq = slimops.compress(copy.deepcopy(base), "int4-g32", method="awq", calib=calib, skip=("0",), progress=False)
    assert type(awq[0]) is nn.Linear and isinstance(awq[2], slimops.QuantLinear)
    assert not torch.equal(awq[0].weight, base[0].weight)  # scales folded
    with torch.no_grad():
        awq_err = rel(awq(x), base(x))
    assert awq_err < 0.9 * rtn_err, (awq_err, rtn_err)


def test_gptq_layer_holds_exactly_the_gptq_weight(gen0):
    w = torch.randn(48, 128, generator=gen0)
    x = structured_inputs(400, 128, gen0)
    st = InputStats(128, "cpu")
    st.add(x)
    q, scales, zeros, perm, w_hat = gptq_quantize(w, st.hessian(), 4, 32, True)
    assert perm is not None and sorted(perm.tolist()) == list(range(128))
    # The integers and scales reproduce W_hat (in the permuted order).
    torch.testing.assert_close(dequantize(slimops.formats.int4.pack_int4(q.to(torch.uint8)), scales, None, 4, 32),
                               w_hat[:, perm].float(), rtol=0, atol=1e-6)
    lin = nn.Linear(128, 48)
    with torch.no_grad():
        lin.weight.copy_(w)
    m = slimops.compress(nn.Sequential(lin), "int4-g32", method="gptq", calib=[x], skip=(), progress=False)
    layer = m[0]
    assert layer.perm is not None
    torch.testing.assert_close(layer.dequantize(), w_hat.float(), rtol=0, atol=1e-6)
    # Its scales re-quantise the weight exactly (round to nearest lands on the same integers).
    n, k = w.shape
    wp = w_hat[:, perm].float().reshape(n, 4, 32)
    qq = torch.round(wp / layer.scales[..., None] + 8).clamp(0, 15)
    torch.testing.assert_close(((qq - 8) * layer.scales[..., None]).reshape(n, k), w_hat[:, perm].float(), rtol=0, atol=1e-6)


def test_int4_lowrank_correction_fitted_on_calibration_beats_plain(gen0):
    base = one_layer(gen=gen0)
    x = structured_inputs(512, 128, gen0)
    plain, _ = _err("int4-g32+lr8", "rtn", base, None, x)
    fitted, m = _err("int4-g32+lr8", "rtn", base, [x], x)
    assert m[0].lowrank_rank == 8
    assert fitted < 0.95 * plain


def test_calibrated_method_without_calib_is_a_clear_error():
    for recipe, method in (("int4", "gptq"), ("int4", "awq"), ("2:4", "wanda"), ("2:4", "sparsegpt"),
                           ("lowrank:0.5", "asvd"), ("lowrank:0.5", "svd-llm")):
        with pytest.raises(ValueError, match=f"method '{method}' needs calibration data"):
            slimops.compress(one_layer(), recipe, method=method)
    with pytest.raises(ValueError, match="method 'gptq' does not apply to recipe '2:4'"):
        slimops.compress(one_layer(), "2:4", method="gptq", calib=[torch.randn(4, 128)])
    with pytest.raises(ValueError, match="calib is empty"):
        slimops.compress(one_layer(), "int4", method="gptq", calib=[])
    with pytest.raises(ValueError, match="texts: pass tokenizer"):
        slimops.compress(one_layer(), "int4", method="gptq", calib=["some text"])


def test_group_size_fallback_warns_once_and_divides():
    model = nn.Sequential(nn.Linear(96, 64), nn.ReLU(), nn.Linear(64, 32))
    with pytest.warns(UserWarning, match="group size 64 does not divide in_features=96.*using 32"):
        slimops.compress(model, "int4-g64", skip=())
    assert model[0].group_size == 32 and model[2].group_size == 64
    model = nn.Sequential(nn.Linear(576, 64), nn.Linear(64, 576), nn.Linear(576, 64))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        slimops.compress(model, "int4", method="gptq", calib=[torch.randn(64, 576)], skip=(), progress=False)
    assert [model[i].group_size for i in range(3)] == [64, 64, 64]
    # One warning per width (576 twice, 64 once), not one per layer.
    msgs = [str(x.message) for x in w if "does not divide" in str(x.message)]
    assert len(msgs) == 2 and sum("in_features=576" in m for m in msgs) == 1
    # A group size the format cannot take at all stays an error naming the layer.
    with pytest.raises(ValueError, match="layer '0'.*group_size"):
        slimops.compress(nn.Sequential(nn.Linear(64, 8)), "int4-g48", skip=())


def test_recipe_overrides_by_pattern(gen0):
    model = two_layer_mlp(gen0)
    recipe = slimops.Recipe("int4-g32", method="gptq", overrides={"2": ("2:4", "sparsegpt")})
    x = structured_inputs(64, 128, gen0)
    slimops.compress(model, recipe, calib=[x], skip=(), progress=False)
    assert isinstance(model[0], slimops.QuantLinear) and model[0].perm is not None
    assert isinstance(model[2], slimops.Sparse24Linear)
    model = two_layer_mlp(gen0)
    slimops.compress(model, slimops.Recipe("int8", overrides={"0": None, "2": "lowrank:0.5"}), skip=())
    assert type(model[0]) is nn.Linear and isinstance(model[2], slimops.LowRankLinear)
    with pytest.raises(ValueError, match="method 'wanda' does not apply"):
        slimops.Recipe("int4", overrides={"x": ("int8", "wanda")})
    with pytest.raises(ValueError, match="give the method in the Recipe"):
        slimops.compress(model, slimops.Recipe("int8"), method="gptq")
    assert "gptq" in repr(recipe)


def tiny_llama(hidden=96, inter=192, layers=2):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=128, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return cfg, LlamaForCausalLM(cfg).eval()


LLAMA_CASES = [
    ("int4-g32", "rtn", "gptq"),
    ("int4-g32", "rtn", "awq"),
    ("2:4", "magnitude", "sparsegpt"),
    ("2:4", "magnitude", "wanda"),
    ("lowrank:0.5", "svd", "svd-llm"),
    ("lowrank:0.5", "svd", "asvd"),
]


@pytest.mark.parametrize("recipe,baseline,method", LLAMA_CASES)
def test_tiny_llama_blockwise_calibration(recipe, baseline, method):
    _, base = tiny_llama()
    calib = [torch.randint(0, 128, (64,), generator=torch.Generator().manual_seed(i)) for i in range(6)]
    ids = torch.cat(calib[:4]).reshape(2, -1)  # the calibration tokens themselves
    with torch.no_grad():
        ref = base(ids).logits
        plain = slimops.compress(copy.deepcopy(base), recipe, method=baseline)
        ours = slimops.compress(copy.deepcopy(base), recipe, method=method, calib=calib, progress=False)
        e_plain, e_ours = rel(plain(ids).logits, ref), rel(ours(ids).logits, ref)
    assert type(ours.lm_head) is nn.Linear
    kinds = {type(m).__name__ for m in ours.model.layers.modules()}
    assert "Linear" not in kinds
    # Random models carry little structure for Wanda/ASVD to exploit: they must not be worse by much.
    bound = 1.1 if method in ("wanda", "asvd", "awq") else 0.95
    assert e_ours < bound * e_plain, (e_ours, e_plain)


def test_tiny_llama_texts_with_tokenizer_and_lm_head_outside_blocks():
    _, base = tiny_llama(layers=1)

    class Tok:
        def __call__(self, text, return_tensors=None):
            return {"input_ids": torch.tensor([[ord(c) % 128 for c in text]])}

    m = slimops.compress(copy.deepcopy(base), "int8", method="gptq", calib=["hello world, " * 8], tokenizer=Tok(),
                         skip=(), progress=False)
    assert isinstance(m.lm_head, slimops.QuantLinear) and m.lm_head.perm is not None


@pytest.mark.parametrize("recipe,method", [("int4-g32", "gptq"), ("int4-g32+lr8", "awq"), ("int4+2:4-g64", "sparsegpt"),
                                           ("lowrank:0.5", "svd-llm")])
def test_calibrated_save_load_round_trip(recipe, method, tmp_path):
    from transformers import LlamaForCausalLM

    cfg, base = tiny_llama(hidden=128, inter=256) if "2:4" in recipe else tiny_llama()
    calib = [torch.randint(0, 128, (48,), generator=torch.Generator().manual_seed(i)) for i in range(3)]
    m = slimops.compress(copy.deepcopy(base), recipe, method=method, calib=calib, progress=False)
    path = tmp_path / "m.slimops.safetensors"
    slimops.save(m, path)
    torch.manual_seed(1)
    fresh = slimops.load(LlamaForCausalLM(cfg).eval(), path)
    ids = torch.randint(0, 128, (1, 20))
    with torch.no_grad():
        assert torch.equal(fresh(ids).logits, m(ids).logits)


def test_torch_compile_fullgraph_on_calibrated_model(gen0):
    torch._dynamo.reset()
    base = two_layer_mlp(gen0)
    x = structured_inputs(64, 128, gen0)
    model = slimops.compress(copy.deepcopy(base), slimops.Recipe("int4-g32", method="gptq", overrides={"2": ("2:4", "sparsegpt")}),
                             calib=[x], skip=(), progress=False)
    with torch.no_grad():
        eager = model(x[:5])
        compiled = torch.compile(model, fullgraph=True)(x[:5])
    assert rel(compiled, eager) < 1e-4


def test_awq_clip_with_full_hessian_beats_diagonal_blocks(gen0):
    from slimops.compress.awq import _output_error, clip_weight, fake_quant

    # Correlated inputs: the groups' errors interact through the off-diagonal blocks of H.
    x = structured_inputs(1024, 256, gen0)
    w = torch.randn(64, 256, generator=gen0) / 16
    st = InputStats(256, "cpu")
    st.add(x)
    H = st.hessian().float()
    err = {}
    for sweeps in (0, 2):
        c = clip_weight(w, st, 4, 32, True, sweeps=sweeps)
        err[sweeps] = _output_error(w - fake_quant(c, 4, 32, True), H).item()
    noclip = _output_error(w - fake_quant(w, 4, 32, True), H).item()
    assert err[0] <= noclip and err[2] < 0.95 * err[0], (noclip, err)


def test_awq_ties_o_proj_scales_across_query_heads_under_gqa():
    from slimops.compress.awq import _fold_into_previous, scale_groups

    _, m = tiny_llama(layers=1)  # 4 query heads on 2 kv heads
    block = m.model.layers[0]
    groups = scale_groups(block)
    prev, names, tie = groups[-1]
    assert prev is block.self_attn.v_proj and names == ["self_attn.o_proj"] and tie is not None
    assert tie.shape == (96,) and tie.max().item() == 47  # 48 v_proj outputs, each read by 2 heads
    ids = torch.randint(0, 128, (1, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = m(ids).logits
        s = torch.rand(48, generator=torch.Generator().manual_seed(1)) + 0.5
        _fold_into_previous(prev, s)
        block.self_attn.o_proj.weight.mul_(s[tie][None])
        torch.testing.assert_close(m(ids).logits, ref, rtol=1e-4, atol=1e-5)  # the fold is exact


def test_awq_scores_qkv_and_gate_up_scales_on_the_attention_and_mlp_outputs(monkeypatch):
    from slimops.compress import awq

    inspected = []
    orig = awq._ModuleError.__init__

    def init(self, parent, lins, calls):
        inspected.append((type(parent).__name__, len(lins), len(calls)))
        orig(self, parent, lins, calls)

    monkeypatch.setattr(awq._ModuleError, "__init__", init)
    _, base = tiny_llama()
    calib = [torch.randint(0, 128, (64,), generator=torch.Generator().manual_seed(i)) for i in range(3)]
    slimops.compress(copy.deepcopy(base), "int4-g32", method="awq", calib=calib, progress=False)
    # Per block: q/k/v replayed through self_attn, gate/up through the MLP, on every calibration sample.
    assert inspected == [("LlamaAttention", 3, 3), ("LlamaMLP", 2, 3)] * 2


# Every module family slimops.compress swaps in, each in a whole decoder.
COMPILE_RECIPES = ["int8", "int4-g32", "int4-g32+lr8", "2:4", "int4+2:4-g64", "lowrank:0.5"]


@pytest.mark.parametrize("recipe", COMPILE_RECIPES)
@pytest.mark.parametrize("device", devices())
def test_compressed_llama_compiles_fullgraph(recipe, device):
    """torch.compile(fullgraph=True) of a whole compressed Llama (no graph
    break in any slimops module) gives the eager logits, on CPU (float32)
    and CUDA (bf16, where the CUDA kernels run)."""
    torch._dynamo.reset()
    _, base = tiny_llama(hidden=128, inter=256)
    model = slimops.compress(copy.deepcopy(base), recipe, progress=False)
    if device == "cuda":
        model = model.to(device="cuda", dtype=torch.bfloat16)
    ids = torch.randint(0, 128, (2, 24), generator=torch.Generator().manual_seed(5)).to(device)
    with torch.no_grad():
        eager = model(ids).logits.float()
        compiled = torch.compile(model, fullgraph=True)(ids).logits.float()
    assert rel(compiled, eager) < (1e-4 if device == "cpu" else 1e-2)
