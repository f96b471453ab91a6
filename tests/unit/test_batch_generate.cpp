// infer::generate_batch against the one-at-a-time path (rl::generate: CausalLM::forward with a fresh sequence per
// request): the same tokens for greedy decoding and for seeded sampling, on tiny random models (MLA and GQA), with
// prompts of awkward lengths around the KV block size, shared prompts (prefilled once), different finish times
// (stop token, max_new_tokens, the context) and small decode / prefill batches; and after the weights change in
// place (nothing stale is kept between calls).
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "infer/batch_generate.h"
#include "models/weights.h"
#include "rl/common.h"

using namespace baleine;

namespace {

const std::string kParity = std::string(BALEINE_TEST_DATA) + "/parity";

// A fixture architecture with random weights large enough that the logits are far from flat (so argmax and
// seeded draws do not hinge on the last bits), and a short context so that one request runs into it.
std::unique_ptr<CausalLM> tiny_model(const std::string& fixture, uint64_t seed) {
  std::ifstream in(kParity + "/" + fixture + "/config.json");
  nlohmann::json cfg = nlohmann::json::parse(in);
  cfg["num_nextn_predict_layers"] = 0;
  cfg["max_position_embeddings"] = 48;
  auto model = create_model(parse_model_config(cfg, fixture));
  init_params_random(*model, seed, 0.3f);
  model->prepare();
  return model;
}

std::vector<int32_t> prompt(int64_t n, int32_t salt, int64_t vocab) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(int32_t((salt * 7919 + i * 104729 + i * i * 31) % vocab));
  return p;
}

// Requests: lengths 1, 17, 16, 33, 5 and 15 around the block size 16; requests 5-7 share one prompt of 17
// tokens (a full block and a partial one), 8 repeats request 2's prompt; max_new_tokens differ, and the 33-token
// prompt has only 15 positions of context left.
std::vector<BatchRequest> requests(int64_t V, float temperature, float top_p) {
  const std::vector<int64_t> lengths{1, 17, 16, 33, 5, 17, 17, 17, 16};
  const std::vector<int32_t> salts{1, 2, 3, 4, 5, 6, 6, 6, 3};
  const std::vector<int64_t> max_new{12, 3, 20, 30, 1, 9, 14, 14, 6};
  std::vector<BatchRequest> out;
  for (size_t i = 0; i < lengths.size(); ++i) {
    BatchRequest r;
    r.prompt = prompt(lengths[i], salts[i], V);
    r.max_new_tokens = max_new[i];
    r.sampling.temperature = temperature;
    r.sampling.top_p = top_p;
    r.sampling.seed = 1000 + 17 * i;
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<rl::Generation> one_at_a_time(CausalLM& model, const std::vector<BatchRequest>& reqs, int32_t eos) {
  std::vector<rl::Generation> out;
  for (const BatchRequest& r : reqs) out.push_back(rl::generate(model, r.prompt, r.max_new_tokens, r.sampling, eos));
  return out;
}

void expect_same(const std::vector<BatchOutput>& got, const std::vector<rl::Generation>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].tokens, want[i].tokens) << what << ": request " << i;
    EXPECT_EQ(got[i].finished, want[i].finished) << what << ": request " << i;
  }
}

// A stop token that ends some completions early: the token request 2 generates at its 4th step.
int32_t pick_stop(CausalLM& model, const std::vector<BatchRequest>& reqs) {
  auto free_run = one_at_a_time(model, reqs, -1);
  return free_run[2].tokens[3];
}

class BatchGenerate : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchGenerate, SameTokensAsOneAtATime) {
  auto model = tiny_model(GetParam(), 11);
  const int64_t V = model->config().vocab_size;
  for (float temperature : {0.0f, 1.0f}) {
    const std::vector<BatchRequest> reqs = requests(V, temperature, temperature > 0 ? 0.95f : 1.0f);
    const std::string mode = temperature > 0 ? "sampled" : "greedy";
    const int32_t eos = pick_stop(*model, reqs);
    const auto want = one_at_a_time(*model, reqs, eos);
    // Different finish times: by the stop token, by max_new_tokens and by the context (request 3: 48 - 33).
    std::set<size_t> lengths;
    int stopped = 0;
    for (const auto& w : want) lengths.insert(w.tokens.size()), stopped += w.finished;
    EXPECT_GE(lengths.size(), 4u) << mode;
    EXPECT_GE(stopped, 1) << mode;
    EXPECT_LT(stopped, int(want.size())) << mode;
    EXPECT_LE(want[3].tokens.size(), 15u) << mode;

    BatchGenerateOptions o;
    o.stop_tokens = {eos};
    expect_same(generate_batch(*model, reqs, o), want, mode);
    BatchGenerateOptions small = o;  // decode 2 sequences per call, prefill at most 20 prompt tokens per call
    small.max_batch = 2;
    small.prefill_tokens = 20;
    small.kv_block_size = 4;
    expect_same(generate_batch(*model, reqs, small), want, mode + ", small batches and blocks");
    BatchGenerateOptions unshared = o;
    unshared.share_prompts = false;
    expect_same(generate_batch(*model, reqs, unshared), want, mode + ", prompts not shared");
    // A request's completion does not depend on the others: alone it is the same.
    expect_same(generate_batch(*model, std::span(reqs).subspan(6, 1), o), {want[6]}, mode + ", alone");
  }
}

TEST_P(BatchGenerate, ReadsTheWeightsAsTheyAreNow) {
  auto model = tiny_model(GetParam(), 12);
  const int64_t V = model->config().vocab_size;
  const std::vector<BatchRequest> reqs = requests(V, 0.0f, 1.0f);
  BatchGenerateOptions o;
  const auto before = generate_batch(*model, reqs, o);
  // An in-place update as an optimizer step makes it, then prepare() (absorbed MLA weights, tied head).
  model->for_each_param([&](nn::Param& p) {
    if (!p.tensor->defined() || p.kind == nn::ParamKind::Vector) return;
    float* d = p.tensor->f32();
    for (int64_t i = 0; i < p.tensor->numel(); ++i) d[i] = -d[i] * 1.5f + 0.01f * float(i % 7);
  });
  model->prepare();
  const auto after = generate_batch(*model, reqs, o);
  expect_same(after, one_at_a_time(*model, reqs, -1), "after the update");
  bool changed = false;
  for (size_t i = 0; i < before.size(); ++i) changed = changed || before[i].tokens != after[i].tokens;
  EXPECT_TRUE(changed) << "the update changed no completion: the check would be vacuous";
}

INSTANTIATE_TEST_SUITE_P(Models, BatchGenerate, ::testing::Values("v3", "qwen2"));

TEST(BatchGenerateErrors, BadRequestsFailBeforeAnyWork) {
  auto model = tiny_model("v3", 13);
  const int64_t V = model->config().vocab_size;
  EXPECT_TRUE(generate_batch(*model, std::span<const BatchRequest>()).empty());
  std::vector<BatchRequest> bad(2);
  bad[0].prompt = prompt(4, 1, V);
  bad[1].prompt = {};
  EXPECT_THROW(generate_batch(*model, bad), Error);
  bad[1].prompt = {int32_t(V)};
  EXPECT_THROW(generate_batch(*model, bad), Error);
  bad[1].prompt = prompt(48, 2, V);  // fills the context
  EXPECT_THROW(generate_batch(*model, bad), Error);
  bad[1].prompt = prompt(3, 2, V);
  bad[1].max_new_tokens = 0;
  EXPECT_THROW(generate_batch(*model, bad), Error);
}

}  // namespace
