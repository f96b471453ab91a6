// GGUF models: for the five parity fixtures (v3, v2_lite, v2, qwen2, llama), HF → GGUF → load gives logits equal
// to the HF-loaded model (and within the fixture tolerance of PyTorch), legacy attn_kv_b files equal MLA-split
// ones, GGUF → HF round trips are bit-exact for f32, the metadata is what llama.cpp reads, and bad files (unknown
// arch, unknown tensor type, missing tensor, wrong shape) give clear errors.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "models/gguf_model.h"
#include "models/model.h"
#include "models/quantize.h"
#include "models/weights.h"

using namespace baleine;
using namespace baleine::io;
namespace fs = std::filesystem;

namespace {

const std::string kParity = std::string(BALEINE_TEST_DATA) + "/parity";

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("baleine_test_gguf_model_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::vector<int32_t> fixture_tokens(const std::string& name) {
  std::ifstream in(kParity + "/" + name + "/fixture.json");
  return nlohmann::json::parse(in)["tokens"].get<std::vector<int32_t>>();
}

std::vector<float> read_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

double max_rel_diff(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / std::max(den, 1e-30);
}

// Copies `src` to `dst` with edits: metadata overrides, a dropped tensor, a tensor replaced.
void rewrite(const std::string& src, const std::string& dst, const std::vector<std::pair<std::string, GgufValue>>& set,
             const std::string& drop = "", const std::string& replace = "", Tensor replacement = {},
             const std::string& drop_key_prefix = "") {
  GgufFile f = GgufFile::open(src);
  GgufWriter w;
  for (const auto& [k, v] : f.metadata())
    if (drop_key_prefix.empty() || k.rfind(drop_key_prefix, 0) != 0) w.set(k, v);
  for (const auto& [k, v] : set) w.set(k, v);
  for (const auto& t : f.tensors()) {
    if (t.name == drop) continue;
    if (t.name == replace) w.add_tensor(t.name, replacement);
    else w.add_tensor(t.name, f.tensor(t.name));
  }
  w.write(dst);
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

class GgufParity : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufParity, LogitsEqualTheHfModel) {
  TempDir dir;
  const std::string name = GetParam();
  auto hf = load_model(kParity + "/" + name);
  write_gguf_model(*hf, dir.file("m.gguf"));
  ASSERT_TRUE(is_gguf_path(dir.file("m.gguf")));
  auto gg = load_model(dir.file("m.gguf"));
  EXPECT_EQ(gg->config().architecture, hf->config().architecture);
  EXPECT_EQ(gg->config().topk_method, hf->config().topk_method);
  auto tokens = fixture_tokens(name);
  for (MlaMode mode : {MlaMode::Naive, MlaMode::Absorbed}) {
    Tensor a = hf->logits(tokens, mode), b = gg->logits(tokens, mode);
    ASSERT_EQ(a.shape(), b.shape());
    EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << name << ": logits differ";
  }
  std::vector<float> ref = read_f32(kParity + "/" + name + "/logits.bin");
  Tensor b = gg->logits(tokens);
  ASSERT_EQ(size_t(b.numel()), ref.size());
  EXPECT_LE(max_rel_diff(b.f32(), ref.data(), ref.size()), 1e-4) << name << " vs PyTorch";
  EXPECT_EQ(gg->has_mtp(), hf->has_mtp());
  if (hf->has_mtp()) {
    Tensor ma = hf->mtp_logits(tokens), mb = gg->mtp_logits(tokens);
    EXPECT_EQ(std::memcmp(ma.raw(), mb.raw(), ma.nbytes()), 0) << name << ": MTP logits differ";
  }
}

TEST_P(GgufParity, RoundTripToHfIsBitExact) {
  TempDir dir;
  const std::string name = GetParam();
  auto hf = load_model(kParity + "/" + name);
  write_gguf_model(*hf, dir.file("m.gguf"));
  auto gg = load_model(dir.file("m.gguf"));
  SafetensorsReader orig = SafetensorsReader::open(kParity + "/" + name + "/model.safetensors");
  int compared = 0;
  gg->for_each_param([&](nn::Param& p) {
    if (!p.tensor->defined()) return;
    ASSERT_TRUE(orig.contains(p.name)) << p.name;
    Tensor want = orig.tensor_as(p.name, DType::F32);
    Tensor got = p.tensor->to_f32();
    ASSERT_EQ(got.shape(), want.shape()) << p.name;
    EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0) << p.name;
    ++compared;
  });
  EXPECT_GT(compared, 10);
}

