"""Independent PyTorch reference for Janus-Pro (generation and understanding), and the fixture writer for
tests/data/parity/janus.

Written from DeepSeek's deepseek-ai/Janus code (read, not imported): janus/models/modeling_vlm.py (gen_embed,
gen_aligner = MlpProjector "mlp_gelu", gen_head = VisionHead: Linear, GELU, Linear), janus/models/vq_model.py (the
VQ-16 decoder: l2-normalised codebook lookup, post_quant_conv, Decoder with GroupNorm(eps 1e-6) + swish ResnetBlocks,
a single-head AttnBlock, nearest 2x upsampling + 3x3 conv), generation_inference.py (the CFG loop: cond/uncond rows,
uncond = prompt with tokens[1:-1] = pad id, logits = u + w (c - u), image tokens re-enter through
prepare_gen_img_embeds) and the "deepseek" conversation template. The language model is model_ref.dense_forward
(Llama), run on embeddings. Understanding: janus/models/siglip_vit.py (timm VisionTransformer as create_siglip_vit
builds it: stride-P patch conv, learned pos_embed, no class token, pre-LN blocks with LayerNorm(eps 1e-6), qkv
bias, exact GELU, final norm, attn_pool never run), clip_encoder.py (select_feature "same"), projector.py (aligner),
image_processing_vlm.py (PIL bicubic resize of the longer side to image_size, expand2square with int(mean*255),
rescale, normalise), processing_vlm.py (each <image_placeholder> becomes <begin_of_image> + n x placeholder +
<end_of_image>) and modeling_vlm.prepare_inputs_embeds (placeholder rows replaced by aligner(vision(pixels))).
NCHW tensors and torch.nn.functional ops, float64 throughout — independent of baleine's
channels-last im2col formulation.

Tiny config: llama 2 layers, hidden 32, GQA 4/2; codebook 40 x 8; VQ ch 16, ch_mult [1, 1, 2], z 16, 1 res block,
4 GroupNorm groups (baleine's extension keys of gen_vision_config.params); 16x16 pictures of 4x4 = 16 tokens.
SigLIP: 32x32 input, patch 8 (16 tokens), width 24, 2 blocks, 3 heads, mlp 48 (extension keys of
vision_config.params); aligner 24 -> 32 -> 32. The tokenizer is the default model's plus the three image tokens.

Run: /usr/bin/python3 tests/reference/janus_ref.py   (writes tests/data/parity/janus/, ~1 s, deterministic)
"""
from __future__ import annotations

import json
import math
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_ref as mr  # noqa: E402

DT = torch.float64
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "parity", "janus")

# The language model uses the default model's tokenizer (copied next to the weights), so `serve --image-model` and
# `imagine --prompt` run on this fixture with real text.
TOKENIZER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "default", "tokenizer.json")
with open(TOKENIZER, encoding="utf-8") as _f:
    _tj = json.load(_f)
_BASE_VOCAB = 1 + max(list(_tj["model"]["vocab"].values()) + [t["id"] for t in _tj.get("added_tokens", [])])
IMAGE_TOKENS = ["<image_placeholder>", "<begin_of_image>", "<end_of_image>"]  # Janus's tokenizer has these
for _i, _t in enumerate(IMAGE_TOKENS):
    _tj["added_tokens"].append({"id": _BASE_VOCAB + _i, "content": _t, "single_word": False, "lstrip": False,
                                "rstrip": False, "normalized": False, "special": True})
PLACEHOLDER_ID, BOI_ID, EOI_ID = _BASE_VOCAB, _BASE_VOCAB + 1, _BASE_VOCAB + 2
VOCAB = _BASE_VOCAB + len(IMAGE_TOKENS)
LANG = {"model_type": "llama", "vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256, "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0, "tie_word_embeddings": True, "torch_dtype": "float32"}
VQ = {"image_token_size": 40, "n_embed": 8, "ch": 16, "ch_mult": [1, 1, 2], "z_channels": 16, "num_res_blocks": 1,
      "norm_groups": 4, "image_size": 16}
