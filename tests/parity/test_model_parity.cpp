// Whole-model parity against the independent PyTorch reference (tests/reference/model_ref.py):
// logits at every position in both MLA forms, MTP logits, incremental decoding, and bad checkpoints.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "models/weights.h"

using namespace baleine;
namespace fs = std::filesystem;

namespace {
const std::string kParity = std::string(BALEINE_TEST_DATA) + "/parity";

struct Fixture {
  std::vector<int32_t> tokens;
  int64_t vocab = 0;
  std::vector<float> logits, mtp_logits;
};

std::vector<float> read_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

Fixture load_fixture(const std::string& name) {
  Fixture f;
  std::ifstream in(kParity + "/" + name + "/fixture.json");
  auto j = nlohmann::json::parse(in);
  f.tokens = j["tokens"].get<std::vector<int32_t>>();
  f.vocab = j["vocab_size"].get<int64_t>();
  f.logits = read_f32(kParity + "/" + name + "/logits.bin");
  if (fs::exists(kParity + "/" + name + "/mtp_logits.bin")) f.mtp_logits = read_f32(kParity + "/" + name + "/mtp_logits.bin");
  return f;
}

// max |a - b| / max |b|: relative to the scale of the reference logits, robust to entries near zero.
double max_rel_diff(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / std::max(den, 1e-30);
}

constexpr double kLogitTolerance = 1e-4;

class Parity : public ::testing::TestWithParam<std::string> {};

TEST_P(Parity, LogitsMatchPyTorchInBothMlaForms) {
  Fixture f = load_fixture(GetParam());
  auto model = load_model(kParity + "/" + GetParam());
  const int64_t T = int64_t(f.tokens.size());
  ASSERT_EQ(f.logits.size(), size_t(T * f.vocab));
  for (MlaMode mode : {MlaMode::Naive, MlaMode::Absorbed}) {
    Tensor logits = model->logits(f.tokens, mode);
    ASSERT_EQ(logits.dim(0), T);
    ASSERT_EQ(logits.dim(1), f.vocab);
    double d = max_rel_diff(logits.f32(), f.logits.data(), f.logits.size());
    EXPECT_LE(d, kLogitTolerance) << GetParam() << (mode == MlaMode::Naive ? " naive" : " absorbed");
  }
}

TEST_P(Parity, NaiveEqualsAbsorbed) {
  Fixture f = load_fixture(GetParam());
  auto model = load_model(kParity + "/" + GetParam());
  Tensor a = model->logits(f.tokens, MlaMode::Naive);
  Tensor b = model->logits(f.tokens, MlaMode::Absorbed);
  EXPECT_LE(max_rel_diff(a.f32(), b.f32(), size_t(a.numel())), 1e-5);
}

TEST_P(Parity, IncrementalDecodeEqualsFullSequence) {
  // Prefill half the prompt, then one token at a time through the cache: same logits as one pass.
  Fixture f = load_fixture(GetParam());
  auto model = load_model(kParity + "/" + GetParam());
  const int64_t T = int64_t(f.tokens.size()), V = f.vocab, split = T / 2;
  for (MlaMode mode : {MlaMode::Naive, MlaMode::Absorbed}) {
    auto seq = model->new_sequence(T);
    std::vector<float> all;
    Tensor first = model->forward(*seq, std::span(f.tokens).subspan(0, size_t(split)), mode);
    all.insert(all.end(), first.f32(), first.f32() + first.numel());
    for (int64_t t = split; t < T; ++t) {
      Tensor step = model->forward(*seq, std::span(f.tokens).subspan(size_t(t), 1), mode);
      all.insert(all.end(), step.f32(), step.f32() + V);
    }
    EXPECT_EQ(seq->length(), T);
    EXPECT_LE(max_rel_diff(all.data(), f.logits.data(), f.logits.size()), kLogitTolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, Parity, ::testing::Values("v3", "v2_lite", "v2", "qwen2", "llama", "v32"));

class ParityMtp : public ::testing::TestWithParam<std::string> {};

TEST_P(ParityMtp, MtpLogitsMatchPyTorch) {
  Fixture f = load_fixture(GetParam());
  ASSERT_FALSE(f.mtp_logits.empty());
  auto model = load_model(kParity + "/" + GetParam());
  ASSERT_TRUE(model->has_mtp());
  for (MlaMode mode : {MlaMode::Naive, MlaMode::Absorbed}) {
    Tensor m = model->mtp_logits(f.tokens, mode);
    ASSERT_EQ(m.dim(0), int64_t(f.tokens.size()) - 1);
    ASSERT_EQ(size_t(m.numel()), f.mtp_logits.size());
    EXPECT_LE(max_rel_diff(m.f32(), f.mtp_logits.data(), f.mtp_logits.size()), kLogitTolerance);
  }
}
INSTANTIATE_TEST_SUITE_P(Models, ParityMtp, ::testing::Values("v3", "v32"));

TEST(ParityMtpErrors, ModelWithoutMtpSaysSo) {
  auto model = load_model(kParity + "/v2_lite");
  EXPECT_FALSE(model->has_mtp());
  std::vector<int32_t> toks{1, 2, 3};
  EXPECT_THROW(model->mtp_logits(toks), Error);
}

// ---- bad checkpoints: one-line errors naming the file and the tensor -----------------------------------
class BadCheckpoint : public ::testing::Test {
 protected:
  fs::path dir;
  std::vector<std::pair<std::string, Tensor>> tensors;
  void SetUp() override {
    dir = fs::temp_directory_path() / ("baleine_bad_ckpt_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy_file(kParity + "/v3/config.json", dir / "config.json");
    auto r = io::SafetensorsReader::open(kParity + "/v3/model.safetensors");
    for (const auto& n : r.names()) tensors.emplace_back(n, r.tensor(n));
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string load_error() {
    try {
      load_model(dir.string());
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_EQ(m.find('\n'), std::string::npos);
      return m;
    }
    return "";
  }
};

TEST_F(BadCheckpoint, MissingTensor) {
  std::erase_if(tensors, [](auto& p) { return p.first == "model.layers.1.self_attn.kv_b_proj.weight"; });
  io::safetensors_write((dir / "model.safetensors").string(), tensors);
  std::string e = load_error();
  EXPECT_NE(e.find("missing tensor 'model.layers.1.self_attn.kv_b_proj.weight'"), std::string::npos) << e;
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
}

TEST(BadDsaCheckpoint, MissingIndexerTensorAndBadTopk) {
  const fs::path dir = fs::temp_directory_path() / ("baleine_bad_dsa_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto r = io::SafetensorsReader::open(kParity + "/v32/model.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& n : r.names())
    if (n != "model.layers.1.self_attn.indexer.weights_proj.weight") tensors.emplace_back(n, r.tensor(n));
  io::safetensors_write((dir / "model.safetensors").string(), tensors);
  auto cfg = nlohmann::json::parse(std::ifstream(kParity + "/v32/config.json"));
  std::ofstream(dir / "config.json") << cfg.dump();
  std::string e;
  try {
    load_model(dir.string());
  } catch (const Error& err) {
    e = err.what();
  }
  EXPECT_NE(e.find("missing tensor 'model.layers.1.self_attn.indexer.weights_proj.weight'"), std::string::npos) << e;
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
  cfg["index_topk"] = cfg["max_position_embeddings"].get<int64_t>() + 1;
  std::ofstream(dir / "config.json") << cfg.dump();
  e.clear();
  try {
    load_model(dir.string());
  } catch (const Error& err) {
    e = err.what();
  }
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("'index_topk'"), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST_F(BadCheckpoint, MisShapedTensor) {
  for (auto& [n, t] : tensors)
    if (n == "model.layers.0.self_attn.o_proj.weight") t = Tensor::zeros(DType::F32, {t.dim(0), t.dim(1) + 1});
  io::safetensors_write((dir / "model.safetensors").string(), tensors);
  std::string e = load_error();
  EXPECT_NE(e.find("'model.layers.0.self_attn.o_proj.weight' has shape"), std::string::npos) << e;
}

TEST_F(BadCheckpoint, IntegerDtypeRejected) {
  for (auto& [n, t] : tensors)
    if (n == "model.norm.weight") t = Tensor::zeros(DType::I32, t.shape());
  io::safetensors_write((dir / "model.safetensors").string(), tensors);
  std::string e = load_error();
  EXPECT_NE(e.find("'model.norm.weight' has dtype i32"), std::string::npos) << e;
}

TEST_F(BadCheckpoint, PartialMtpModule) {
  std::erase_if(tensors, [](auto& p) { return p.first == "model.layers.3.eh_proj.weight"; });
  io::safetensors_write((dir / "model.safetensors").string(), tensors);
  std::string e = load_error();
  EXPECT_NE(e.find("MTP module 0 is incomplete"), std::string::npos) << e;
}

TEST_F(BadCheckpoint, NoMtpAtAllLoadsWithoutIt) {
  std::erase_if(tensors, [](auto& p) { return p.first.rfind("model.layers.3.", 0) == 0; });
  io::safetensors_write((dir / "model.safetensors").string(), tensors);
  auto model = load_model(dir.string());
  EXPECT_FALSE(model->has_mtp());
}

TEST_F(BadCheckpoint, TruncatedSafetensors) {
  io::safetensors_write((dir / "model.safetensors").string(), tensors);
  fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") / 2);
  std::string e = load_error();
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
}

TEST_F(BadCheckpoint, ShardedAndBf16CheckpointsLoad) {
  // bf16 weights, sharded: logits within bf16 rounding of the f32 model.
  std::vector<std::pair<std::string, Tensor>> bf16;
  for (auto& [n, t] : tensors) {
    Tensor b = Tensor::empty(DType::BF16, t.shape());
    for (int64_t i = 0; i < t.numel(); ++i) b.data<uint16_t>()[i] = f32_to_bf16(t.f32()[i]);
    bf16.emplace_back(n, b);
  }
  io::safetensors_write_sharded(dir.string(), bf16, 64 * 1024);
  auto model = load_model(dir.string());
  auto ref = load_model(kParity + "/v3");
  std::vector<int32_t> toks{5, 17, 3, 99, 42};
  Tensor a = model->logits(toks), b = ref->logits(toks);
  EXPECT_LE(max_rel_diff(a.f32(), b.f32(), size_t(a.numel())), 5e-2);
  EXPECT_GT(max_rel_diff(a.f32(), b.f32(), size_t(a.numel())), 0.0);  // really ran on bf16 weights
}

TEST(ModelErrors, TokenOutOfVocabulary) {
  auto model = load_model(kParity + "/v3");
  std::vector<int32_t> toks{1, 100000};
  EXPECT_THROW(model->logits(toks), Error);
}

TEST(ModelErrors, BeyondContext) {
  auto model = load_model(kParity + "/qwen2");
  EXPECT_THROW(model->new_sequence(model->config().max_position_embeddings + 1), Error);
  auto seq = model->new_sequence(2);
  std::vector<int32_t> toks{1, 2, 3};
  EXPECT_THROW(model->forward(*seq, toks), Error);
}

}  // namespace
