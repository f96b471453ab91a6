#!/usr/bin/python3
"""PyTorch side of bench_train.sh: the same DeepSeek-V3-shaped model (tests/reference/model_ref.py, float32),
forward + backward + AdamW per step, `--threads` intra-op threads. Prints one JSON line with tokens_per_s."""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import model_ref as R  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = json.load(open(a.config))
    params = R.init_params(cfg, seed=1, matrix_std=0.02)
    p = {k: v.to(torch.float32).clone().requires_grad_(not k.endswith("e_score_correction_bias")) for k, v in params.items()}
    opt = torch.optim.AdamW([t for t in p.values() if t.requires_grad], lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    V = cfg["vocab_size"]
    times = []
    for step in range(a.steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        for b in range(a.batch):
            tokens = torch.randint(0, V, (a.seq_len,), generator=torch.Generator().manual_seed(step * 100 + b)).tolist()
            loss, _, _ = R.loss_fn(R.forward(p, cfg, tokens), tokens, 0.3)
            (loss / a.batch).backward()
        torch.nn.utils.clip_grad_norm_([t for t in p.values() if t.requires_grad], 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    steady = times[2:] if len(times) > 3 else times
    tps = a.batch * (a.seq_len - 1) / statistics.median(steady)
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": a.threads, "tokens_per_s": tps}))


if __name__ == "__main__":
    main()
