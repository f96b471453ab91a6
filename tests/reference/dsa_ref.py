"""DeepSeek-V3.2 (DeepSeek Sparse Attention) on top of model_ref.py: the lightning indexer and MLA restricted to the
positions it selects, in both MLA forms, float64.

Written from DeepSeek's published V3.2-Exp inference code (deepseek-ai/DeepSeek-V3.2-Exp, inference/model.py:
Indexer, MLA.forward) and llama.cpp's src/models/deepseek32.cpp; see docs/deepseek-v32.md. Per layer:

    c_q       = RMSNorm(W_DQ h)                                   the MLA query latent ("qr"), shared with MLA
    q_I[t,j]  = (wq_b c_q)[t, j]                 [T, Hi, Di]      indexer queries, Hi heads of Di dims
    k_I[s]    = LayerNorm(wk h)[s]               [T, Di]          ONE key per token (weight + bias, eps 1e-6)
    RoPE on the FIRST qk_rope_head_dims of q_I and k_I, NON-interleaved (half split) — MLA's own RoPE is
              interleaved. (The first published model.py applied the interleaved form; DeepSeek corrected it to the
              non-interleaved one, which llama.cpp uses (LLAMA_ROPE_TYPE_NEOX). This reference follows the fix.)
    q_I, k_I  rotated by an orthonormal Hadamard matrix (DeepSeek does it before FP8 quantisation; it leaves every
              dot product unchanged, which check_hadamard_invariance asserts)
    w[t,j]    = (weights_proj h)[t, j] · Hi^-1/2 · Di^-1/2
    I(t,s)    = sum_j w[t,j] · ReLU(q_I[t,j] · k_I[s])            for s <= t, -inf otherwise
    S_t       = the min(index_topk, t+1) positions s <= t with the largest I(t,s)
    MLA       = the usual attention with scores outside S_t set to -inf (prefill and decode alike)

The top-k is not differentiable: the main model's gradients flow through MLA over the selected positions only, and
the indexer's weights get no gradient from the language-model loss (training the indexer is a separate KL loss).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

import model_ref as R


def hadamard(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal Walsh-Hadamard transform over the last dimension (a power of two): H x / sqrt(n)."""
    n = x.shape[-1]
    assert n & (n - 1) == 0, "the Hadamard rotation needs a power-of-two head dim"
    shape = x.shape
    h = x.reshape(-1, n)
    step = 1
    while step < n:
        h = h.reshape(-1, n // (2 * step), 2, step)
        a, b = h[:, :, 0, :], h[:, :, 1, :]
        h = torch.stack([a + b, a - b], dim=2).reshape(-1, n)
        step *= 2
    return (h * n ** -0.5).reshape(shape)


def indexer_scores(x, p, pre, cfg, cos, sin, rotate: bool = True) -> torch.Tensor:
    """I(t, s) [T, T] with -inf above the diagonal. x: the block's normed input [T, d]; pre ends in 'self_attn.'."""
    T = x.shape[0]
    Hi, Di, dr = cfg["index_n_heads"], cfg["index_head_dim"], cfg["qk_rope_head_dim"]
    eps = cfg["rms_norm_eps"]
    cq = R.rms_norm(R.linear(x, p[pre + "q_a_proj.weight"]), p[pre + "q_a_layernorm.weight"], eps)
    ip = pre + "indexer."
    q = R.linear(cq, p[ip + "wq_b.weight"]).reshape(T, Hi, Di)
    q = torch.cat([R.rope_half(q[..., :dr], cos, sin), q[..., dr:]], dim=-1)
    k = F.layer_norm(R.linear(x, p[ip + "wk.weight"]), (Di,), p[ip + "k_norm.weight"], p[ip + "k_norm.bias"], 1e-6)
    k = torch.cat([R.rope_half(k[:, None, :dr], cos, sin)[:, 0], k[:, dr:]], dim=-1)
    if rotate:
        q, k = hadamard(q), hadamard(k)
    w = R.linear(x, p[ip + "weights_proj.weight"]) * (Hi ** -0.5) * (Di ** -0.5)  # [T, Hi]
    s = torch.einsum("thd,sd->ths", q, k).relu()
    score = torch.einsum("ths,th->ts", s, w)
    return score.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))


def topk_selection(score: torch.Tensor, k: int) -> tuple[torch.Tensor, float, list]:
    """Boolean [T, T] mask of S_t, the smallest gap between the k-th and (k+1)-th visible score over the rows that
    have more than k visible positions (a float32 implementation must make the same choice), and S_t sorted."""
    T = score.shape[0]
    keep = torch.zeros(T, T, dtype=torch.bool)
    margin = float("inf")
    selected = []
    for t in range(T):
        n = min(k, t + 1)
        row = score[t, :t + 1].detach()
        idx = row.topk(n).indices
        keep[t, idx] = True
        if t + 1 > k:
            srt = row.sort(descending=True).values
            margin = min(margin, (srt[k - 1] - srt[k]).item())
        selected.append(sorted(idx.tolist()))
    return keep, margin, selected


