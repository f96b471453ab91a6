"""Independent PyTorch reference for baleine's model code (DeepSeek-V3 / V2 with MLA, DeepSeekMoE and MTP; Qwen2 and
Llama dense GQA models).

Written from /work/shared/reference/deepseek.md (sections 1, 2, 3 and 8.1) and the HF config conventions; it does not
import transformers. Everything is driven by a Hugging Face ``config.json`` dict and a ``{hf_name: tensor}`` dict, the
same inputs the C++ code reads, and all arithmetic is float64 (the weights are the float32 values stored in the
checkpoint, widened exactly).

Conventions (see tests/reference/README.md):
  * RMSNorm(x) = x / sqrt(mean(x^2) + eps) * w.
  * DeepSeek attention is MLA in its naive (training) form. RoPE is INTERLEAVED: rope dims are adjacent pairs
    (x[2j], x[2j+1]) rotated by angle pos * inv_freq[j]. YaRN corrects inv_freq and the softmax scale.
  * Qwen2 / Llama use the HALF-SPLIT rope (rotate_half: pairs (x[j], x[j + d/2])).
  * MoE gate values use the unbiased scores; e_score_correction_bias only steers the selection (noaux_tc).
  * MTP (HF / vLLM layout, module at layer index num_hidden_layers): x_i = eh_proj([enorm(E(t_{i+1})) | hnorm(h_i)]),
    embedding FIRST, h = main model's last hidden state before the final norm, then one MoE decoder block over
    positions 0..T-2, then shared_head.norm and shared_head.head. Row i predicts token i+2.

Run ``python model_ref.py`` (with /usr/bin/python3) to execute the self-checks on random weights.
"""
from __future__ import annotations

import json
import math
import struct
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

DT = torch.float64

# ----------------------------------------------------------------------------------------------------------------------
# safetensors, by hand (no `safetensors` package)
# ----------------------------------------------------------------------------------------------------------------------

_ST_DTYPES = {torch.float32: ("F32", np.float32), torch.float64: ("F64", np.float64),
              torch.int32: ("I32", np.int32), torch.int64: ("I64", np.int64)}
_ST_NP = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64}


def write_safetensors(path: str, tensors: "OrderedDict[str, torch.Tensor]", metadata: dict | None = None) -> int:
    """Writes `tensors` (in the given order) as a safetensors file; returns the number of bytes written.

    Layout: u64 little-endian header length N, N bytes of JSON header (space padded so that the data block starts at an
    8-byte aligned offset), then the raw little-endian tensor bytes, back to back, in header order."""
    header: dict = {"__metadata__": {"format": "pt", **(metadata or {})}}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        tag, npdt = _ST_DTYPES[t.dtype]
        raw = t.numpy().astype(np.dtype(npdt).newbyteorder("<"), copy=False).tobytes(order="C")
        header[name] = {"dtype": tag, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-(8 + len(hjson))) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    return 8 + len(hjson) + offset


def read_safetensors(path: str) -> "OrderedDict[str, torch.Tensor]":
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = OrderedDict()
    for name, info in sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                             key=lambda kv: kv[1]["data_offsets"][0]):
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[base + a:base + b], dtype=np.dtype(_ST_NP[info["dtype"]]).newbyteorder("<"))
        out[name] = torch.from_numpy(arr.astype(_ST_NP[info["dtype"]]).reshape(info["shape"]).copy())
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Basic blocks
# ----------------------------------------------------------------------------------------------------------------------

def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    y = x @ w.t()  # PyTorch / HF weight layout [out, in]
    return y if b is None else y + b


def swiglu(x: torch.Tensor, p: dict, prefix: str) -> torch.Tensor:
    """down(silu(gate(x)) * up(x)) with weights prefix{gate_proj,up_proj,down_proj}.weight."""
    g = linear(x, p[prefix + "gate_proj.weight"])
    u = linear(x, p[prefix + "up_proj.weight"])
    return linear(F.silu(g) * u, p[prefix + "down_proj.weight"])


def causal_softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """q [T, H, dk], k [T, H, dk], v [T, H, dv] -> [T, H, dv], causal (token t sees 0..t)."""
    T = q.shape[0]
    s = torch.einsum("thd,shd->hts", q, k) * scale
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    p = torch.softmax(s, dim=-1)
    return torch.einsum("hts,shd->thd", p, v)


# ----------------------------------------------------------------------------------------------------------------------
# RoPE
# ----------------------------------------------------------------------------------------------------------------------

def rope_scaling_type(cfg: dict) -> str | None:
    rs = cfg.get("rope_scaling")
    if not rs:
        return None
    return rs.get("type", rs.get("rope_type"))


def default_inv_freq(dim: int, base: float) -> torch.Tensor:
    """inv_freq[j] = base^(-2j/dim), j = 0..dim/2-1."""
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=DT) / dim))