TEST_P(GgufParity, LegacyKvBEqualsSplitKbVb) {
  const std::string name = GetParam();
  if (name == "qwen2" || name == "llama") GTEST_SKIP() << "MLA only";
  if (name == "v32") GTEST_SKIP() << "the pre-MLA attn_kv_b layout predates llama.cpp's deepseek32";
  TempDir dir;
  auto hf = load_model(kParity + "/" + name);
  GgufWriteOptions legacy;
  legacy.legacy_kv_b = true;
  write_gguf_model(*hf, dir.file("split.gguf"));
  write_gguf_model(*hf, dir.file("legacy.gguf"), legacy);
  GgufFile s = GgufFile::open(dir.file("split.gguf")), l = GgufFile::open(dir.file("legacy.gguf"));
  EXPECT_TRUE(s.contains("blk.0.attn_k_b.weight") && s.contains("blk.0.attn_v_b.weight") && !s.contains("blk.0.attn_kv_b.weight"));
  EXPECT_TRUE(l.contains("blk.0.attn_kv_b.weight") && !l.contains("blk.0.attn_k_b.weight"));
  EXPECT_EQ(s.get_int("deepseek2.attention.head_count_kv", -1), 1);
  EXPECT_EQ(l.get_int("deepseek2.attention.head_count_kv", -1), hf->config().num_attention_heads);
  auto a = load_model(dir.file("split.gguf")), b = load_model(dir.file("legacy.gguf"));
  auto tokens = fixture_tokens(name);
  Tensor la = a->logits(tokens), lb = b->logits(tokens);
  EXPECT_EQ(std::memcmp(la.raw(), lb.raw(), la.nbytes()), 0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GgufParity, ::testing::Values("v3", "v2_lite", "v2", "qwen2", "llama", "v32"));

// DeepSeek-V3.2 files use llama.cpp's deepseek32 architecture: its indexer keys and tensor names, and a file that
// lacks either gives a one-line error naming the file and the field.
TEST(GgufModel, DeepSeek32IndexerKeysAndTensors) {
  TempDir dir;
  auto hf = load_model(kParity + "/v32");
  write_gguf_model(*hf, dir.file("m.gguf"));
  GgufFile f = GgufFile::open(dir.file("m.gguf"));
  EXPECT_EQ(f.get_string("general.architecture", ""), "deepseek32");
  EXPECT_EQ(f.get_int("deepseek32.attention.indexer.head_count", -1), 8);
  EXPECT_EQ(f.get_int("deepseek32.attention.indexer.key_length", -1), 16);
  EXPECT_EQ(f.get_int("deepseek32.attention.indexer.top_k", -1), 4);
  EXPECT_EQ(f.get_int("deepseek32.expert_gating_func", -1), 2);
  EXPECT_EQ(f.get_int("deepseek32.nextn_predict_layers", -1), 1);
  for (const char* t : {"indexer.attn_q_b.weight", "indexer.attn_k.weight", "indexer.k_norm.weight", "indexer.k_norm.bias",
                        "indexer.proj.weight"})
    for (int layer : {0, 1, 2}) EXPECT_TRUE(f.contains("blk." + std::to_string(layer) + "." + t)) << layer << " " << t;
  // ggml order: ne = [in, out] for the projections, as llama.cpp's create_tensor expects.
  EXPECT_EQ(f.info("blk.0.indexer.attn_q_b.weight").ne, (std::vector<int64_t>{24, 8 * 16}));
  EXPECT_EQ(f.info("blk.0.indexer.proj.weight").ne, (std::vector<int64_t>{32, 8}));

  rewrite(dir.file("m.gguf"), dir.file("no_k.gguf"), {}, "blk.1.indexer.attn_k.weight");
  std::string e = error_of([&] { load_model(dir.file("no_k.gguf")); });
  EXPECT_NE(e.find("no_k.gguf"), std::string::npos) << e;
  EXPECT_NE(e.find("blk.1.indexer.attn_k.weight"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  rewrite(dir.file("m.gguf"), dir.file("no_topk.gguf"), {}, "", "", {}, "deepseek32.attention.indexer.top_k");
  e = error_of([&] { load_model(dir.file("no_topk.gguf")); });
  EXPECT_NE(e.find("deepseek32.attention.indexer.top_k"), std::string::npos) << e;
  rewrite(dir.file("m.gguf"), dir.file("big_topk.gguf"),
          {{"deepseek32.attention.indexer.top_k", GgufValue::of_u32(1u << 30)}});
  e = error_of([&] { load_model(dir.file("big_topk.gguf")); });
  EXPECT_NE(e.find("index_topk"), std::string::npos) << e;
  EXPECT_NE(e.find("exceeds the context"), std::string::npos) << e;
}

}  // namespace

TEST(GgufModel, MetadataIsWhatLlamaCppReads) {
  TempDir dir;
  auto hf = load_model(kParity + "/v3");
  write_gguf_model(*hf, dir.file("v3.gguf"));
  GgufFile f = GgufFile::open(dir.file("v3.gguf"));
  const ModelConfig& c = hf->config();
  EXPECT_EQ(f.get_string("general.architecture", ""), "deepseek2");
  EXPECT_EQ(f.get_int("deepseek2.block_count", 0), c.num_hidden_layers + 1);  // + the MTP layer
  EXPECT_EQ(f.get_int("deepseek2.nextn_predict_layers", 0), 1);
  EXPECT_EQ(f.get_int("deepseek2.attention.key_length", 0), c.kv_lora_rank + c.qk_rope_head_dim);
  EXPECT_EQ(f.get_int("deepseek2.attention.value_length", 0), c.kv_lora_rank);
  EXPECT_EQ(f.get_int("deepseek2.attention.key_length_mla", 0), c.qk_head_dim());
  EXPECT_EQ(f.get_int("deepseek2.expert_gating_func", 0), 2);
  EXPECT_EQ(f.get_int("deepseek2.expert_group_count", 0), c.n_group);
  EXPECT_EQ(f.get_int("deepseek2.expert_group_used_count", 0), c.topk_group);
  EXPECT_EQ(f.get_int("deepseek2.leading_dense_block_count", -1), c.first_k_dense_replace);
  EXPECT_TRUE(f.get_bool("deepseek2.expert_weights_norm", false));
  EXPECT_FLOAT_EQ(float(f.get_double("deepseek2.expert_weights_scale", 0)), 2.5f);
  EXPECT_FLOAT_EQ(float(f.get_double("deepseek2.rope.scaling.yarn_log_multiplier", 0)), 0.1f);
  EXPECT_EQ(f.get_string("deepseek2.rope.scaling.type", ""), "yarn");
  // ggml shapes, innermost first
  const int64_t E = c.n_routed_experts, d = c.hidden_size, ff = c.moe_intermediate_size, H = c.num_attention_heads;
  EXPECT_EQ(f.info("blk.1.ffn_gate_exps.weight").ne, (std::vector<int64_t>{d, ff, E}));
  EXPECT_EQ(f.info("blk.1.ffn_down_exps.weight").ne, (std::vector<int64_t>{ff, d, E}));
  EXPECT_EQ(f.info("blk.0.attn_k_b.weight").ne, (std::vector<int64_t>{c.qk_nope_head_dim, c.kv_lora_rank, H}));
  EXPECT_EQ(f.info("blk.0.attn_v_b.weight").ne, (std::vector<int64_t>{c.kv_lora_rank, c.v_head_dim, H}));
  EXPECT_TRUE(f.contains("blk.1.exp_probs_b.bias"));
  EXPECT_TRUE(f.contains("blk.3.nextn.eh_proj.weight"));
  EXPECT_EQ(f.info("blk.3.nextn.eh_proj.weight").ne, (std::vector<int64_t>{2 * d, d}));
  // stacked experts are sliced without copying: expert 1's gate points into the mapping
  auto gg = load_gguf_model(f);
  int found = 0;
  const uint8_t* stacked = f.data(f.info("blk.1.ffn_gate_exps.weight"));
  gg->for_each_param([&](nn::Param& p) {
    if (p.name == "model.layers.1.mlp.experts.1.gate_proj.weight") {
      EXPECT_EQ(static_cast<const uint8_t*>(p.tensor->raw()), stacked + size_t(ff * d * 4));
      ++found;
    }
  });
  EXPECT_EQ(found, 1);
}

TEST(GgufModel, LlamaQkAreUnpermuted) {
  TempDir dir;
  auto hf = load_model(kParity + "/llama");
  write_gguf_model(*hf, dir.file("l.gguf"));
  GgufFile f = GgufFile::open(dir.file("l.gguf"));
  SafetensorsReader orig = SafetensorsReader::open(kParity + "/llama/model.safetensors");
  Tensor q = orig.tensor_as("model.layers.0.self_attn.q_proj.weight", DType::F32);
  Tensor g = f.tensor("blk.0.attn_q.weight");
  const int64_t D = hf->config().head_dim, K = q.dim(1);
  // GGUF row 1 of head 0 is HF row D/2 (the second half's first row), as llama.cpp's converter permutes.
  EXPECT_EQ(std::memcmp(g.f32() + 1 * K, q.f32() + (D / 2) * K, size_t(K) * 4), 0);
  EXPECT_NE(std::memcmp(g.raw(), q.raw(), q.nbytes()), 0);
  EXPECT_TRUE(f.contains("rope_freqs.weight"));  // llama3 scaling as llama.cpp applies it
  // Without our own keys (a file from llama.cpp's converter) the llama3 parameters are solved from rope_freqs and
  // checked against every value: logits equal the HF model's to float rounding.
  rewrite(dir.file("l.gguf"), dir.file("plain.gguf"), {}, "", "", {}, "baleine.");
  auto plain = load_model(dir.file("plain.gguf"));
  const auto& rs = plain->config().rope_scaling;
  EXPECT_EQ(rs.type, RopeScalingType::Llama3);
  EXPECT_NEAR(rs.factor, 8.0, 1e-5);
  EXPECT_NEAR(rs.high_freq_factor / rs.low_freq_factor, 4.0, 1e-3);
  EXPECT_NEAR(rs.original_max_position_embeddings / rs.low_freq_factor, 256.0, 0.1);
  auto tokens = fixture_tokens("llama");
  Tensor a = hf->logits(tokens), b = plain->logits(tokens);
  EXPECT_LE(max_rel_diff(b.f32(), a.f32(), size_t(a.numel())), 1e-5);
  // rope_freqs that no llama3 scaling produces are refused, not loaded wrong
  Tensor bogus = Tensor::empty(DType::F32, {D / 2});
  for (int64_t i = 0; i < D / 2; ++i) bogus.f32()[i] = float(1 + (i % 3));
  rewrite(dir.file("l.gguf"), dir.file("bogus.gguf"), {}, "", "rope_freqs.weight", bogus, "baleine.");
  std::string e = error_of([&] { load_model(dir.file("bogus.gguf")); });
  EXPECT_NE(e.find("rope_freqs["), std::string::npos) << e;
}

TEST(GgufModel, BadFilesGiveClearErrors) {
  TempDir dir;
  auto hf = load_model(kParity + "/v2_lite");
  write_gguf_model(*hf, dir.file("ok.gguf"));
  const std::string ok = dir.file("ok.gguf"), bad = dir.file("bad.gguf");

  rewrite(ok, bad, {{"general.architecture", GgufValue::of_string("mamba")}});
  EXPECT_NE(error_of([&] { load_model(bad); }).find("unknown architecture 'mamba'"), std::string::npos);

  rewrite(ok, bad, {}, "blk.1.ffn_up_exps.weight");
  std::string e = error_of([&] { load_model(bad); });
  EXPECT_NE(e.find("missing tensor 'blk.1.ffn_up_exps.weight"), std::string::npos) << e;

  rewrite(ok, bad, {}, "", "output_norm.weight", Tensor::zeros(DType::F32, {3}));
  e = error_of([&] { load_model(bad); });
  EXPECT_NE(e.find("'output_norm.weight' has shape [3]"), std::string::npos) << e;

  rewrite(ok, bad, {{"deepseek2.expert_gating_func", GgufValue::of_u32(7)}});
  e = error_of([&] { load_model(bad); });
  EXPECT_NE(e.find("expert_gating_func"), std::string::npos) << e;

  // an unknown quant type in a tensor: patch the type field of token_embd in the file bytes
  std::ifstream in(ok, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  size_t at = bytes.find("token_embd.weight");
  ASSERT_NE(at, std::string::npos);
  uint32_t q5k = 13;
  std::memcpy(&bytes[at + 17 + 4 + 16], &q5k, 4);
  std::ofstream(bad, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
  e = error_of([&] { load_model(bad); });
  EXPECT_TRUE(e.find("q5_k") != std::string::npos) << e;
}

// Quantised GGUF: the file holds exactly the quantised bytes (with attn_kv_b kept as one matrix, logits of the
// GGUF-loaded model equal the in-memory quantised model's; the MLA-split layout re-lays kv_b out and is only close),
// and logits stay close to f32. Metric: relative RMS error ||a - b|| / ||b|| over all logits of the fixture tokens.
// These tiny random models amplify weight errors (and with top-k routing one flipped expert choice moves the
// logits a lot), so the tolerances are about 2x what they measure (docs/gguf.md): Q8_0 0.1 (0.3 for the
// 16-expert V3 shapes), Q6_K 0.3, Q4_0 / Q4_K 0.8; and Q8_0 must beat the 4-bit types on every model.
namespace {
double rel_rms(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double d = double(a.f32()[i]) - double(b.f32()[i]);
    num += d * d;
    den += double(b.f32()[i]) * double(b.f32()[i]);
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

struct QuantResult { double err_split = 0, err_legacy = 0; bool legacy_same = false, split_same = false; };

QuantResult quantised_error(const std::string& fixture_dir, DType type, std::vector<int32_t> tokens) {
  TempDir dir;
  auto f32 = load_model(fixture_dir);
  auto q = load_model(fixture_dir);
  QuantizeReport r = quantize_model(*q, type);
  EXPECT_GT(r.converted, 0);
  GgufWriteOptions legacy;
  legacy.legacy_kv_b = true;
  write_gguf_model(*q, dir.file("q.gguf"));
  write_gguf_model(*q, dir.file("ql.gguf"), legacy);
  auto g = load_model(dir.file("q.gguf")), gl = load_model(dir.file("ql.gguf"));
  Tensor a = f32->logits(tokens), b = q->logits(tokens), c = g->logits(tokens), d = gl->logits(tokens);
  GgufFile f = GgufFile::open(dir.file("q.gguf"));
  int64_t typed = 0;
  for (const auto& t : f.tensors()) typed += t.dtype == type;
  EXPECT_GT(typed, 0) << "no tensor stored as " << dtype_name(type);
  QuantResult res;
  res.legacy_same = std::memcmp(b.raw(), d.raw(), b.nbytes()) == 0;
  // The split layout stores kv_b dequantised (k_b/v_b f32): equal to the quantised model with kv_b_proj in f32.
  q->for_each_param([&](nn::Param& p) {
    if (p.name.find("kv_b_proj") != std::string::npos) *p.tensor = p.tensor->to_f32();
  });
  q->prepare();
  Tensor e = q->logits(tokens);
  res.split_same = std::memcmp(e.raw(), c.raw(), e.nbytes()) == 0;
  res.err_split = rel_rms(c, a);
  res.err_legacy = rel_rms(d, a);
  std::printf("%s %s: rel rms err %.4f (split k_b/v_b), %.4f (kv_b)\n", fixture_dir.substr(fixture_dir.rfind('/') + 1).c_str(),
              std::string(dtype_name(type)).c_str(), res.err_split, res.err_legacy);
  return res;
}

// hidden 256 so that Q4_K / Q6_K (256-value blocks) apply to most matrices.
std::string wide_model(const TempDir& dir) {
  std::ifstream in(kParity + "/v3/config.json");
  nlohmann::json cfg = nlohmann::json::parse(in);
  cfg["hidden_size"] = 256;
  cfg["intermediate_size"] = 512;
  cfg["moe_intermediate_size"] = 256;
  cfg["num_hidden_layers"] = 2;
  cfg["num_nextn_predict_layers"] = 0;
  cfg["q_lora_rank"] = 256;
  cfg["kv_lora_rank"] = 256;
  cfg["vocab_size"] = 256;
  fs::create_directories(dir.path / "wide");
  std::ofstream(dir.path / "wide" / "config.json") << cfg.dump();
  auto m = create_model(parse_model_config(cfg, "wide"));
  init_params_random(*m, 3, 0.05f);
  std::vector<std::pair<std::string, Tensor>> t;
  m->for_each_param([&](nn::Param& p) { t.emplace_back(p.name, *p.tensor); });
  safetensors_write((dir.path / "wide" / "model.safetensors").string(), t);
  return (dir.path / "wide").string();
}

double tolerance(DType t, bool v3_shaped) {
  if (t == DType::Q8_0) return v3_shaped ? 0.3 : 0.1;
  return t == DType::Q6_K ? 0.3 : 0.8;
}
}  // namespace

TEST(GgufModel, QuantisedFilesMatchMemoryAndStayCloseToF32) {
  for (const std::string name : {"v3", "v2_lite", "qwen2", "llama"}) {
    double err[2];
    int k = 0;
    for (DType t : {DType::Q8_0, DType::Q4_0}) {
      QuantResult r = quantised_error(kParity + "/" + name, t, fixture_tokens(name));
      EXPECT_TRUE(r.legacy_same) << name << " " << dtype_name(t);
      EXPECT_TRUE(r.split_same) << name << " " << dtype_name(t);
      EXPECT_LE(r.err_split, tolerance(t, name == "v3")) << name << " " << dtype_name(t);
      EXPECT_LE(r.err_legacy, tolerance(t, name == "v3")) << name << " " << dtype_name(t);
      err[k++] = r.err_legacy;
    }
    EXPECT_LT(err[0], err[1]) << name << ": q8_0 should be closer to f32 than q4_0";
  }
  TempDir dir;
  std::string wide = wide_model(dir);
  std::vector<int32_t> tokens = {1, 7, 200, 33, 90, 14, 255, 0, 18, 77, 140, 9};
  for (DType t : {DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    QuantResult r = quantised_error(wide, t, tokens);
    EXPECT_TRUE(r.legacy_same) << dtype_name(t);
    EXPECT_TRUE(r.split_same) << dtype_name(t);
    EXPECT_LE(r.err_split, tolerance(t, true)) << dtype_name(t);
    EXPECT_LE(r.err_legacy, tolerance(t, true)) << dtype_name(t);
  }
}
