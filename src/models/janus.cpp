// models/janus.cpp — Janus-Pro's config, parameter accounting and generation-side modules (see janus.h).
#include "models/janus.h"

#include <filesystem>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "models/config_reader.h"
#include "models/dense.h"
#include "models/weights.h"

namespace baleine {

using nlohmann::json;
using detail::Reader;

bool is_janus_config(const json& j) { return j.is_object() && j.value("model_type", std::string()) == "multi_modality"; }

namespace {

// A sub-config: {"cls": ..., "params": {...}}; returns params (an empty object when absent).
const json& sub_params(const json& j, const char* key, const std::string& source, std::string* cls) {
  static const json kEmpty = json::object();
  BALEINE_CHECK(j.contains(key) && j[key].is_object(), "{}: missing required key '{}' (an object)", source, key);
  const json& s = j[key];
  if (cls) *cls = s.value("cls", std::string());
  if (!s.contains("params")) return kEmpty;
  BALEINE_CHECK(s["params"].is_object(), "{}: key '{}.params' must be an object", source, key);
  return s["params"];
}

void check_mlp_gelu(const json& p, const std::string& where) {
  const std::string type = p.value("projector_type", std::string("mlp_gelu"));
  BALEINE_CHECK(type == "mlp_gelu", "{}: projector_type '{}' is not supported (Janus-Pro uses mlp_gelu)", where, type);
}

// transformers' LlamaConfig defaults: Janus-Pro-7B's language_config gives only a few keys and relies on them.
json with_llama_defaults(json lc) {
  const json defaults = {{"model_type", "llama"},          {"vocab_size", 32000},
                         {"hidden_size", 4096},            {"intermediate_size", 11008},
                         {"num_hidden_layers", 32},        {"num_attention_heads", 32},
                         {"max_position_embeddings", 2048}, {"rms_norm_eps", 1e-6},
                         {"rope_theta", 10000.0},          {"tie_word_embeddings", false}};
  for (auto it = defaults.begin(); it != defaults.end(); ++it)
    if (!lc.contains(it.key()) || lc[it.key()].is_null()) lc[it.key()] = it.value();
  return lc;
}

}  // namespace

JanusConfig parse_janus_config(const json& j, const std::string& source) {
  BALEINE_CHECK(is_janus_config(j), "{}: not a Janus config (model_type must be multi_modality)", source);
  JanusConfig c;
  BALEINE_CHECK(j.contains("language_config") && j["language_config"].is_object(),
                "{}: missing required key 'language_config' (an object)", source);
  json lc = with_llama_defaults(j["language_config"]);
  BALEINE_CHECK(lc["model_type"] == "llama", "{}: language_config.model_type is {}; Janus-Pro's language model is llama",
                source, lc["model_type"].dump());
  c.language = parse_model_config(lc, source + " (language_config)");
  const int64_t d = c.language.hidden_size;

  std::string cls;
  const json& gv = sub_params(j, "gen_vision_config", source, &cls);
  const std::string gvw = source + " (gen_vision_config.params)";
  BALEINE_CHECK(cls == "VQ-16", "{}: gen_vision_config.cls '{}' is not supported (VQ-16)", source, cls);
  Reader g{gv, gvw};
  c.image_token_size = g.integer("image_token_size", 16384, false, 1);
  c.gen_embed_dim = g.integer("n_embed", 8, false, 1);
  // baleine's extension keys (tiny test models; VQ-16's fixed ModelArgs otherwise).
  c.vq.codebook_size = c.image_token_size;
  c.vq.codebook_dim = c.gen_embed_dim;
  c.vq.ch = g.integer("ch", 128, false, 1);
  c.vq.z_channels = g.integer("z_channels", 256, false, 1);
  c.vq.num_res_blocks = g.integer("num_res_blocks", 2, false, 0);
  c.vq.norm_groups = g.integer("norm_groups", 32, false, 1);
  c.vq.codebook_l2_norm = g.boolean("codebook_l2_norm", true);
  if (g.has("ch_mult")) {
    BALEINE_CHECK(gv["ch_mult"].is_array() && !gv["ch_mult"].empty() && gv["ch_mult"].size() <= 8,
                  "{}: key 'ch_mult' must be a list of 1 to 8 integers", gvw);
    c.vq.ch_mult.clear();
    for (const json& m : gv["ch_mult"]) {
      BALEINE_CHECK(m.is_number_integer() && m.get<int64_t>() >= 1 && m.get<int64_t>() <= 64,
                    "{}: key 'ch_mult' must hold integers in [1, 64], got {}", gvw, m.dump());
      c.vq.ch_mult.push_back(m.get<int64_t>());
    }
  }
  for (int64_t m : c.vq.ch_mult)
    BALEINE_CHECK((c.vq.ch * m) % c.vq.norm_groups == 0, "{}: {} channels (ch {} × {}) do not split into {} groups",
                  gvw, c.vq.ch * m, c.vq.ch, m, c.vq.norm_groups);
  c.image_size = g.integer("image_size", 384, false, 1);
  BALEINE_CHECK(c.image_size % c.vq.downsample() == 0 && c.image_size <= 4096,
                "{}: image_size {} must be a multiple of the VQ downsampling {} (and at most 4096)", gvw, c.image_size,
                c.vq.downsample());

  const json& ga = sub_params(j, "gen_aligner_config", source, &cls);
  const std::string gaw = source + " (gen_aligner_config.params)";
  check_mlp_gelu(ga, gaw);
  Reader a{ga, gaw};
  c.gen_aligner_in = a.integer("input_dim", c.gen_embed_dim, false, 1);
  c.gen_aligner_width = a.integer("n_embed", d, false, 1);
  c.gen_aligner_depth = a.integer("depth", 2, false, 1);
  BALEINE_CHECK(c.gen_aligner_in == c.gen_embed_dim, "{}: input_dim {} must equal gen_vision n_embed {}", gaw,
                c.gen_aligner_in, c.gen_embed_dim);
  BALEINE_CHECK(c.gen_aligner_width == d, "{}: n_embed {} must equal the language model's hidden_size {}", gaw,
                c.gen_aligner_width, d);

  const json& gh = sub_params(j, "gen_head_config", source, &cls);
  const std::string ghw = source + " (gen_head_config.params)";
  Reader h{gh, ghw};
  c.gen_head_in = h.integer("n_embed", d, false, 1);
  c.gen_head_mid = h.integer("image_token_embed", d, false, 1);
  c.gen_head_out = h.integer("image_token_size", c.image_token_size, false, 1);
  BALEINE_CHECK(c.gen_head_in == d, "{}: n_embed {} must equal the language model's hidden_size {}", ghw, c.gen_head_in, d);
  BALEINE_CHECK(c.gen_head_out == c.image_token_size, "{}: image_token_size {} must equal the VQ codebook size {}", ghw,
                c.gen_head_out, c.image_token_size);

  if (j.contains("vision_config")) {
    const json& vp = sub_params(j, "vision_config", source, &cls);
    const std::string vw = source + " (vision_config.params)";
    Reader v{vp, vw};
    c.vision_model_name = v.string("model_name", "siglip_large_patch16_384");
    c.vision_image_size = v.integer("image_size", 384, false, 1);
    const std::string feature = v.string("select_feature", "same");
    BALEINE_CHECK(feature == "same", "{}: select_feature '{}' is not supported (SigLIP uses 'same')", vw, feature);
    SiglipOverrides tiny;  // baleine's extension keys for tiny test models
    tiny.width = v.integer("width", 0, false, 1);
    tiny.layers = v.integer("layers", 0, false, 1);
    tiny.heads = v.integer("heads", 0, false, 1);
    tiny.patch = v.integer("patch_size", 0, false, 1);
    tiny.mlp_ratio = v.number("mlp_ratio", 0.0);
    const int64_t select_layer = v.integer("select_layer", -1, false, -1000);
    try {
      c.vision = siglip_config(c.vision_model_name, c.vision_image_size, select_layer, tiny);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", vw, e.what()));
    }
    c.has_vision = true;
  }
  if (j.contains("aligner_config")) {
    const json& ap = sub_params(j, "aligner_config", source, &cls);
    Reader al{ap, source + " (aligner_config.params)"};
    c.aligner_in = al.integer("input_dim", 1024, false, 1);
    c.aligner_width = al.integer("n_embed", d, false, 1);
    c.aligner_depth = al.integer("depth", 2, false, 1);
    check_mlp_gelu(ap, source + " (aligner_config.params)");
  }
  if (c.has_vision) {
    BALEINE_CHECK(j.contains("aligner_config"), "{}: vision_config needs an aligner_config", source);
    BALEINE_CHECK(c.aligner_in == c.vision.width, "{}: aligner_config input_dim {} must equal the vision width {}", source,
                  c.aligner_in, c.vision.width);
    BALEINE_CHECK(c.aligner_width == d, "{}: aligner_config n_embed {} must equal the language model's hidden_size {}",
                  source, c.aligner_width, d);
  }
  return c;
}

JanusConfig load_janus_config(const std::string& path) {
  auto [j, source] = detail::read_config_json(path);
  JanusConfig c = parse_janus_config(j, source);
  // VLMImageProcessor's settings, when the checkpoint ships them (Janus-Pro: image_size 384, min_size 14, mean and
  // std 0.5); the processor's image_size must match the vision tower's.
  namespace fs = std::filesystem;
  const fs::path pre = fs::path(source).parent_path() / "preprocessor_config.json";
  std::error_code ec;
  if (c.has_vision && fs::is_regular_file(pre, ec)) {
    auto [pj, psource] = detail::read_config_json(pre.string());
    Reader r{pj, psource};
    c.image_min_size = r.integer("min_size", 14, false, 1);
    const int64_t size = r.integer("image_size", c.vision_image_size, false, 1);
    BALEINE_CHECK(size == c.vision_image_size, "{}: image_size {} differs from the vision tower's {}", psource, size,
                  c.vision_image_size);
    for (const char* key : {"image_mean", "image_std"}) {
      if (!pj.contains(key) || pj[key].is_null()) continue;
      BALEINE_CHECK(pj[key].is_array() && pj[key].size() == 3, "{}: key '{}' must be a list of 3 numbers", psource, key);
      std::array<float, 3>& dst = std::string(key) == "image_mean" ? c.image_mean : c.image_std;
      for (size_t i = 0; i < 3; ++i) {
        BALEINE_CHECK(pj[key][i].is_number(), "{}: key '{}' must be a list of 3 numbers", psource, key);
        dst[i] = pj[key][i].get<float>();
      }
    }
    for (float s : c.image_std) BALEINE_CHECK(s > 0, "{}: image_std values must be positive", psource);
  }
  return c;
}

bool is_janus_model_dir(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p = fs::is_directory(path, ec) ? fs::path(path) / "config.json" : fs::path(path);
  if (p.filename() != "config.json" || !fs::is_regular_file(p, ec)) return false;
  try {
    return is_janus_config(detail::read_config_json(p.string()).first);
  } catch (const Error&) {
    return false;
  }
}

namespace {

double mlp_params(int64_t in, int64_t width, int64_t depth) {
  return double(in) * double(width) + double(width) + double(depth - 1) * (double(width) * double(width) + double(width));
}
double conv_params(int64_t cin, int64_t cout, int64_t k) { return double(cout) * double(cin) * double(k * k) + double(cout); }
double resnet_params(int64_t in, int64_t out) {
  return 2.0 * in + conv_params(in, out, 3) + 2.0 * out + conv_params(out, out, 3) + (in != out ? conv_params(in, out, 1) : 0.0);
}
double attn_params(int64_t c) { return 2.0 * c + 4.0 * conv_params(c, c, 1); }

// The VQ-16 encoder and quant_conv (vq_model.py Encoder): conv_in, per level num_res_blocks ResnetBlocks (+ an
// AttnBlock each at the last level) and a stride-2 conv except at the last, the middle, norm_out and conv_out.
double vq_encoder_params(const VqConfig& v) {
  const int64_t L = int64_t(v.ch_mult.size());
  double n = conv_params(3, v.ch, 3);
  int64_t block_in = v.ch;
  for (int64_t i = 0; i < L; ++i) {
    const int64_t block_out = v.ch * v.ch_mult[size_t(i)];
    for (int64_t r = 0; r < v.num_res_blocks; ++r) {
      n += resnet_params(block_in, block_out);
      block_in = block_out;
      if (i == L - 1) n += attn_params(block_in);
    }
    if (i != L - 1) n += conv_params(block_in, block_in, 3);
  }
  n += 2 * resnet_params(block_in, block_in) + attn_params(block_in);
  n += 2.0 * block_in + conv_params(block_in, v.z_channels, 3);
  return n + conv_params(v.z_channels, v.codebook_dim, 1);
}

}  // namespace

namespace {
// A visitor adding each parameter's element count to `total`.
nn::ParamVisitor counter(double& total) {
  return [&total](nn::Param& p) {
    double n = 1;
    for (int64_t x : p.shape) n *= double(x);
    total += n;
  };
}
}  // namespace

JanusStats janus_stats(const JanusConfig& c) {
  JanusStats s;
  auto lm = create_model(c.language);
  lm->for_each_param(counter(s.language));
  s.gen_embed = double(c.image_token_size) * double(c.gen_embed_dim);
  s.gen_aligner = mlp_params(c.gen_aligner_in, c.gen_aligner_width, c.gen_aligner_depth);
  s.gen_head = double(c.gen_head_in) * c.gen_head_mid + c.gen_head_mid + double(c.gen_head_mid) * c.gen_head_out + c.gen_head_out;
  VqDecoder dec;
  dec.init(c.vq);
  dec.visit("vq", counter(s.vq_decoder));
  s.vq_encoder = vq_encoder_params(c.vq);
  if (c.has_vision) {
    SiglipEncoder enc;
    enc.init(c.vision);
    enc.visit("vision", counter(s.vision));
  }
  if (c.aligner_width > 0) s.aligner = mlp_params(c.aligner_in, c.aligner_width, c.aligner_depth);
  return s;
}

JanusModel::JanusModel(const JanusConfig& config) : cfg_(config), arena_(1 << 20) {
  lm_ = create_model(cfg_.language);
  gen_embed_.init(cfg_.image_token_size, cfg_.gen_embed_dim);
  gen_aligner_.init_sequential(cfg_.gen_aligner_in, cfg_.gen_aligner_width, cfg_.gen_aligner_depth);
  gen_head_.init_named(cfg_.gen_head_in, cfg_.gen_head_mid, cfg_.gen_head_out, "output_mlp_projector", "vision_head");
  vq_.init(cfg_.vq);
  if (cfg_.has_vision) {
    vision_.init(cfg_.vision);
    aligner_.init_sequential(cfg_.aligner_in, cfg_.aligner_width, cfg_.aligner_depth);
  }
}

void JanusModel::for_each_param(const nn::ParamVisitor& v) {
  lm_->for_each_param([&](nn::Param& p) {
    p.name = "language_model." + p.name;
    v(p);
  });
  gen_embed_.visit("gen_embed.weight", v);
  gen_aligner_.visit("gen_aligner", v);
  gen_head_.visit("gen_head", v);
  vq_.visit("gen_vision_model", v);
  if (cfg_.has_vision) {
    vision_.visit("vision_model.vision_tower", v);
    aligner_.visit("aligner", v);
  }
}

void JanusModel::prepare() {
  lm_->prepare();
  vq_.prepare();
  if (cfg_.has_vision) vision_.prepare();
}

Tensor JanusModel::image_rows(const float* pixels, int64_t N) {
  BALEINE_CHECK(cfg_.has_vision, "this Janus checkpoint has no vision tower (vision_config): it cannot read images");
  arena_.reset();
  Tensor feats = vision_.forward(pixels, N, arena_);  // [N, T, W]
  const int64_t T = cfg_.vision.tokens();
  Tensor rows = Tensor::empty(DType::F32, {N, T, cfg_.language.hidden_size});
  aligner_.forward(rows.f32(), feats.f32(), N * T, arena_);
  return rows;
}

void JanusModel::image_embeddings(float* out, const int32_t* ids, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    BALEINE_CHECK(ids[i] >= 0 && ids[i] < cfg_.image_token_size, "image token {} is outside [0, {})", ids[i],
                  cfg_.image_token_size);
  arena_.reset();
  float* e = arena_.alloc<float>(size_t(n * cfg_.gen_embed_dim));  // [n, 8]
  gen_embed_.forward(e, ids, n);
  gen_aligner_.forward(out, e, n, arena_);
}

void JanusModel::image_logits(float* out, const float* h, int64_t n) {
  arena_.reset();
  gen_head_.forward(out, h, n, arena_);
}

Tensor JanusModel::decode_images(const int32_t* codes, int64_t N) const {
  return vq_.decode(codes, N, cfg_.tokens_per_side(), cfg_.tokens_per_side());
}

std::unique_ptr<JanusModel> load_janus(const std::string& dir) {
  namespace fs = std::filesystem;
  BALEINE_CHECK(fs::is_directory(dir), "{}: a Janus model is a directory (config.json + weights)", dir);
  auto model = std::make_unique<JanusModel>(load_janus_config(dir));
  load_params([&](const nn::ParamVisitor& v) { model->for_each_param(v); }, dir);
  model->prepare();
  return model;
}

}  // namespace baleine