CONFIG = {
    "architectures": ["MultiModalityCausalLM"], "model_type": "multi_modality", "torch_dtype": "float32",
    "language_config": LANG,
    "gen_vision_config": {"cls": "VQ-16", "model_type": "gen_vision", "params": VQ},
    "gen_aligner_config": {"cls": "MlpProjector", "model_type": "gen_aligner",
                           "params": {"depth": 2, "input_dim": 8, "n_embed": 32, "projector_type": "mlp_gelu"}},
    "gen_head_config": {"cls": "vision_head", "model_type": "gen_head",
                        "params": {"image_token_embed": 48, "image_token_size": 40, "n_embed": 32}},
    "vision_config": {"cls": "CLIPVisionTower", "model_type": "vision",
                      "params": {"image_size": 32, "model_name": "siglip_large_patch16_384", "select_feature": "same",
                                 "select_layer": -1, "width": 24, "layers": 2, "heads": 3, "mlp_ratio": 2.0,
                                 "patch_size": 8}},
    "aligner_config": {"cls": "MlpProjector", "model_type": "aligner",
                       "params": {"depth": 2, "input_dim": 24, "n_embed": 32, "projector_type": "mlp_gelu"}},
}
VIS = {"image_size": 32, "patch": 8, "width": 24, "layers": 2, "heads": 3, "mlp": 48}
PREPROCESSOR = {"image_processor_type": "VLMImageProcessor", "image_size": 32, "min_size": 14,
                "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "rescale_factor": 1.0 / 255.0,
                "do_normalize": True}


# ---------------------------------------------------------------------------------------------------------------
# parameters (checkpoint names as the Janus HF checkpoints use them)
# ---------------------------------------------------------------------------------------------------------------

def vq_decoder_shapes():
    """(name, shape, kind) of gen_vision_model's decoder side, in vq_model.py's module order."""
    ch, mult, z, nrb = VQ["ch"], VQ["ch_mult"], VQ["z_channels"], VQ["num_res_blocks"]
    out = [("gen_vision_model.quantize.embedding.weight", (VQ["image_token_size"], VQ["n_embed"]), "codebook")]
    def conv(n, cin, cout, k):
        out.extend([(n + ".weight", (cout, cin, k, k), "conv"), (n + ".bias", (cout,), "bias")])
    def norm(n, c):
        out.extend([(n + ".weight", (c,), "norm"), (n + ".bias", (c,), "bias")])
    def res(n, cin, cout):
        norm(n + ".norm1", cin); conv(n + ".conv1", cin, cout, 3); norm(n + ".norm2", cout); conv(n + ".conv2", cout, cout, 3)
        if cin != cout:
            conv(n + ".nin_shortcut", cin, cout, 1)
    def attn(n, c):
        norm(n + ".norm", c)
        for m in ("q", "k", "v", "proj_out"):
            conv(n + "." + m, c, c, 1)
    conv("gen_vision_model.post_quant_conv", VQ["n_embed"], z, 1)
    d = "gen_vision_model.decoder."
    block_in = ch * mult[-1]
    conv(d + "conv_in", z, block_in, 3)
    res(d + "mid.0", block_in, block_in); attn(d + "mid.1", block_in); res(d + "mid.2", block_in, block_in)
    L = len(mult)
    for j, i_level in enumerate(reversed(range(L))):
        block_out = ch * mult[i_level]
        for r in range(nrb + 1):
            res(f"{d}conv_blocks.{j}.res.{r}", block_in, block_out)
            block_in = block_out
            if i_level == L - 1:
                attn(f"{d}conv_blocks.{j}.attn.{r}", block_in)
        if i_level != 0:
            conv(f"{d}conv_blocks.{j}.upsample.conv", block_in, block_in, 3)
    norm(d + "norm_out", block_in)
    conv(d + "conv_out", block_in, 3, 3)
    return out


def param_shapes():
    lm = [("language_model." + n, s, k) for n, s, k in mr.param_shapes(LANG)]
    gen = [("gen_embed.weight", (40, 8), "embed"),
           ("gen_aligner.layers.0.weight", (32, 8), "matrix"), ("gen_aligner.layers.0.bias", (32,), "bias"),
           ("gen_aligner.layers.2.weight", (32, 32), "matrix"), ("gen_aligner.layers.2.bias", (32,), "bias"),
           ("gen_head.output_mlp_projector.weight", (48, 32), "matrix"), ("gen_head.output_mlp_projector.bias", (48,), "bias"),
           ("gen_head.vision_head.weight", (40, 48), "matrix"), ("gen_head.vision_head.bias", (40,), "bias")]
    return lm + gen + vq_decoder_shapes() + vision_shapes()


