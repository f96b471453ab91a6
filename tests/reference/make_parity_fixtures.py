#!/usr/bin/python3
"""Regenerates the model-parity fixtures in tests/data/parity/<name>/ from the PyTorch reference (model_ref.py).

    /usr/bin/python3 tests/reference/make_parity_fixtures.py

Deterministic: weights come from numpy's PCG64 with fixed seeds, tokens likewise. Each fixture directory holds
config.json, model.safetensors (float32, HF names), fixture.json, logits.bin, grads.safetensors, routing.json (MoE
models) and mtp_logits.bin (models with MTP). See tests/reference/README.md.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
from collections import OrderedDict

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model_ref as R  # noqa: E402

OUT_ROOT = os.path.normpath(os.path.join(HERE, "..", "data", "parity"))
N_TOKENS = 12
MTP_LAMBDA = 0.3
SIZE_BUDGET = 2_500_000  # 2.0 MB before the v32 (DSA) fixture
# A float32 implementation must reproduce the top-k selection: the k-th and (k+1)-th candidate scores (and the kept /
# dropped group scores) must be at least this far apart, else the seed is rejected.
MIN_ROUTING_MARGIN = 2e-4

YARN_V3 = {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
           "original_max_position_embeddings": 4096, "type": "yarn"}


def deepseek_common(model_type: str) -> dict:
    cls = {"deepseek_v3": "DeepseekV3", "deepseek_v32": "DeepseekV32"}.get(model_type, "DeepseekV2")
    arch = cls + "ForCausalLM"
    return OrderedDict([
        ("architectures", [arch]),
        ("attention_bias", False),
        ("attention_dropout", 0.0),
        ("auto_map", {"AutoConfig": f"configuration_deepseek.{cls}Config",
                      "AutoModel": f"modeling_deepseek.{cls}Model",
                      "AutoModelForCausalLM": f"modeling_deepseek.{cls}ForCausalLM"}),
        ("aux_loss_alpha", 0.001),
        ("bos_token_id", 0),
        ("eos_token_id", 1),
        ("ep_size", 1),
        ("first_k_dense_replace", 1),
        ("hidden_act", "silu"),
        ("hidden_size", 32),
        ("initializer_range", 0.02),
        ("intermediate_size", 64),
        ("kv_lora_rank", 16),
        ("max_position_embeddings", 163840),
        ("model_type", model_type),
        ("moe_intermediate_size", 8),
        ("moe_layer_freq", 1),
        ("n_group", 4),
        ("n_routed_experts", 16),
        ("n_shared_experts", 1),
        ("norm_topk_prob", True),
        ("num_attention_heads", 4),
        ("num_experts_per_tok", 4),
        ("num_hidden_layers", 3),
        ("num_key_value_heads", 4),
        ("pretraining_tp", 1),
        ("q_lora_rank", 24),
        ("qk_nope_head_dim", 8),
        ("qk_rope_head_dim", 8),
        ("rms_norm_eps", 1e-6),
        ("rope_scaling", dict(YARN_V3)),
        ("rope_theta", 10000),
        ("routed_scaling_factor", 2.5),
        ("scoring_func", "sigmoid"),
        ("seq_aux", True),
        ("tie_word_embeddings", False),
        ("topk_group", 2),
        ("topk_method", "noaux_tc"),
        ("torch_dtype", "float32"),
        ("transformers_version", "4.46.3"),
        ("use_cache", True),
        ("v_head_dim", 8),
        ("vocab_size", 128),
    ])


def cfg_v3() -> dict:
    c = deepseek_common("deepseek_v3")
    c["num_nextn_predict_layers"] = 1
    return OrderedDict(sorted(c.items()))


def cfg_v32() -> dict:
    """DeepSeek-V3.2 (DSA): V3 plus a lightning indexer per layer. top-k 4 of 12 positions, so rows 4..11 attend
    to a real subset; 8 indexer heads of 16 dims (a power of two, for the Hadamard rotation), MTP included."""
    c = deepseek_common("deepseek_v32")
    c.update(num_hidden_layers=2, num_nextn_predict_layers=1, index_n_heads=8, index_head_dim=16, index_topk=4,
             vocab_size=64, n_routed_experts=8, num_experts_per_tok=2)
    return OrderedDict(sorted(c.items()))


def cfg_v2_lite() -> dict:
    c = deepseek_common("deepseek_v2")
    c.update(q_lora_rank=None, scoring_func="softmax", topk_method="greedy", n_group=1, topk_group=1,
             n_routed_experts=8, num_experts_per_tok=3, n_shared_experts=2, norm_topk_prob=False,
             routed_scaling_factor=1.0, num_hidden_layers=2)
    c["rope_scaling"] = dict(YARN_V3, mscale=0.707, mscale_all_dim=0.707)
    return c


def cfg_v2() -> dict:
    c = deepseek_common("deepseek_v2")
    c.update(q_lora_rank=24, scoring_func="softmax", topk_method="group_limited_greedy", n_group=4, topk_group=2,
             n_routed_experts=16, num_experts_per_tok=4, n_shared_experts=2, norm_topk_prob=False,
             routed_scaling_factor=16.0, num_hidden_layers=2)
    c["rope_scaling"] = dict(YARN_V3, mscale=1.0, mscale_all_dim=0.707)
    return c


def cfg_qwen2() -> dict:
    return OrderedDict([
        ("architectures", ["Qwen2ForCausalLM"]),
        ("attention_dropout", 0.0),
        ("bos_token_id", 0),
        ("eos_token_id", 1),
        ("hidden_act", "silu"),
        ("hidden_size", 32),
        ("initializer_range", 0.02),
        ("intermediate_size", 64),
        ("max_position_embeddings", 32768),
        ("max_window_layers", 2),
        ("model_type", "qwen2"),
        ("num_attention_heads", 4),
        ("num_hidden_layers", 2),
        ("num_key_value_heads", 2),
        ("rms_norm_eps", 1e-6),
        ("rope_scaling", None),
        ("rope_theta", 1000000.0),
        ("sliding_window", 32768),
        ("tie_word_embeddings", True),
        ("torch_dtype", "float32"),
        ("transformers_version", "4.46.3"),
        ("use_cache", True),
        ("use_sliding_window", False),
        ("vocab_size", 128),
    ])


def cfg_llama() -> dict:
    return OrderedDict([
        ("architectures", ["LlamaForCausalLM"]),
        ("attention_bias", False),
        ("attention_dropout", 0.0),
        ("bos_token_id", 0),
        ("eos_token_id", 1),
        ("head_dim", 8),
        ("hidden_act", "silu"),
        ("hidden_size", 32),
        ("initializer_range", 0.02),
        ("intermediate_size", 64),
        ("max_position_embeddings", 131072),
        ("mlp_bias", False),
        ("model_type", "llama"),
        ("num_attention_heads", 4),
        ("num_hidden_layers", 2),
        ("num_key_value_heads", 2),
        ("pretraining_tp", 1),
        ("rms_norm_eps", 1e-5),
        # original_max_position_embeddings 256 (not Llama 3's 8192) so that with head_dim 8 and theta 5e5 the three
        # llama3 branches all occur: pair 0 kept, pair 1 interpolated (wavelength 167 in [64, 256]), pairs 2-3 / 8.
        ("rope_scaling", {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                          "original_max_position_embeddings": 256, "rope_type": "llama3"}),
        ("rope_theta", 500000.0),
        ("tie_word_embeddings", False),
        ("torch_dtype", "float32"),
        ("transformers_version", "4.46.3"),
        ("use_cache", True),
        ("vocab_size", 128),
    ])


FIXTURES = [("v3", cfg_v3, 1000), ("v2_lite", cfg_v2_lite, 2000), ("v2", cfg_v2, 3000), ("qwen2", cfg_qwen2, 4000),
            ("llama", cfg_llama, 5000), ("v32", cfg_v32, 6000)]


def dump_json(obj, path: str) -> None:
    """Indented JSON with innermost lists of numbers kept on one line. Non-finite floats (e.g. an infinite
    routing margin when there is a single group) become null: strict JSON parsers reject Infinity/NaN."""
    def finite(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: finite(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [finite(v) for v in o]
        return o
    text = json.dumps(finite(obj), indent=1, allow_nan=False)
    text = re.sub(r"\[\s*([-0-9.e, \n]*?)\s*\]",
                  lambda mm: "[" + ", ".join(x.strip() for x in mm.group(1).split(",") if x.strip()) + "]", text)
    with open(path, "w") as f:
        f.write(text + "\n")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item() / b.abs().max().item()


def make_tokens(seed: int, V: int) -> list:
    rng = np.random.default_rng(seed)
    return [int(t) for t in rng.integers(2, V, size=N_TOKENS)]


def routing_summary(trace: dict) -> dict:
    moe_rows = [r for k, r in trace.items() if not k.endswith(".indexer")]
    s = {"min_expert_margin": min(r["expert_margin"] for r in moe_rows),
         "min_group_margin": min((r.get("group_margin", float("inf")) for r in moe_rows), default=float("inf")),
         "bias_changed": 0, "mask_zero_changed": 0, "groups_changed": 0, "bias_changed_per_layer": {},
         "groups_changed_per_layer": {}}
    for layer, r in trace.items():
        if layer.endswith(".indexer"):
            continue
        L = layer.split(".")[2]
        if "selected_without_bias" in r:
            s["bias_changed_per_layer"][L] = sum(1 for a, b in zip(r["selected"], r["selected_without_bias"]) if a != b)
        if "selected_without_groups" in r:
            s["groups_changed_per_layer"][L] = sum(
                1 for a, b in zip(r["selected"], r["selected_without_groups"]) if a != b)
        for key, out in (("selected_without_bias", "bias_changed"), ("selected_mask_zero", "mask_zero_changed"),
                         ("selected_without_groups", "groups_changed")):
            if key in r:
                s[out] += sum(1 for a, b in zip(r["selected"], r[key]) if a != b)
    return s


def build(name: str, make_cfg, base_seed: int) -> dict:
    cfg = json.loads(json.dumps(make_cfg()))  # plain JSON types, as the C++ will read them
    is_ds = cfg["model_type"].startswith("deepseek")
    is_moe = is_ds and (cfg.get("n_routed_experts") or 0) > 0
    # Try seeds in order until the routing is robust to float32 rounding (dense models take the first).
    for attempt in range(50):
        seed = base_seed + attempt
        params32 = R.init_params(cfg, seed)
        tokens = make_tokens(seed + 7, cfg["vocab_size"])
        p64 = R.to_f64(params32)
        trace = {}
        with torch.no_grad():
            R.forward(p64, cfg, tokens, trace)
        if not is_moe:
            break
        rs = routing_summary(trace)
        ok = min(rs["min_expert_margin"], rs["min_group_margin"]) >= MIN_ROUTING_MARGIN
        if cfg.get("topk_method") == "noaux_tc":
            # the bias must matter, and the fixture must not depend on the masking value (-inf vs HF's 0.0)
            ok = ok and rs["bias_changed"] > 0 and rs["mask_zero_changed"] == 0
        if (cfg.get("n_group") or 1) > 1 and cfg.get("topk_method") != "greedy":
            ok = ok and rs["groups_changed"] > 0  # the group restriction must matter too
        index_margins = [r["index_margin"] for k, r in trace.items() if k.endswith(".indexer")]
        if index_margins:  # DSA: the indexer's top-k must be robust to float32 rounding too
            ok = ok and min(index_margins) >= MIN_ROUTING_MARGIN
            rs["min_index_margin"] = min(index_margins)
        if ok:
            break
        print(f"  [{name}] seed {seed} rejected: {rs}")
    else:
        raise RuntimeError(f"{name}: no acceptable seed")

    # ---- self-checks
    checks = {"causality_max_abs": R.check_causality(cfg, p64, tokens)}
    if is_ds:
        checks["absorbed_vs_naive_mla_rel"] = R.check_absorbed_mla(cfg, p64)
    if cfg["model_type"] == "deepseek_v32":
        import dsa_ref
        checks["hadamard_rotation_changes_logits_rel"] = dsa_ref.check_hadamard_invariance(cfg, p64, tokens)
        checks["sparse_vs_dense_selection_logits_rel"] = dsa_ref.check_sparsity_matters(cfg, p64, tokens)
    checks["finite_difference_rel"] = R.check_finite_differences(cfg, p64, tokens, MTP_LAMBDA)
    f32 = R.float32_agreement(cfg, params32, tokens, MTP_LAMBDA)
    assert f32["same_routing"], f"{name}: a float32 run routes differently"
    assert f32["logits"] < 1e-5 and f32["grads_worst_tensor"] < 1e-4, f"{name}: float32 run too far off: {f32}"
    checks["float32_run_vs_float64"] = f32

    # ---- forward + backward (float64)
    pg = R.to_f64(params32, requires_grad=True)
    trace = {}
    out = R.forward(pg, cfg, tokens, trace)
    loss, loss_main, loss_mtp = R.loss_fn(out, tokens, MTP_LAMBDA)
    loss.backward()

    # ---- does the rope scaling matter at all on these 12 positions? (it must, to be tested)
    scaling_effect = None
    if cfg.get("rope_scaling"):
        c0 = dict(cfg, rope_scaling=None)
        with torch.no_grad():
            scaling_effect = rel(R.forward(p64, c0, tokens)["logits"], out["logits"].detach())
        assert scaling_effect > 1e-2, f"{name}: rope scaling has no visible effect ({scaling_effect})"
    dim = cfg["qk_rope_head_dim"] if is_ds else (cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"])
    inv_default = R.default_inv_freq(dim, cfg["rope_theta"])
    inv_used, cos_sin_factor = R.rope_inv_freq(cfg, dim)
    changed_pairs = [j for j in range(dim // 2) if abs(inv_used[j].item() - inv_default[j].item()) > 1e-15]
    if cfg.get("rope_scaling"):
        # both yarn and llama3 must keep the fastest pair and change at least one other
        assert changed_pairs and 0 not in changed_pairs, f"{name}: rope scaling changes no frequency"

    # ---- write
    d = os.path.join(OUT_ROOT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    nbytes = 0
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    nbytes += R.write_safetensors(os.path.join(d, "model.safetensors"), params32)
    grads = OrderedDict()
    for k, v in pg.items():
        grads[k] = (v.grad if v.grad is not None else torch.zeros_like(v)).to(torch.float32)
    nbytes += R.write_safetensors(os.path.join(d, "grads.safetensors"), grads,
                                  {"loss": repr(loss.item()), "note": "d loss / d parameter, float32"})
    logits = out["logits"].detach().to(torch.float32).contiguous()
    assert logits.shape == (N_TOKENS, cfg["vocab_size"])
    logits.numpy().astype("<f4").tofile(os.path.join(d, "logits.bin"))
    files = ["config.json", "model.safetensors", "fixture.json", "logits.bin", "grads.safetensors"]
    if out["mtp_logits"] is not None:
        ml = out["mtp_logits"].detach().to(torch.float32).contiguous()
        assert ml.shape == (N_TOKENS - 1, cfg["vocab_size"])
        ml.numpy().astype("<f4").tofile(os.path.join(d, "mtp_logits.bin"))
        files.append("mtp_logits.bin")
    rsum = None
    if is_moe:
        rsum = routing_summary(trace)
        nL = cfg["num_hidden_layers"]
        routing = OrderedDict()
        routing["note"] = ("selected expert ids (sorted) per MoE layer, per token; layer index num_hidden_layers is "
                           "the MTP block (its rows are MTP positions 0..T-2)")
        routing["mtp_layer"] = nL if (cfg.get("num_nextn_predict_layers") or 0) else None
        routing["layers"] = OrderedDict()
        for key, r in trace.items():
            if key.endswith(".indexer"):
                routing["layers"][key] = OrderedDict(selected=r["selected"], min_index_margin=r["index_margin"])
                continue
            L = key.split(".")[2]
            entry = OrderedDict(selected=r["selected"])
            for extra in ("selected_without_bias", "selected_without_groups"):
                if extra in r:
                    entry[extra] = r[extra]
            entry["min_expert_margin"] = r["expert_margin"]
            if "group_margin" in r:
                entry["min_group_margin"] = r["group_margin"]
            routing["layers"][L] = entry
        routing["summary"] = rsum
        dump_json(routing, os.path.join(d, "routing.json"))
        files.append("routing.json")

    notes = [
        "Reference: tests/reference/model_ref.py (float64, outputs cast to float32).",
        f"loss = mean CE(logits[0..{N_TOKENS - 2}], tokens[1..{N_TOKENS - 1}])"
        + (f" + mtp_lambda * mean CE(mtp_logits[0..{N_TOKENS - 3}], tokens[2..{N_TOKENS - 1}])" if loss_mtp is not None
           else "") + ".",
        "logits.bin: little-endian float32 [n_tokens x vocab_size], row t = prediction of token t+1.",
        "grads.safetensors: float32 d loss / d parameter for every tensor of model.safetensors (same names/order).",
    ]
    if is_ds:
        notes.append("MLA naive form, interleaved (adjacent-pair) RoPE on the rope dims, YaRN per config.")
    else:
        notes.append("Half-split (rotate_half) RoPE, GQA query head i uses kv head i // (heads / kv_heads).")
    if cfg["model_type"] == "deepseek_v32":
        notes.append("DSA (tests/reference/dsa_ref.py): per layer the lightning indexer (half-split RoPE on its first "
                     "qk_rope_head_dim dims, LayerNorm key, Hadamard rotation, ReLU, per-head weights) keeps the "
                     f"min(index_topk={cfg['index_topk']}, t+1) best positions s <= t; MLA attends to those only. "
                     "routing.json holds the selected positions per layer under '<layer>.self_attn.indexer'. The "
                     "indexer tensors get ZERO gradient from the LM loss (top-k is not differentiable).")
    if is_moe:
        notes.append("Router top-k is not differentiable: gradients flow through the gate values only; unselected "
                     "experts have zero gradient.")
    if cfg.get("topk_method") == "noaux_tc":
        notes.append("e_score_correction_bias has no gradient: grads.safetensors holds ZEROS for it. "
                     f"The bias changed the expert selection for {rsum['bias_changed']} (layer, token) pairs "
                     f"(per layer: {rsum['bias_changed_per_layer']}).")
    if loss_mtp is not None:
        nL = cfg["num_hidden_layers"]
        notes.append(f"MTP (layer {nL}): x_i = eh_proj([enorm(E(t_(i+1))) | hnorm(h_i)]) (embedding first), h = main "
                     "hidden before model.norm (gradient flows back into the main model), decoder block at positions "
                     "0..T-2, shared_head.norm, shared_head.head. mtp_logits.bin: float32 [(n_tokens-1) x vocab], row "
                     f"i predicts token i+2. model.layers.{nL}.embed_tokens.weight and shared_head.head.weight are "
                     "copies of the main embedding / lm_head but separate parameters: their gradients hold only the "
                     "MTP path (a tied implementation must compare against the sum of both gradients).")
    if cfg.get("tie_word_embeddings"):
        notes.append("tie_word_embeddings: no lm_head.weight tensor; the embed_tokens gradient includes the head use.")

    fixture = OrderedDict([
        ("name", name),
        ("model_type", cfg["model_type"]),
        ("tokens", tokens),
        ("n_tokens", N_TOKENS),
        ("vocab_size", cfg["vocab_size"]),
        ("mtp_lambda", MTP_LAMBDA),
        ("loss", loss.item()),
        ("loss_main", loss_main.item()),
        ("loss_mtp", None if loss_mtp is None else loss_mtp.item()),
        ("seed", seed),
        ("files", files),
        ("tolerances", {"metric": "max|a-b| / max|b|", "logits": 1e-4, "mtp_logits": 1e-4, "grads": 1e-3,
                        "loss": 1e-4}),
        ("debug", OrderedDict([
            ("rope_inv_freq", inv_used.tolist()),
            ("rope_inv_freq_unscaled", inv_default.tolist()),
            ("rope_pairs_changed_by_scaling", changed_pairs),
            ("rope_cos_sin_factor", cos_sin_factor),
            ("attention_softmax_scale", R.mla_softmax_scale(cfg) if is_ds else
             (cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]) ** -0.5),
            ("rope_scaling_effect_on_logits_rel", scaling_effect),
            ("routing", rsum),
            ("self_checks", checks),
        ])),
        ("notes", " ".join(notes)),
    ])
    dump_json(fixture, os.path.join(d, "fixture.json"))

    # ---- read back what was written
    back = R.read_safetensors(os.path.join(d, "model.safetensors"))
    assert list(back) == list(params32) and all(torch.equal(back[k], params32[k]) for k in back)
    gback = R.read_safetensors(os.path.join(d, "grads.safetensors"))
    assert list(gback) == list(params32) and all(gback[k].shape == params32[k].shape for k in gback)
    lb = np.fromfile(os.path.join(d, "logits.bin"), dtype="<f4").reshape(N_TOKENS, cfg["vocab_size"])
    assert np.array_equal(lb, logits.numpy())

    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    n_params = sum(v.numel() for v in params32.values())
    return {"name": name, "params": n_params, "bytes": size, "loss": loss.item(), "routing": rsum, "checks": checks,
            "seed": seed, "changed_pairs": changed_pairs, "scaling_effect": scaling_effect}


def main():
    torch.set_num_threads(1)  # determinism of float64 reductions is not needed (float32 output), but keep it simple
    os.makedirs(OUT_ROOT, exist_ok=True)
    print("rope norm self-check:", R.check_rope_norm())
    results = [build(n, f, s) for n, f, s in FIXTURES]
    total = 0
    print(f"{'fixture':8s} {'params':>8s} {'bytes':>9s} {'loss':>9s}  notes")
    for r in results:
        total += r["bytes"]
        extra = f"seed {r['seed']}; rope pairs changed {r['changed_pairs']}"
        if r["scaling_effect"] is not None:
            extra += f"; rope scaling moves logits by {r['scaling_effect']:.3g} (rel)"
        if r["routing"]:
            rs = r["routing"]
            extra += (f"; routing margins expert {rs['min_expert_margin']:.2e} group {rs['min_group_margin']:.2e}; "
                      f"bias changed {rs['bias_changed']} {rs['bias_changed_per_layer']}; "
                      f"groups changed {rs['groups_changed']} {rs['groups_changed_per_layer']}")
        print(f"{r['name']:8s} {r['params']:8d} {r['bytes']:9d} {r['loss']:9.5f}  {extra}")
        print(f"{'':8s} self-checks: {r['checks']}")
    print(f"total {total} bytes in {OUT_ROOT} (budget {SIZE_BUDGET})")
    assert total < SIZE_BUDGET, "fixtures exceed the size budget"
    # The optimizer fixture builds on the v3 fixture written above.
    import make_adamw_fixture
    make_adamw_fixture.main()


if __name__ == "__main__":
    main()
