#!/usr/bin/python3
"""GRPO loss and gradient on the tiny V3 fixture model, in PyTorch (float64), for tests/unit/test_rl_grpo.cpp.

Written from /work/shared/reference/deepseek.md §5.1 (DeepSeekMath eq. 3, trl's GRPOTrainer conventions), independent
of the C++ code. Model: tests/data/parity/v3 (config.json + model.safetensors), run WITHOUT its MTP module.

Batch: 2 groups x 3 sequences (prompt + completion tokens). Rewards per sequence; advantages normalised per group:
A = (r - mean) / (std + 1e-4), std Bessel-corrected (trl). Per completion token t (row t predicts token t+1):
  logp   = log_softmax(logits[t])[tokens[t+1]]     (each sequence run alone, positions from 0)
  ratio  = exp(logp - old_logp)                     (old_logp = detached logp + fixed noise, so ratios != 1)
  surr   = min(ratio * A, clamp(ratio, 1 - eps_low, 1 + eps_high) * A)
  k3     = exp(ref_logp - logp) - (ref_logp - logp) - 1
  loss_t = -(surr - beta * k3)
Averaging: "token": sum over all completion tokens / their number; "sequence": mean over sequences of the per-
sequence token mean. Config A (token, beta 0.04, eps 0.2 / 0.28): full gradients in grads_token.safetensors.
Config B (sequence, beta 0, eps 0.2): loss and the gradients of a few tensors in grads_sequence.safetensors.
Run: /usr/bin/python3 tests/reference/make_grpo_fixture.py   (needs Debian python3-torch: scripts/setup.sh --with-torch)
"""
import json
import os
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_ref as R  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "data", "parity", "v3")
OUT = os.path.join(HERE, "..", "data", "grpo")
SUBSET = ["lm_head.weight", "model.embed_tokens.weight", "model.layers.0.self_attn.kv_b_proj.weight",
          "model.layers.2.mlp.gate.weight"]


def token_logps(p, cfg, tokens):
    logits = R.deepseek_forward(p, cfg, tokens, with_mtp=False)["logits"]
    lp = torch.log_softmax(logits, dim=-1)
    tok = torch.tensor(tokens, dtype=torch.long)
    return lp[:-1].gather(1, tok[1:, None])[:, 0]  # row t predicts token t+1, rows 0..T-2


def grpo_loss(p, cfg, seqs, conf):
    per_seq = []
    stats = {"kl_sum": 0.0, "n": 0}
    for s in seqs:
        lp = token_logps(p, cfg, s["tokens"])[s["prompt_len"] - 1:]
        old = torch.tensor(s["old_logp"][s["prompt_len"] - 1:len(s["tokens"]) - 1], dtype=R.DT)
        ref = torch.tensor(s["ref_logp"][s["prompt_len"] - 1:len(s["tokens"]) - 1], dtype=R.DT)
        A = s["advantage"]
        ratio = torch.exp(lp - old)
        surr = torch.min(ratio * A, torch.clamp(ratio, 1 - conf["eps_low"], 1 + conf["eps_high"]) * A)
        k3 = torch.exp(ref - lp) - (ref - lp) - 1
        per_tok = -(surr - conf["beta"] * k3)
        per_seq.append(per_tok)
        stats["kl_sum"] += float(k3.sum())
        stats["n"] += len(per_tok)
    if conf["averaging"] == "token":
        loss = torch.cat(per_seq).sum() / sum(len(x) for x in per_seq)
    else:
        loss = torch.stack([x.mean() for x in per_seq]).mean()
    return loss, stats["kl_sum"] / stats["n"]


def main():
    cfg = json.load(open(os.path.join(MODEL, "config.json")))
    p32 = R.read_safetensors(os.path.join(MODEL, "model.safetensors"))
    g = torch.Generator().manual_seed(20261201)
    V = cfg["vocab_size"]
    seqs = []
    rewards = [[1.0, 0.1, 0.0], [1.0, 1.0, 0.1]]
    for grp in range(2):
        r = torch.tensor(rewards[grp], dtype=R.DT)
        adv = (r - r.mean()) / (r.std(unbiased=True) + 1e-4)
        prompt = torch.randint(0, V, (5 + grp,), generator=g).tolist()
        for i in range(3):
            comp = torch.randint(0, V, (3 + 2 * i,), generator=g).tolist()
            seqs.append({"group": grp, "tokens": prompt + comp, "prompt_len": len(prompt), "reward": rewards[grp][i],
                         "advantage": float(adv[i])})
    # old/ref log-probabilities: the current ones, shifted by fixed noise (prompt rows hold 0: unused)
    p0 = R.to_f64(p32)
    with torch.no_grad():
        for s in seqs:
            T = len(s["tokens"])
            lp = token_logps(p0, cfg, s["tokens"])
            old = lp + 0.25 * torch.randn(T - 1, generator=g, dtype=R.DT)
            ref = lp + 0.3 * torch.randn(T - 1, generator=g, dtype=R.DT)
            s["old_logp"] = [0.0 if t < s["prompt_len"] - 1 else float(old[t]) for t in range(T - 1)] + [0.0]
            s["ref_logp"] = [0.0 if t < s["prompt_len"] - 1 else float(ref[t]) for t in range(T - 1)] + [0.0]
    confs = {"token": {"averaging": "token", "beta": 0.04, "eps_low": 0.2, "eps_high": 0.28},
             "sequence": {"averaging": "sequence", "beta": 0.0, "eps_low": 0.2, "eps_high": 0.2}}
    os.makedirs(OUT, exist_ok=True)
    results = {}
    for name, conf in confs.items():
        p = R.to_f64(p32, requires_grad=True)
        loss, kl = grpo_loss(p, cfg, seqs, conf)
        loss.backward()
        grads = OrderedDict()
        for k, v in p.items():
            if name == "sequence" and k not in SUBSET:
                continue
            grads[k] = (v.grad if v.grad is not None else torch.zeros_like(v)).to(torch.float32)
        R.write_safetensors(os.path.join(OUT, f"grads_{name}.safetensors"), grads)
        results[name] = {**conf, "loss": float(loss), "kl": kl}
        print(f"{name}: loss {float(loss):.8f} kl {kl:.6f}")
    fx = {"model": "../parity/v3", "sequences": seqs, "configs": results,
          "advantage_formula": "(r - mean) / (std_bessel + 1e-4) per group of 3",
          "tolerances": {"loss": "1e-5 relative", "grads": "max|a-b| / max|b| <= 1e-3 per tensor"},
          "generator": "tests/reference/make_grpo_fixture.py"}
    with open(os.path.join(OUT, "fixture.json"), "w") as f:
        json.dump(fx, f, indent=1)


if __name__ == "__main__":
    main()