def vision_shapes():
    """SigLIP (vision_model.vision_tower.*) and the understanding aligner; attn_pool is in real checkpoints, unused."""
    W, P, M = VIS["width"], VIS["patch"], VIS["mlp"]
    T = (VIS["image_size"] // P) ** 2
    v = "vision_model.vision_tower."
    out = [(v + "patch_embed.proj.weight", (W, 3, P, P), "conv"), (v + "patch_embed.proj.bias", (W,), "bias"),
           (v + "pos_embed", (1, T, W), "embed")]
    for i in range(VIS["layers"]):
        b = f"{v}blocks.{i}."
        out += [(b + "norm1.weight", (W,), "norm"), (b + "norm1.bias", (W,), "bias"),
                (b + "attn.qkv.weight", (3 * W, W), "vmatrix"), (b + "attn.qkv.bias", (3 * W,), "bias"),
                (b + "attn.proj.weight", (W, W), "vmatrix"), (b + "attn.proj.bias", (W,), "bias"),
                (b + "norm2.weight", (W,), "norm"), (b + "norm2.bias", (W,), "bias"),
                (b + "mlp.fc1.weight", (M, W), "vmatrix"), (b + "mlp.fc1.bias", (M,), "bias"),
                (b + "mlp.fc2.weight", (W, M), "vmatrix"), (b + "mlp.fc2.bias", (W,), "bias")]
    out += [(v + "norm.weight", (W,), "norm"), (v + "norm.bias", (W,), "bias"),
            (v + "attn_pool.latent", (1, 1, W), "embed"),
            ("aligner.layers.0.weight", (32, W), "vmatrix"), ("aligner.layers.0.bias", (32,), "bias"),
            ("aligner.layers.2.weight", (32, 32), "vmatrix"), ("aligner.layers.2.bias", (32,), "bias")]
    return out


def init_params(seed: int):
    rng = np.random.default_rng(seed)
    out = OrderedDict()
    for name, shape, kind in param_shapes():
        if kind in ("matrix", "embed", "codebook"):
            a = rng.standard_normal(shape) * (0.5 if kind == "matrix" and name.startswith("gen_head") else 0.3)
        elif kind == "vmatrix":  # fan-in scaled: the vision blocks stay O(1) through the residual stream
            a = rng.standard_normal(shape) / math.sqrt(shape[1])
        elif kind == "conv":  # fan-in scaled, so activations stay O(1) through the decoder
            a = rng.standard_normal(shape) / math.sqrt(shape[1] * shape[2] * shape[3])
        elif kind == "norm":
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif kind == "bias":
            a = 0.1 * rng.standard_normal(shape)
        else:
            raise ValueError(kind)
        out[name] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return out


# ---------------------------------------------------------------------------------------------------------------
# the model (float64)
# ---------------------------------------------------------------------------------------------------------------

def mlp_gelu(x, p, prefix, names):
    for i, n in enumerate(names):
        x = mr.linear(x, p[f"{prefix}.{n}.weight"], p[f"{prefix}.{n}.bias"])
        if i + 1 < len(names):
            x = F.gelu(x)  # nn.GELU(): the exact erf form
    return x


def gen_img_embeds(p, ids):  # prepare_gen_img_embeds: gen_aligner(gen_embed(ids))
    e = p["gen_embed.weight"][torch.tensor(ids, dtype=torch.long)]
    return mlp_gelu(e, p, "gen_aligner", ["layers.0", "layers.2"])


def gen_head(p, h):
    return mlp_gelu(h, p, "gen_head", ["output_mlp_projector", "vision_head"])


def lm_params(p):
    return {k[len("language_model."):]: v for k, v in p.items() if k.startswith("language_model.")}


def lm_hidden(p, x0):
    """Final-normed last hidden state of the Llama run on input embeddings x0 [T, d]."""
    lp = lm_params(p)
    out = mr.dense_forward(lp, LANG, None, x0=x0)
    return mr.rms_norm(out["hidden"][-1:], lp["model.norm.weight"], LANG["rms_norm_eps"])[0]


def group_norm(x, p, n):
    return F.group_norm(x, VQ["norm_groups"], p[n + ".weight"], p[n + ".bias"], eps=1e-6)


def conv(x, p, n):
    w = p[n + ".weight"]
    return F.conv2d(x, w, p[n + ".bias"], padding=w.shape[-1] // 2)


def swish(x):
    return x * torch.sigmoid(x)


def resnet(x, p, n):
    h = conv(swish(group_norm(x, p, n + ".norm1")), p, n + ".conv1")
    h = conv(swish(group_norm(h, p, n + ".norm2")), p, n + ".conv2")
    if (n + ".nin_shortcut.weight") in p:
        x = conv(x, p, n + ".nin_shortcut")
    return x + h


def attn_block(x, p, n):
    h = group_norm(x, p, n + ".norm")
    q, k, v = conv(h, p, n + ".q"), conv(h, p, n + ".k"), conv(h, p, n + ".v")
    b, c, hh, ww = q.shape
    q = q.reshape(b, c, hh * ww).permute(0, 2, 1)
    k = k.reshape(b, c, hh * ww)
    w_ = torch.softmax(torch.bmm(q, k) * (int(c) ** -0.5), dim=2)
    h = torch.bmm(v.reshape(b, c, hh * ww), w_.permute(0, 2, 1)).reshape(b, c, hh, ww)
    return x + conv(h, p, n + ".proj_out")


def vq_decode(p, codes, side):
    """codes [N, side*side] -> pixels [N, 3, H, W] (decode_code with shape [N, n_embed, side, side])."""
    emb = F.normalize(p["gen_vision_model.quantize.embedding.weight"], p=2, dim=-1)
    z = emb[torch.tensor(codes, dtype=torch.long)]                       # [N, side*side, 8]
    z = z.reshape(len(codes), side, side, -1).permute(0, 3, 1, 2)        # [N, 8, side, side]
    h = conv(z, p, "gen_vision_model.post_quant_conv")
    d = "gen_vision_model.decoder."
    h = conv(h, p, d + "conv_in")
    h = resnet(h, p, d + "mid.0"); h = attn_block(h, p, d + "mid.1"); h = resnet(h, p, d + "mid.2")
    L = len(VQ["ch_mult"])
    for j in range(L):
        for r in range(VQ["num_res_blocks"] + 1):
            h = resnet(h, p, f"{d}conv_blocks.{j}.res.{r}")
            if j == 0:
                h = attn_block(h, p, f"{d}conv_blocks.{j}.attn.{r}")
        if j != L - 1:
            h = conv(F.interpolate(h, scale_factor=2.0, mode="nearest"), p, f"{d}conv_blocks.{j}.upsample.conv")
    h = swish(group_norm(h, p, d + "norm_out"))
    return conv(h, p, d + "conv_out")


def siglip(p, pixels):
    """create_siglip_vit's VisionTransformer.forward_features on pixels [N, 3, S, S] -> [N, T, W]."""
    v, W, H = "vision_model.vision_tower.", VIS["width"], VIS["heads"]
    x = F.conv2d(pixels, p[v + "patch_embed.proj.weight"], p[v + "patch_embed.proj.bias"], stride=VIS["patch"])
    x = x.flatten(2).transpose(1, 2)  # PatchEmbed: [N, W, g, g] -> [N, T, W]
    x = x + p[v + "pos_embed"]        # no class token: pos_embed covers the patches only
    N, T, _ = x.shape
    ln = lambda t, n: F.layer_norm(t, (W,), p[n + ".weight"], p[n + ".bias"], eps=1e-6)
    for i in range(VIS["layers"]):
        b = f"{v}blocks.{i}."
        qkv = mr.linear(ln(x, b + "norm1"), p[b + "attn.qkv.weight"], p[b + "attn.qkv.bias"])
        q, k, w = qkv.reshape(N, T, 3, H, W // H).permute(2, 0, 3, 1, 4).unbind(0)  # [N, H, T, d]
        a = torch.softmax(q @ k.transpose(-2, -1) * (W // H) ** -0.5, dim=-1) @ w
        x = x + mr.linear(a.transpose(1, 2).reshape(N, T, W), p[b + "attn.proj.weight"], p[b + "attn.proj.bias"])
        h = F.gelu(mr.linear(ln(x, b + "norm2"), p[b + "mlp.fc1.weight"], p[b + "mlp.fc1.bias"]))
        x = x + mr.linear(h, p[b + "mlp.fc2.weight"], p[b + "mlp.fc2.bias"])
    return ln(x, v + "norm")


def image_rows(p, pixels):  # aligner(vision_model(images))
    return mlp_gelu(siglip(p, pixels), p, "aligner", ["layers.0", "layers.2"])


def preprocess(img):
    """VLMImageProcessor.resize + rescale + normalize (PIL image -> [3, S, S] float64)."""
    from PIL import Image
    S, mean, std = PREPROCESSOR["image_size"], PREPROCESSOR["image_mean"], PREPROCESSOR["image_std"]
    width, height = img.size
    max_size = max(width, height)
    size = [max(int(height / max_size * S), PREPROCESSOR["min_size"]), max(int(width / max_size * S), PREPROCESSOR["min_size"])]
    img = img.resize((size[1], size[0]), Image.BICUBIC)  # torchvision's F.resize on a PIL image calls PIL's resize
    bg = tuple(int(m * 255) for m in mean)
    w, h = img.size
    if w != h:
        sq = Image.new(img.mode, (max(w, h), max(w, h)), bg)
        sq.paste(img, (0, (w - h) // 2) if w > h else ((h - w) // 2, 0))
        img = sq
    x = np.transpose(np.asarray(img, dtype=np.float64), (2, 0, 1)) * PREPROCESSOR["rescale_factor"]
    x = (x - np.asarray(mean)[:, None, None]) / np.asarray(std)[:, None, None]
    return torch.from_numpy(x)


def understand_greedy(p, ids, rows, n_tokens):
    """prepare_inputs_embeds (placeholder rows <- image rows, in order) then greedy language_model.generate."""
    lp = lm_params(p)
    x = lp["model.embed_tokens.weight"][torch.tensor(ids, dtype=torch.long)].clone()
    mask = torch.tensor(ids) == PLACEHOLDER_ID
    x[mask] = rows.reshape(-1, rows.shape[-1])
    out, margins = [], []
    for _ in range(n_tokens):
        logits = mr.dense_forward(lp, LANG, None, x0=x)["logits"][-1]
        top = torch.topk(logits, 2).values
        margins.append(float(top[0] - top[1]))
        nxt = int(torch.argmax(logits))
        out.append(nxt)
        x = torch.cat([x, lp["model.embed_tokens.weight"][nxt:nxt + 1]])
    return out, margins


def understanding_prompt(rng):
    """[BOS] text <begin_of_image> placeholder x T <end_of_image> text: what processing_vlm.add_image_token builds."""
    T = (VIS["image_size"] // VIS["patch"]) ** 2
    text = lambda n: [int(t) for t in rng.integers(3, _BASE_VOCAB, size=n)]
    return [0] + text(5) + [BOI_ID] + [PLACEHOLDER_ID] * T + [EOI_ID] + text(4)


def test_picture():
    """A 40 x 24 RGB picture (gradients and noise), deterministic; wider than tall, so it is padded to a square."""
    from PIL import Image
    g = np.random.default_rng(11)
    yy, xx = np.mgrid[0:24, 0:40]
    a = np.stack([xx * 6, yy * 10, (xx + yy) * 4], axis=-1) + g.integers(0, 40, size=(24, 40, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def generate_greedy(p, prompt, pad_id, cfg_weight, n_tokens):
    """generation_inference.py's loop at temperature 0 (argmax) for one image; recomputes the prefix each step."""
    uncond = list(prompt)
    for t in range(1, len(prompt) - 1):
        uncond[t] = pad_id
    emb = lp_embed = lm_params(p)["model.embed_tokens.weight"]
    xc, xu = emb[torch.tensor(prompt)], lp_embed[torch.tensor(uncond)]
    codes, guided, margins = [], [], []
    for _ in range(n_tokens):
        c, u = gen_head(p, lm_hidden(p, xc)), gen_head(p, lm_hidden(p, xu))
        g = u + cfg_weight * (c - u)
        top = torch.topk(g, 2).values
        margins.append(float(top[0] - top[1]))
        nxt = int(torch.argmax(g))
        codes.append(nxt)
        guided.append(g)
        e = gen_img_embeds(p, [nxt])
        xc, xu = torch.cat([xc, e]), torch.cat([xu, e])
    return codes, torch.stack(guided), margins


def main():
    torch.set_default_dtype(DT)
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(7)
    best = None
    picture = test_picture()
    for seed in range(1, 40):  # the first weights whose greedy choices are all clear (margin >= 2e-3)
        p32 = init_params(seed)
        p = {k: v.to(DT) for k, v in p32.items()}
        prompt = [int(t) for t in rng.integers(2, _BASE_VOCAB, size=7)]
        codes, guided, margins = generate_greedy(p, prompt, 1, 5.0, 16)
        if min(margins) < 2e-3 or len(set(codes)) < 4:
            continue
        u_prompt = understanding_prompt(rng)
        u_pixels = preprocess(picture).unsqueeze(0)
        u_tokens, u_margins = understand_greedy(p, u_prompt, image_rows(p, u_pixels), 10)
        if min(u_margins) >= 2e-3:
            best = (seed, p32, p, prompt, codes, guided, margins)
            break
    assert best is not None, "no seed gave clear greedy margins"
    seed, p32, p, prompt, codes, guided, margins = best
    side = VQ["image_size"] // (2 ** (len(VQ["ch_mult"]) - 1))
    pixels = vq_decode(p, [codes], side).permute(0, 2, 3, 1)          # [1, 16, 16, 3] channels-last
    rand_codes = [int(t) for t in rng.integers(0, 40, size=side * side * 2)]
    rand_pixels = vq_decode(p, [rand_codes[:16], rand_codes[16:]], side).permute(0, 2, 3, 1)
    emb_ids = [0, 39, 5, 17, 17]
    embeds = gen_img_embeds(p, emb_ids)
    hrows = torch.from_numpy(rng.standard_normal((3, 32)))
    head_logits = gen_head(p, hrows)

    # Self-checks: the generation is deterministic in its inputs and guidance matters.
    c1, _, _ = generate_greedy(p, prompt, 1, 1.0, 16)
    assert c1 != codes, "cfg weight 1 (no guidance) should change the greedy picture on this model"

    # Understanding: the picture through the processor, SigLIP and the aligner; a batch of two for the encoder.
    rand_pix = torch.from_numpy(rng.uniform(-1, 1, size=(1, 3, 32, 32)))
    vis_in = torch.cat([u_pixels, rand_pix])
    vis_feats = siglip(p, vis_in)
    vis_rows = image_rows(p, vis_in)
    # Self-check: the image matters to the answer.
    other, _ = understand_greedy(p, u_prompt, image_rows(p, rand_pix), 10)
    assert other != u_tokens, "a different picture should change the greedy answer on this model"

    mr.write_safetensors(os.path.join(OUT, "model.safetensors"), p32)
    picture.save(os.path.join(OUT, "picture.png"))
    with open(os.path.join(OUT, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(_tj, f, ensure_ascii=False)
    with open(os.path.join(OUT, "preprocessor_config.json"), "w") as f:
        json.dump(PREPROCESSOR, f, indent=2)
        f.write("\n")
    for name in ("tokenizer_config.json",):
        with open(os.path.join(os.path.dirname(TOKENIZER), name), "rb") as src, open(os.path.join(OUT, name), "wb") as dst:
            dst.write(src.read())
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
        f.write("\n")
    fl = lambda t: [round(float(x), 9) for x in t.reshape(-1)]
    fixture = {
        "seed": seed, "prompt": prompt, "pad_id": 1, "cfg_weight": 5.0, "codes": codes, "codes_cfg1": c1,
        "min_margin": min(margins), "guided_logits": fl(guided),
        "pixels": fl(pixels), "rand_codes": rand_codes, "rand_pixels": fl(rand_pixels),
        "embed_ids": emb_ids, "embeds": fl(embeds), "head_hidden": fl(hrows), "head_logits": fl(head_logits),
        # understanding (channels-last pixels [2, 32, 32, 3]: the preprocessed picture.png, then random pixels)
        "vision_pixels": fl(vis_in.permute(0, 2, 3, 1)), "vision_features": fl(vis_feats), "vision_rows": fl(vis_rows),
        "understand_prompt": u_prompt, "understand_tokens": u_tokens, "understand_min_margin": min(u_margins),
        "understand_tokens_other_image": other, "image_token_ids": [PLACEHOLDER_ID, BOI_ID, EOI_ID],
    }
    with open(os.path.join(OUT, "fixture.json"), "w") as f:
        json.dump(fixture, f)
        f.write("\n")
    print(f"janus fixture: seed {seed}, codes {codes}, min margin {min(margins):.4g}; understanding {u_tokens}, "
          f"min margin {min(u_margins):.4g}")


if __name__ == "__main__":
    main()