def yarn_get_mscale(scale: float, mscale: float) -> float:
    if scale <= 1.0:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def yarn_correction_range(dim: int, base: float, rs: dict) -> tuple[float, float]:
    """low = floor(corr(beta_fast)), high = ceil(corr(beta_slow)), clamped to [0, dim-1], where
    corr(r) = dim * ln(orig_max / (2 pi r)) / (2 ln base) is the pair index whose wavelength fits r times in orig_max."""
    orig = rs.get("original_max_position_embeddings", 4096)

    def corr(r):
        return dim * math.log(orig / (r * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(corr(rs.get("beta_fast", 32))), 0)
    high = min(math.ceil(corr(rs.get("beta_slow", 1))), dim - 1)
    return float(low), float(high)


def yarn_inv_freq(dim: int, base: float, rs: dict) -> torch.Tensor:
    """YaRN frequencies: inv_freq = base_freq * (1 - ramp) + base_freq / factor * ramp, ramp over the pair index j:
    ramp_j = clamp((j - low) / (high - low), 0, 1) (pairs below `low` keep their frequency, above `high` are
    interpolated by `factor`)."""
    factor = rs["factor"]
    low, high = yarn_correction_range(dim, base, rs)
    if low == high:
        high += 0.001
    j = torch.arange(dim // 2, dtype=DT)
    ramp = ((j - low) / (high - low)).clamp(0.0, 1.0)
    base_freq = default_inv_freq(dim, base)
    return base_freq * (1.0 - ramp) + (base_freq / factor) * ramp


def llama3_inv_freq(dim: int, base: float, rs: dict) -> torch.Tensor:
    """Llama 3 rope scaling: wavelengths shorter than orig/high_freq_factor keep their frequency, longer than
    orig/low_freq_factor are divided by `factor`, in between a smooth interpolation."""
    factor, lf, hf = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    orig = rs["original_max_position_embeddings"]
    low_wl, high_wl = orig / lf, orig / hf
    out = []
    for f in default_inv_freq(dim, base).tolist():
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(f)
        elif wl > low_wl:
            out.append(f / factor)
        else:
            s = (orig / wl - lf) / (hf - lf)
            out.append((1 - s) * f / factor + s * f)
    return torch.tensor(out, dtype=DT)


def rope_inv_freq(cfg: dict, dim: int) -> tuple[torch.Tensor, float]:
    """(inv_freq [dim/2], attention factor applied to cos/sin) for the config's rope_theta / rope_scaling."""
    base = cfg.get("rope_theta", 10000.0)
    kind = rope_scaling_type(cfg)
    rs = cfg.get("rope_scaling") or {}
    attn_factor = 1.0
    if kind == "yarn":
        inv = yarn_inv_freq(dim, base, rs)
        f = rs["factor"]
        attn_factor = yarn_get_mscale(f, rs.get("mscale", 1.0)) / yarn_get_mscale(f, rs.get("mscale_all_dim", 0.0))
    elif kind == "llama3":
        inv = llama3_inv_freq(dim, base, rs)
    elif kind == "linear":
        inv = default_inv_freq(dim, base) / rs["factor"]
    elif kind in (None, "default"):
        inv = default_inv_freq(dim, base)
    else:
        raise ValueError(f"unsupported rope_scaling type {kind!r}")
    return inv, attn_factor


def rope_tables(cfg: dict, dim: int, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables [T, dim/2] for the given positions, including the YaRN attention factor on cos/sin."""
    inv, attn_factor = rope_inv_freq(cfg, dim)
    ang = positions.to(DT)[:, None] * inv[None, :]
    return torch.cos(ang) * attn_factor, torch.sin(ang) * attn_factor


def rope_interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotates adjacent pairs (x[2j], x[2j+1]) by angle j. x [T, ..., d]; cos/sin [T, d/2]."""
    shape = x.shape
    xp = x.reshape(*shape[:-1], shape[-1] // 2, 2)
    x0, x1 = xp[..., 0], xp[..., 1]
    extra = x.dim() - 2  # broadcast the tables over the middle (head) dims
    c = cos.to(x.dtype).reshape(cos.shape[0], *([1] * extra), cos.shape[1])
    s = sin.to(x.dtype).reshape(sin.shape[0], *([1] * extra), sin.shape[1])
    y0 = x0 * c - x1 * s
    y1 = x0 * s + x1 * c
    return torch.stack([y0, y1], dim=-1).reshape(shape)


def rope_half(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Half-split rope: pairs (x[j], x[j + d/2]). x [T, H, d]; cos/sin [T, d/2]."""
    h = x.shape[-1] // 2
    x0, x1 = x[..., :h], x[..., h:]
    c = cos.to(x.dtype)[:, None, :]
    s = sin.to(x.dtype)[:, None, :]
    return torch.cat([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1)


# ----------------------------------------------------------------------------------------------------------------------
# DeepSeek: MLA
# ----------------------------------------------------------------------------------------------------------------------

def mla_softmax_scale(cfg: dict) -> float:
    """qk_head_dim^-0.5, times mscale^2 with mscale = 0.1 * mscale_all_dim * ln(factor) + 1 under YaRN."""
    scale = (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5
    rs = cfg.get("rope_scaling") or {}
    if rope_scaling_type(cfg) == "yarn" and rs.get("factor", 1.0) > 1.0 and rs.get("mscale_all_dim"):
        m = yarn_get_mscale(rs["factor"], rs["mscale_all_dim"])
        scale *= m * m
    return scale


def _mla_projections(x, p, pre, cfg, cos, sin):
    """Shared part of both MLA forms. Returns q_nope [T,H,dn], q_pe [T,H,dr] (roped), c (normed latent) [T,r],
    k_pe [T,dr] (roped, shared by all heads), and the per-head kv_b blocks W_UK [H,dn,r], W_UV [H,dv,r]."""
    T = x.shape[0]
    H = cfg["num_attention_heads"]
    dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    r = cfg["kv_lora_rank"]
    eps = cfg["rms_norm_eps"]
    if cfg.get("q_lora_rank"):
        cq = rms_norm(linear(x, p[pre + "q_a_proj.weight"]), p[pre + "q_a_layernorm.weight"], eps)
        q = linear(cq, p[pre + "q_b_proj.weight"])
    else:
        q = linear(x, p[pre + "q_proj.weight"])
    q = q.reshape(T, H, dn + dr)
    q_nope, q_pe = q[..., :dn], q[..., dn:]
    kv_a = linear(x, p[pre + "kv_a_proj_with_mqa.weight"])
    c, k_pe = kv_a[:, :r], kv_a[:, r:]
    c = rms_norm(c, p[pre + "kv_a_layernorm.weight"], eps)  # RMSNorm on the latent only, never on k_pe
    q_pe = rope_interleaved(q_pe, cos, sin)
    k_pe = rope_interleaved(k_pe, cos, sin)
    w_kvb = p[pre + "kv_b_proj.weight"].reshape(H, dn + dv, r)  # per head rows [k_nope | v]
    return q_nope, q_pe, c, k_pe, w_kvb[:, :dn, :], w_kvb[:, dn:, :]


def mla_naive(x, p, pre, cfg, cos, sin):
    """Naive MLA: materialise per-head keys [k_nope | k_pe] and values from the latent."""
    T = x.shape[0]
    H = cfg["num_attention_heads"]
    q_nope, q_pe, c, k_pe, w_uk, w_uv = _mla_projections(x, p, pre, cfg, cos, sin)
    k_nope = torch.einsum("tr,hdr->thd", c, w_uk)
    v = torch.einsum("tr,hdr->thd", c, w_uv)
    q = torch.cat([q_nope, q_pe], dim=-1)
    k = torch.cat([k_nope, k_pe[:, None, :].expand(T, H, k_pe.shape[-1])], dim=-1)
    o = causal_softmax_attention(q, k, v, mla_softmax_scale(cfg))
    return linear(o.reshape(T, -1), p[pre + "o_proj.weight"])


def mla_absorbed(x, p, pre, cfg, cos, sin):
    """Absorbed MLA: q~ = W_UK^T q_nope per head; scores over [c | k_pe]; output W_UV (sum_j p_j c_j)."""
    T = x.shape[0]
    q_nope, q_pe, c, k_pe, w_uk, w_uv = _mla_projections(x, p, pre, cfg, cos, sin)
    q_lat = torch.einsum("thd,hdr->thr", q_nope, w_uk)
    s = (torch.einsum("thr,sr->hts", q_lat, c) + torch.einsum("thd,sd->hts", q_pe, k_pe)) * mla_softmax_scale(cfg)
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    pr = torch.softmax(s, dim=-1)
    ctx = torch.einsum("hts,sr->thr", pr, c)
    o = torch.einsum("thr,hvr->thv", ctx, w_uv)
    return linear(o.reshape(T, -1), p[pre + "o_proj.weight"])


# ----------------------------------------------------------------------------------------------------------------------
# DeepSeek: MoE
# ----------------------------------------------------------------------------------------------------------------------

def moe_route(x, p, pre, cfg, use_bias: bool = True, mask_value: float = float("-inf")):
    """Router. Returns (idx [T,k] selected experts, w [T,k] gate values (differentiable), info dict).

    scores = sigmoid / softmax(x @ gate^T) (float64 here; the spec asks for >= float32);
    selection scores = scores + e_score_correction_bias (noaux_tc only);
    group-limited routing when n_group > 1 and topk_method != greedy:
        group score = sum of the top-2 selection scores (noaux_tc) or max score (group_limited_greedy);
        keep topk_group groups, other experts are masked (mask_value; -inf by default);
    top-k among the remaining experts; gate values = UNBIASED scores of the selected experts;
    if norm_topk_prob and k > 1: divide by (their sum + 1e-20); then * routed_scaling_factor."""
    T = x.shape[0]
    E = cfg["n_routed_experts"]
    k = cfg["num_experts_per_tok"]
    method = cfg.get("topk_method", "greedy")
    logits = linear(x, p[pre + "gate.weight"])
    sf = cfg.get("scoring_func", "softmax")
    if sf == "sigmoid":
        scores = torch.sigmoid(logits)
    elif sf == "softmax":
        scores = torch.softmax(logits, dim=-1)
    else:
        raise ValueError(f"unsupported scoring_func {sf!r}")
    sel = scores.detach().clone()  # top-k selection is not differentiable
    if method == "noaux_tc" and use_bias:
        sel = sel + p[pre + "gate.e_score_correction_bias"].detach()
    info = {}
    G = cfg.get("n_group", 1) or 1
    if G > 1 and method in ("noaux_tc", "group_limited_greedy"):
        g = sel.reshape(T, G, E // G)
        if method == "noaux_tc":
            gs = g.topk(2, dim=-1).values.sum(-1)
        else:
            gs = g.max(dim=-1).values
        tg = cfg["topk_group"]
        gsorted = gs.sort(dim=-1, descending=True).values
        info["group_margin"] = (gsorted[:, tg - 1] - gsorted[:, tg]).min().item() if tg < G else float("inf")
        gidx = gs.topk(tg, dim=-1).indices
        gmask = torch.zeros(T, G, dtype=torch.bool).scatter(1, gidx, True)
        emask = gmask[:, :, None].expand(T, G, E // G).reshape(T, E)
        cand = sel.masked_fill(~emask, mask_value)
    elif method in ("greedy", "noaux_tc", "group_limited_greedy"):
        cand = sel
    else:
        raise ValueError(f"unsupported topk_method {method!r}")
    csorted = cand.sort(dim=-1, descending=True).values
    info["expert_margin"] = (csorted[:, k - 1] - csorted[:, k]).min().item() if k < E else float("inf")
    idx = cand.topk(k, dim=-1).indices
    w = scores.gather(1, idx)
    if cfg.get("norm_topk_prob") and k > 1:
        w = w / (w.sum(-1, keepdim=True) + 1e-20)
    w = w * cfg.get("routed_scaling_factor", 1.0)
    return idx, w, info


def moe(x, p, pre, cfg, trace: dict | None = None):
    """shared_experts(x) + sum_k g_k expert_k(x). Every expert runs on every token (tiny models) and is weighted by a
    dense [T, E] gate matrix that is zero off the selection, so unselected experts get exactly zero gradient."""
    T = x.shape[0]
    E = cfg["n_routed_experts"]
    idx, w, info = moe_route(x, p, pre, cfg)
    dense_w = torch.zeros(T, E, dtype=x.dtype).scatter(1, idx, w)
    y = torch.zeros_like(x)
    for e in range(E):
        y = y + dense_w[:, e:e + 1] * swiglu(x, p, f"{pre}experts.{e}.")
    if cfg.get("n_shared_experts"):
        y = y + swiglu(x, p, pre + "shared_experts.")
    if trace is not None:
        rec = {"selected": idx.sort(dim=-1).values.tolist(), **info}
        if cfg.get("topk_method") == "noaux_tc":
            idx_nb, _, _ = moe_route(x, p, pre, cfg, use_bias=False)
            rec["selected_without_bias"] = idx_nb.sort(dim=-1).values.tolist()
            idx_zero, _, _ = moe_route(x, p, pre, cfg, mask_value=0.0)
            rec["selected_mask_zero"] = idx_zero.sort(dim=-1).values.tolist()
        if cfg.get("n_group", 1) > 1 and cfg.get("topk_method") != "greedy":
            c2 = dict(cfg, n_group=1)
            idx_ng, _, _ = moe_route(x, p, pre, c2)
            rec["selected_without_groups"] = idx_ng.sort(dim=-1).values.tolist()
        trace[pre.rstrip(".")] = rec
    return y


# ----------------------------------------------------------------------------------------------------------------------
# DeepSeek: blocks, model, MTP
# ----------------------------------------------------------------------------------------------------------------------

def is_moe_layer(cfg: dict, L: int) -> bool:
    return (cfg.get("n_routed_experts") or 0) > 0 and L >= cfg.get("first_k_dense_replace", 0) \
        and L % cfg.get("moe_layer_freq", 1) == 0


def deepseek_block(x, p, L, cfg, cos, sin, moe_block: bool, trace=None, attn=mla_naive):
    pre = f"model.layers.{L}."
    eps = cfg["rms_norm_eps"]
    x = x + attn(rms_norm(x, p[pre + "input_layernorm.weight"], eps), p, pre + "self_attn.", cfg, cos, sin)
    h = rms_norm(x, p[pre + "post_attention_layernorm.weight"], eps)
    x = x + (moe(h, p, pre + "mlp.", cfg, trace) if moe_block else swiglu(h, p, pre + "mlp."))
    return x


def deepseek_forward(p, cfg, tokens, trace=None, attn=mla_naive, with_mtp=True):
    """Returns dict(logits [T,V], hidden [T,d] (before the final norm), mtp_logits [T-1,V] or None)."""
    T = len(tokens)
    tok = torch.tensor(tokens, dtype=torch.long)
    eps = cfg["rms_norm_eps"]
    nL = cfg["num_hidden_layers"]
    cos, sin = rope_tables(cfg, cfg["qk_rope_head_dim"], torch.arange(T))
    x = p["model.embed_tokens.weight"][tok]
    for L in range(nL):
        x = deepseek_block(x, p, L, cfg, cos, sin, is_moe_layer(cfg, L), trace, attn)
    hidden = x
    logits = linear(rms_norm(hidden, p["model.norm.weight"], eps), p["lm_head.weight"])
    mtp_logits = None
    n_mtp = cfg.get("num_nextn_predict_layers") or 0
    if with_mtp and n_mtp:
        assert n_mtp == 1, "the reference implements one MTP module (D = 1)"
        pre = f"model.layers.{nL}."
        e = p[pre + "embed_tokens.weight"][tok[1:]]              # E(t_{i+1}), i = 0..T-2
        e = rms_norm(e, p[pre + "enorm.weight"], eps)
        h = rms_norm(hidden[:-1], p[pre + "hnorm.weight"], eps)   # h_main[i], i = 0..T-2
        m = linear(torch.cat([e, h], dim=-1), p[pre + "eh_proj.weight"])  # embedding FIRST
        c2, s2 = cos[:T - 1], sin[:T - 1]                         # positions 0..T-2
        m = deepseek_block(m, p, nL, cfg, c2, s2, True, trace, attn)
        mtp_logits = linear(rms_norm(m, p[pre + "shared_head.norm.weight"], eps), p[pre + "shared_head.head.weight"])
    return {"logits": logits, "hidden": hidden, "mtp_logits": mtp_logits}


# ----------------------------------------------------------------------------------------------------------------------
# Qwen2 / Llama (dense GQA)
# ----------------------------------------------------------------------------------------------------------------------

def dense_forward(p, cfg, tokens, trace=None, x0=None):
    """x0 [T, d], when given, replaces the token embeddings (multimodal inputs such as Janus's image tokens)."""
    T = len(tokens) if x0 is None else x0.shape[0]
    eps = cfg["rms_norm_eps"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    hd = cfg.get("head_dim") or cfg["hidden_size"] // H
    bias = cfg["model_type"] == "qwen2" or bool(cfg.get("attention_bias"))
    cos, sin = rope_tables(cfg, hd, torch.arange(T))
    x = p["model.embed_tokens.weight"][torch.tensor(tokens, dtype=torch.long)] if x0 is None else x0
    for L in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{L}."
        a = pre + "self_attn."
        h = rms_norm(x, p[pre + "input_layernorm.weight"], eps)
        q = linear(h, p[a + "q_proj.weight"], p[a + "q_proj.bias"] if bias else None).reshape(T, H, hd)
        k = linear(h, p[a + "k_proj.weight"], p[a + "k_proj.bias"] if bias else None).reshape(T, KV, hd)
        v = linear(h, p[a + "v_proj.weight"], p[a + "v_proj.bias"] if bias else None).reshape(T, KV, hd)
        q = rope_half(q, cos, sin)
        k = rope_half(k, cos, sin)
        rep = H // KV  # query head i uses kv head i // rep
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        o = causal_softmax_attention(q, k, v, hd ** -0.5)
        x = x + linear(o.reshape(T, H * hd), p[a + "o_proj.weight"])
        x = x + swiglu(rms_norm(x, p[pre + "post_attention_layernorm.weight"], eps), p, pre + "mlp.")
    head = p["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else p["lm_head.weight"]
    logits = linear(rms_norm(x, p["model.norm.weight"], eps), head)
    return {"logits": logits, "hidden": x, "mtp_logits": None}


def forward(p, cfg, tokens, trace=None):
    mt = cfg["model_type"]
    if mt in ("deepseek_v3", "deepseek_v2"):
        return deepseek_forward(p, cfg, tokens, trace)
    if mt == "deepseek_v32":
        import dsa_ref
        return dsa_ref.v32_forward(p, cfg, tokens, trace)
    if mt in ("qwen2", "llama"):
        return dense_forward(p, cfg, tokens, trace)
    raise ValueError(f"unsupported model_type {mt!r}")


def loss_fn(out, tokens, mtp_lambda: float):
    """loss_main = mean CE(logits[0..T-2], tokens[1..T-1]);
    loss_mtp = mean CE(mtp_logits[0..T-3], tokens[2..T-1]); loss = loss_main + mtp_lambda * loss_mtp."""
    tok = torch.tensor(tokens, dtype=torch.long)
    loss_main = F.cross_entropy(out["logits"][:-1], tok[1:])
    loss_mtp = None
    loss = loss_main
    if out["mtp_logits"] is not None:
        loss_mtp = F.cross_entropy(out["mtp_logits"][:-1], tok[2:])
        loss = loss + mtp_lambda * loss_mtp
    return loss, loss_main, loss_mtp


# ----------------------------------------------------------------------------------------------------------------------
# Parameters (HF names, shapes, deterministic init)
# ----------------------------------------------------------------------------------------------------------------------

def _swiglu_shapes(prefix, d, inter):
    return [(prefix + "gate_proj.weight", (inter, d), "matrix"), (prefix + "up_proj.weight", (inter, d), "matrix"),
            (prefix + "down_proj.weight", (d, inter), "matrix")]


def _deepseek_layer_shapes(cfg, L, moe_block):
    d = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    dn, dr, dv, r = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    pre = f"model.layers.{L}."
    a = pre + "self_attn."
    out = [(pre + "input_layernorm.weight", (d,), "norm")]
    if cfg.get("q_lora_rank"):
        qr = cfg["q_lora_rank"]
        out += [(a + "q_a_proj.weight", (qr, d), "matrix"), (a + "q_a_layernorm.weight", (qr,), "norm"),
                (a + "q_b_proj.weight", (H * (dn + dr), qr), "matrix")]
    else:
        out += [(a + "q_proj.weight", (H * (dn + dr), d), "matrix")]
    out += [(a + "kv_a_proj_with_mqa.weight", (r + dr, d), "matrix"), (a + "kv_a_layernorm.weight", (r,), "norm"),
            (a + "kv_b_proj.weight", (H * (dn + dv), r), "matrix"), (a + "o_proj.weight", (d, H * dv), "matrix"),
            (pre + "post_attention_layernorm.weight", (d,), "norm")]
    if cfg["model_type"] == "deepseek_v32":  # DeepSeek Sparse Attention: the lightning indexer (dsa_ref.py)
        import dsa_ref
        out += dsa_ref.indexer_shapes(cfg, a)
    m = pre + "mlp."
    if moe_block:
        E, mi = cfg["n_routed_experts"], cfg["moe_intermediate_size"]
        out += [(m + "gate.weight", (E, d), "matrix")]
        if cfg.get("topk_method") == "noaux_tc":
            out += [(m + "gate.e_score_correction_bias", (E,), "e_bias")]
        for e in range(E):
            out += _swiglu_shapes(f"{m}experts.{e}.", d, mi)
        if cfg.get("n_shared_experts"):
            out += _swiglu_shapes(m + "shared_experts.", d, cfg["n_shared_experts"] * mi)
    else:
        out += _swiglu_shapes(m, d, cfg["intermediate_size"])
    return out


def param_shapes(cfg: dict):
    """[(hf_name, shape, kind)] in checkpoint order; kind in matrix / norm / bias / embed / e_bias / copy:<src>."""
    d, V = cfg["hidden_size"], cfg["vocab_size"]
    nL = cfg["num_hidden_layers"]
    out = [("model.embed_tokens.weight", (V, d), "embed")]
    mt = cfg["model_type"]
    if mt in ("deepseek_v3", "deepseek_v2", "deepseek_v32"):
        for L in range(nL):
            out += _deepseek_layer_shapes(cfg, L, is_moe_layer(cfg, L))
        out += [("model.norm.weight", (d,), "norm"), ("lm_head.weight", (V, d), "matrix")]
        for k in range(cfg.get("num_nextn_predict_layers") or 0):
            pre = f"model.layers.{nL + k}."
            out += [(pre + "embed_tokens.weight", (V, d), "copy:model.embed_tokens.weight"),
                    (pre + "enorm.weight", (d,), "norm"), (pre + "hnorm.weight", (d,), "norm"),
                    (pre + "eh_proj.weight", (d, 2 * d), "matrix")]
            out += _deepseek_layer_shapes(cfg, nL + k, True)
            out += [(pre + "shared_head.norm.weight", (d,), "norm"),
                    (pre + "shared_head.head.weight", (V, d), "copy:lm_head.weight")]
    elif mt in ("qwen2", "llama"):
        H = cfg["num_attention_heads"]
        KV = cfg.get("num_key_value_heads", H)
        hd = cfg.get("head_dim") or d // H
        bias = mt == "qwen2" or bool(cfg.get("attention_bias"))
        for L in range(nL):
            pre = f"model.layers.{L}."
            a = pre + "self_attn."
            out += [(pre + "input_layernorm.weight", (d,), "norm")]
            for nm, rows in (("q_proj", H * hd), ("k_proj", KV * hd), ("v_proj", KV * hd)):
                out += [(a + nm + ".weight", (rows, d), "matrix")]
                if bias:
                    out += [(a + nm + ".bias", (rows,), "bias")]
            out += [(a + "o_proj.weight", (d, H * hd), "matrix"), (pre + "post_attention_layernorm.weight", (d,), "norm")]
            out += _swiglu_shapes(pre + "mlp.", d, cfg["intermediate_size"])
        out += [("model.norm.weight", (d,), "norm")]
        if not cfg.get("tie_word_embeddings"):
            out += [("lm_head.weight", (V, d), "matrix")]
    else:
        raise ValueError(mt)
    return out


def init_params(cfg: dict, seed: int, matrix_std: float = 0.2) -> "OrderedDict[str, torch.Tensor]":
    """float32 weights: matrices and embeddings N(0, matrix_std); norms 1 + 0.1 N(0,1); biases N(0, 0.1);
    e_score_correction_bias N(0, 0.1); MTP embed/head are exact copies of the main embedding / lm_head."""
    rng = np.random.default_rng(seed)
    out = OrderedDict()
    for name, shape, kind in param_shapes(cfg):
        if kind in ("matrix", "embed"):
            a = rng.standard_normal(shape) * matrix_std
        elif kind == "norm":
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif kind in ("bias", "e_bias"):
            a = 0.1 * rng.standard_normal(shape)
        elif kind.startswith("copy:"):
            a = out[kind[5:]].numpy().copy()
        else:
            raise ValueError(kind)
        out[name] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return out


def to_f64(params, requires_grad=False):
    out = OrderedDict()
    for k, v in params.items():
        t = v.to(DT).clone()
        if requires_grad and not k.endswith("e_score_correction_bias"):
            t.requires_grad_(True)
        out[k] = t
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Self-checks
# ----------------------------------------------------------------------------------------------------------------------

def check_absorbed_mla(cfg: dict, p64: dict, seed: int = 1, T: int = 9) -> float:
    """(a) absorbed MLA == naive MLA (float64) for every attention block of the model."""
    if cfg["model_type"] == "deepseek_v32":
        import dsa_ref
        return dsa_ref.check_absorbed(cfg, p64, list(range(1, T + 1)))
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    n_blocks = cfg["num_hidden_layers"] + (cfg.get("num_nextn_predict_layers") or 0)
    cos, sin = rope_tables(cfg, cfg["qk_rope_head_dim"], torch.arange(T))
    for L in range(n_blocks):
        x = torch.randn(T, cfg["hidden_size"], generator=g, dtype=DT)
        pre = f"model.layers.{L}.self_attn."
        a = mla_naive(x, p64, pre, cfg, cos, sin)
        b = mla_absorbed(x, p64, pre, cfg, cos, sin)
        worst = max(worst, (a - b).abs().max().item() / a.abs().max().item())
    assert worst < 1e-10, f"absorbed MLA differs from naive MLA: {worst}"
    # and the whole model through the absorbed path
    toks = list(range(1, T + 1))
    fa = deepseek_forward(p64, cfg, toks)
    fb = deepseek_forward(p64, cfg, toks, attn=mla_absorbed)
    for key in ("logits", "mtp_logits"):
        if fa[key] is not None:
            worst = max(worst, (fa[key] - fb[key]).abs().max().item() / fa[key].abs().max().item())
    assert worst < 1e-10, f"absorbed MLA model differs from naive: {worst}"
    return worst


def check_rope_norm(dim: int = 8, T: int = 16, seed: int = 2) -> float:
    """(b) interleaved (and half-split) rope is a rotation: it preserves the norm of every vector, and with an
    attention factor m on cos/sin it multiplies the norm by m."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, 3, dim, generator=g, dtype=DT)
    cfg = {"rope_theta": 10000.0, "rope_scaling": {"type": "yarn", "factor": 40, "beta_fast": 32, "beta_slow": 1,
                                                   "mscale": 1.0, "mscale_all_dim": 0.707,
                                                   "original_max_position_embeddings": 4096}}
    worst = 0.0
    for c in ({"rope_theta": 10000.0}, cfg):
        cos, sin = rope_tables(c, dim, torch.arange(T) * 7)
        m = float(torch.sqrt(cos[0, 0] ** 2 + sin[0, 0] ** 2))
        for fn in (rope_interleaved, rope_half):
            y = fn(x, cos, sin)
            worst = max(worst, (y.norm(dim=-1) - m * x.norm(dim=-1)).abs().max().item())
        # rotation by position 0 is the identity (up to the factor)
        assert torch.allclose(rope_interleaved(x[:1], cos[:1], sin[:1]), m * x[:1], atol=1e-14)
    # interleaved pair j really is (2j, 2j+1): rotating e_2 at position 1 lands in span(e_2, e_3)
    e = torch.zeros(1, dim, dtype=DT)
    e[0, 2] = 1.0
    cos, sin = rope_tables({"rope_theta": 10000.0}, dim, torch.tensor([1]))
    y = rope_interleaved(e, cos, sin)
    assert abs(y[0, 2].item() - math.cos(0.1)) < 1e-14 and abs(y[0, 3].item() - math.sin(0.1)) < 1e-14
    assert worst < 1e-12, f"rope does not preserve the norm: {worst}"
    # HF's DeepSeek code de-interleaves ((x0,x1),(x2,x3),.. -> x0,x2,..,x1,x3,..) and then applies the half-split rope;
    # that is the same rotation in a permuted layout, so all q.k dot products agree with the interleaved form.
    cos, sin = rope_tables(cfg, dim, torch.arange(T))
    q = torch.randn(T, 3, dim, generator=g, dtype=DT)
    k = torch.randn(T, 3, dim, generator=g, dtype=DT)
    perm = torch.cat([torch.arange(0, dim, 2), torch.arange(1, dim, 2)])
    s_int = torch.einsum("thd,shd->hts", rope_interleaved(q, cos, sin), rope_interleaved(k, cos, sin))
    s_hf = torch.einsum("thd,shd->hts", rope_half(q[..., perm], cos, sin), rope_half(k[..., perm], cos, sin))
    assert (s_int - s_hf).abs().max().item() < 1e-12, "interleaved rope disagrees with HF's permuted form"
    return worst


def check_causality(cfg: dict, p64: dict, tokens: list, n_prefix: int = 7) -> float:
    """(c) logits of a prefix equal the first rows of the full-sequence logits (also for MTP)."""
    full = forward(p64, cfg, tokens)
    part = forward(p64, cfg, tokens[:n_prefix])
    worst = (full["logits"][:n_prefix] - part["logits"]).abs().max().item()
    if full["mtp_logits"] is not None:
        worst = max(worst, (full["mtp_logits"][:n_prefix - 1] - part["mtp_logits"]).abs().max().item())
    assert worst < 1e-12, f"causality violated: {worst}"
    return worst


def check_finite_differences(cfg: dict, p64: dict, tokens: list, mtp_lambda: float, n: int = 8, seed: int = 3,
                             h: float = 1e-6) -> float:
    """Autograd gradients vs central differences (float64) at the largest-gradient entry of each kind of tensor
    plus `n` random coordinates."""
    pg = OrderedDict((k, v.detach().clone().requires_grad_(not k.endswith("e_score_correction_bias")))
                     for k, v in p64.items())
    loss, _, _ = loss_fn(forward(pg, cfg, tokens), tokens, mtp_lambda)
    loss.backward()
    rng = np.random.default_rng(seed)
    names = [k for k in pg if not k.endswith("e_score_correction_bias")]
    # targeted coordinates: for each kind of tensor, the largest gradient entry of the tensor with the largest one
    picks = []
    for pat in ("mlp.gate.weight", ".experts.", "shared_experts.", "eh_proj", "enorm", "hnorm", "shared_head.norm",
                "shared_head.head", "q_a_proj", "q_a_layernorm", "q_b_proj", "self_attn.q_proj", "kv_a_proj",
                "kv_a_layernorm", "kv_b_proj", "o_proj", "k_proj", "v_proj", "_proj.bias", "embed_tokens",
                "lm_head", "model.norm", "input_layernorm", "post_attention_layernorm"):
        cand = [k for k in names if pat in k]
        if cand:
            cand = [k for k in cand if pg[k].grad is not None]
            if not cand:
                continue
            best = max(cand, key=lambda k: pg[k].grad.abs().max().item())
            picks.append((best, int(pg[best].grad.abs().reshape(-1).argmax())))
    for _ in range(n):
        name = names[rng.integers(len(names))]
        picks.append((name, int(rng.integers(pg[name].numel()))))
    worst = 0.0
    for name, i in picks:
        t = pg[name]
        ga = t.grad.reshape(-1)[i].item() if t.grad is not None else 0.0  # no path to the loss (DSA indexer)
        vals = []
        for sgn in (1, -1):
            q = OrderedDict((k, v.detach()) for k, v in pg.items())
            w = q[name].clone()
            w.reshape(-1)[i] += sgn * h
            q[name] = w
            with torch.no_grad():
                vals.append(loss_fn(forward(q, cfg, tokens), tokens, mtp_lambda)[0].item())
        gn = (vals[0] - vals[1]) / (2 * h)
        worst = max(worst, abs(ga - gn) / max(1e-3, abs(gn)))
    assert worst < 1e-5, f"autograd vs finite differences: {worst}"
    return worst


def float32_agreement(cfg: dict, params32: dict, tokens: list, mtp_lambda: float) -> dict:
    """Runs the same reference in float32 and compares with float64: shows that the fixture tolerances are reachable
    by a float32 implementation and that the float32 routing selects the same experts."""
    res = {}
    outs = []
    for dtype in (torch.float32, DT):
        pg = OrderedDict((k, v.to(dtype).clone().requires_grad_(not k.endswith("e_score_correction_bias")))
                         for k, v in params32.items())
        trace = {}
        out = forward(pg, cfg, tokens, trace)
        loss, _, _ = loss_fn(out, tokens, mtp_lambda)
        loss.backward()
        outs.append((out, pg, trace, loss.item()))
    (o32, g32, t32, l32), (o64, g64, t64, l64) = outs
    res["logits"] = (o32["logits"].double() - o64["logits"]).abs().max().item() / o64["logits"].abs().max().item()
    if o64["mtp_logits"] is not None:
        res["mtp_logits"] = ((o32["mtp_logits"].double() - o64["mtp_logits"]).abs().max().item()
                             / o64["mtp_logits"].abs().max().item())
    worst = 0.0
    for k, v in g64.items():
        if v.grad is None or v.grad.abs().max().item() == 0:
            continue
        worst = max(worst, (g32[k].grad.double() - v.grad).abs().max().item() / v.grad.abs().max().item())
    res["grads_worst_tensor"] = worst
    res["loss"] = abs(l32 - l64) / abs(l64)
    res["same_routing"] = all(t32[k]["selected"] == t64[k]["selected"] for k in t64)
    return res


if __name__ == "__main__":
    cfg = {"model_type": "deepseek_v3", "vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 2,
           "first_k_dense_replace": 1, "intermediate_size": 48, "num_attention_heads": 4, "q_lora_rank": 24,
           "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8, "n_routed_experts": 8,
           "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1, "n_shared_experts": 1, "moe_intermediate_size": 8,
           "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": True,
           "routed_scaling_factor": 2.5, "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "num_nextn_predict_layers": 1,
           "rope_scaling": {"type": "yarn", "factor": 40, "beta_fast": 32, "beta_slow": 1, "mscale": 1.0,
                            "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096}}
    p = to_f64(init_params(cfg, 0))
    print("absorbed vs naive MLA:", check_absorbed_mla(cfg, p))
    print("rope norm:", check_rope_norm())
    print("causality:", check_causality(cfg, p, [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]))
    print("finite differences:", check_finite_differences(cfg, p, [3, 1, 4, 1, 5, 9, 2, 6, 5, 3], 0.3))
