#!/usr/bin/python3
"""Ten AdamW steps on the tiny V3 fixture, in PyTorch (float64), for the C++ optimizer test.

Writes tests/data/parity/v3/adamw.json: hyper-parameters and the loss before each step. Conventions (what the
C++ trainer must do to match): decoupled weight decay only on 2-D weight matrices (none on norms, biases or the
router's e_score_correction_bias, which is not trained by gradient at all); global-norm gradient clipping before
the update; torch.optim.AdamW semantics (bias-corrected moments, eps added to sqrt(v_hat)).
Run: /usr/bin/python3 tests/reference/make_adamw_fixture.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_ref as R  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "data", "parity", "v3")


def main():
    cfg = json.load(open(os.path.join(FIX, "config.json")))
    fx = json.load(open(os.path.join(FIX, "fixture.json")))
    tokens, lam = fx["tokens"], fx["mtp_lambda"]
    p = R.to_f64(R.read_safetensors(os.path.join(FIX, "model.safetensors")), requires_grad=True)
    hp = {"lr": 3e-3, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "clip_norm": 1.0, "steps": 10}
    decay = [t for k, t in p.items() if t.requires_grad and t.dim() == 2]
    no_decay = [t for k, t in p.items() if t.requires_grad and t.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"])
    losses, norms = [], []
    for _ in range(hp["steps"]):
        opt.zero_grad()
        loss, _, _ = R.loss_fn(R.forward(p, cfg, tokens), tokens, lam)
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(decay + no_decay, hp["clip_norm"])))
        losses.append(loss.item())
        opt.step()
    out = {"hyper_parameters": hp, "mtp_lambda": lam, "losses": losses, "grad_norms_before_clip": norms,
           "notes": "loss before each of the 10 AdamW steps on fixture tokens; float64 PyTorch"}
    with open(os.path.join(FIX, "adamw.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("losses:", " ".join(f"{x:.5f}" for x in losses))


if __name__ == "__main__":
    main()