def _masked_attention(scores: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """softmax over s of scores [H, T, S] with positions outside keep [T, S] (and above the diagonal) removed."""
    return torch.softmax(scores.masked_fill(~keep[None], float("-inf")), dim=-1)


def dsa_mla(x, p, pre, cfg, cos, sin, form: str = "naive", trace: dict | None = None, rotate: bool = True):
    """MLA of one V3.2 layer over the positions its indexer selects (form: naive | absorbed)."""
    T = x.shape[0]
    H = cfg["num_attention_heads"]
    score = indexer_scores(x, p, pre, cfg, cos, sin, rotate)
    keep, margin, selected = topk_selection(score, cfg["index_topk"])
    if trace is not None:
        trace[pre + "indexer"] = {"selected": selected, "index_margin": margin,
                                  "rows_sparse": sum(1 for t in range(T) if t + 1 > cfg["index_topk"])}
    q_nope, q_pe, c, k_pe, w_uk, w_uv = R._mla_projections(x, p, pre, cfg, cos, sin)
    scale = R.mla_softmax_scale(cfg)
    if form == "naive":
        k_nope = torch.einsum("tr,hdr->thd", c, w_uk)
        v = torch.einsum("tr,hdr->thd", c, w_uv)
        q = torch.cat([q_nope, q_pe], dim=-1)
        k = torch.cat([k_nope, k_pe[:, None, :].expand(T, H, k_pe.shape[-1])], dim=-1)
        pr = _masked_attention(torch.einsum("thd,shd->hts", q, k) * scale, keep)
        o = torch.einsum("hts,shd->thd", pr, v)
    else:
        q_lat = torch.einsum("thd,hdr->thr", q_nope, w_uk)
        s = (torch.einsum("thr,sr->hts", q_lat, c) + torch.einsum("thd,sd->hts", q_pe, k_pe)) * scale
        pr = _masked_attention(s, keep)
        o = torch.einsum("thr,hvr->thv", torch.einsum("hts,sr->thr", pr, c), w_uv)
    return R.linear(o.reshape(T, -1), p[pre + "o_proj.weight"])


def v32_forward(p, cfg, tokens, trace=None, form: str = "naive", with_mtp: bool = True, rotate: bool = True):
    def attn(x, p_, pre, cfg_, cos, sin):
        return dsa_mla(x, p_, pre, cfg_, cos, sin, form, trace, rotate)
    return R.deepseek_forward(p, cfg, tokens, trace, attn=attn, with_mtp=with_mtp)


def indexer_shapes(cfg: dict, pre: str) -> list:
    """Checkpoint names and shapes of one layer's indexer (pre ends in 'self_attn.')."""
    d, Hi, Di, qr = cfg["hidden_size"], cfg["index_n_heads"], cfg["index_head_dim"], cfg["q_lora_rank"]
    ip = pre + "indexer."
    return [(ip + "wq_b.weight", (Hi * Di, qr), "matrix"), (ip + "wk.weight", (Di, d), "matrix"),
            (ip + "k_norm.weight", (Di,), "norm"), (ip + "k_norm.bias", (Di,), "bias"),
            (ip + "weights_proj.weight", (Hi, d), "matrix")]


def check_hadamard_invariance(cfg: dict, p64: dict, tokens: list) -> float:
    """The Hadamard rotation of q and k changes no indexer score (orthonormal): DeepSeek applies it for FP8, a float
    implementation may skip it. Returns the largest relative difference of the indexer scores (every layer, random
    inputs) with and without it, after checking that the logits agree too."""
    a = v32_forward(p64, cfg, tokens)["logits"]
    b = v32_forward(p64, cfg, tokens, rotate=False)["logits"]
    assert (a - b).abs().max().item() / a.abs().max().item() < 1e-10, "the Hadamard rotation changed the logits"
    g = torch.Generator().manual_seed(5)
    T = len(tokens)
    cos, sin = R.rope_tables(cfg, cfg["qk_rope_head_dim"], torch.arange(T))
    worst = 0.0
    for L in range(cfg["num_hidden_layers"] + (cfg.get("num_nextn_predict_layers") or 0)):
        x = torch.randn(T, cfg["hidden_size"], generator=g, dtype=R.DT)
        pre = f"model.layers.{L}.self_attn."
        sa = indexer_scores(x, p64, pre, cfg, cos, sin, rotate=True)
        sb = indexer_scores(x, p64, pre, cfg, cos, sin, rotate=False)
        fin = torch.isfinite(sa)
        worst = max(worst, (sa[fin] - sb[fin]).abs().max().item() / sa[fin].abs().max().item())
    assert worst < 1e-12, f"the Hadamard rotation changed the indexer scores: {worst}"
    return worst


def check_sparsity_matters(cfg: dict, p64: dict, tokens: list) -> float:
    """With index_topk >= T the model is plain V3 attention; with the fixture's top-k the logits must differ, or the
    fixture would not test the selection."""
    dense = v32_forward(p64, dict(cfg, index_topk=len(tokens)), tokens)["logits"]
    sparse = v32_forward(p64, cfg, tokens)["logits"]
    plain = R.deepseek_forward(p64, cfg, tokens)["logits"]
    assert (dense - plain).abs().max().item() < 1e-10, "a top-k covering everything must be plain MLA"
    d = (dense - sparse).abs().max().item() / dense.abs().max().item()
    assert d > 1e-2, f"the sparse selection has no visible effect ({d})"
    return d


def check_absorbed(cfg: dict, p64: dict, tokens: list) -> float:
    a = v32_forward(p64, cfg, tokens, form="naive")
    b = v32_forward(p64, cfg, tokens, form="absorbed")
    worst = 0.0
    for key in ("logits", "mtp_logits"):
        if a[key] is not None:
            worst = max(worst, (a[key] - b[key]).abs().max().item() / a[key].abs().max().item())
    assert worst < 1e-10, f"absorbed DSA differs from naive: {worst}"
    return worst
