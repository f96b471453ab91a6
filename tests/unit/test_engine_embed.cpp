// Embedding requests in the engine: mean-pooled final hidden states, L2-normalised, against a direct
// CausalLM::hidden_states reference; batched (several inputs, next to generations, chunked prefill) equal to
// alone within 1e-5; validation; cancellation.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "engine_test_util.h"
#include "infer/engine.h"
#include "tokenizer/tokenizer.h"

using namespace baleine;

namespace {

const std::string kParity = std::string(BALEINE_TEST_DATA) + "/parity";

using engine_test::tiny_tokenizer;

std::shared_ptr<CausalLM> model(const std::string& which = "v3") { return std::shared_ptr<CausalLM>(load_model(kParity + "/" + which)); }

// The definition, computed directly: mean over tokens of hidden_states (after the final norm), L2-normalised.
std::vector<float> reference(CausalLM& m, const std::vector<int32_t>& ids) {
  auto seq = m.new_sequence(int64_t(ids.size()));
  Tensor h = m.hidden_states(*seq, ids);  // [T, d]
  const int64_t T = h.dim(0), d = h.dim(1);
  std::vector<double> mean(size_t(d), 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < d; ++j) mean[size_t(j)] += double(h.f32()[t * d + j]) / double(T);
  double norm = 0;
  for (double v : mean) norm += v * v;
  norm = std::sqrt(norm);
  std::vector<float> out(static_cast<size_t>(d));
  for (int64_t j = 0; j < d; ++j) out[size_t(j)] = float(mean[size_t(j)] / norm);
  return out;
}

EmbeddingResult wait(EmbeddingHandle& h) {
  auto r = h.wait(std::chrono::seconds(60));
  EXPECT_TRUE(r.has_value());
  return r ? *r : EmbeddingResult{};
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

const std::vector<std::vector<int32_t>> kInputs{{5, 17, 42, 99, 3}, {7}, {100, 4, 4, 4, 9, 11, 12, 13, 14, 15, 16, 120, 1}};

}  // namespace

TEST(EngineEmbedding, MatchesTheDirectDefinitionAndIsNormalised) {
  for (const char* which : {"v3", "llama"}) {
    if (!std::filesystem::exists(kParity + "/" + which)) continue;
    auto m = model(which);
    Engine eng(m, tiny_tokenizer());
    for (const auto& in : kInputs) {
      EmbeddingResult r = wait(*eng.submit_embedding({{in}}));
      ASSERT_EQ(r.finish_reason, FinishReason::Stop) << r.error;
      ASSERT_EQ(r.vectors.size(), 1u);
      ASSERT_EQ(int64_t(r.vectors[0].size()), m->config().hidden_size);
      EXPECT_EQ(r.tokens[0], int64_t(in.size()));
      double n2 = 0;
      for (float v : r.vectors[0]) n2 += double(v) * v;
      EXPECT_NEAR(std::sqrt(n2), 1.0, 1e-5);
      EXPECT_LT(max_diff(r.vectors[0], reference(*m, in)), 1e-5) << which;
    }
    EXPECT_EQ(eng.stats().embedding_inputs, kInputs.size());
  }
}

TEST(EngineEmbedding, BatchedEqualsAloneNextToGenerationsAndChunked) {
  auto m = model();
  std::vector<std::vector<float>> alone;
  {
    Engine eng(m, tiny_tokenizer());
    for (const auto& in : kInputs) alone.push_back(wait(*eng.submit_embedding({{in}})).vectors.at(0));
  }
  EngineOptions o;
  o.max_batch = 3;        // the inputs and generations compete for slots
  o.prefill_chunk = 4;    // the long input is pooled over several steps
  o.prefix_cache = true;
  Engine eng(m, tiny_tokenizer(), o);
  GenerationRequest g;
  g.prompt = {5, 17, 42, 99, 3};  // the same tokens as an input: the prefix cache must not leak into embeddings
  g.params.max_tokens = 6;
  g.params.ignore_eos = true;
  auto g1 = eng.submit(g);
  auto e1 = eng.submit_embedding({kInputs});
  auto g2 = eng.submit(g);
  auto e2 = eng.submit_embedding({{kInputs[2], kInputs[0]}});
  EmbeddingResult r1 = wait(*e1), r2 = wait(*e2);
  ASSERT_EQ(r1.finish_reason, FinishReason::Stop) << r1.error;
  ASSERT_EQ(r2.finish_reason, FinishReason::Stop) << r2.error;
  ASSERT_EQ(r1.vectors.size(), 3u);
  for (size_t i = 0; i < kInputs.size(); ++i) EXPECT_LT(max_diff(r1.vectors[i], alone[i]), 1e-5) << "input " << i;
  EXPECT_LT(max_diff(r2.vectors[0], alone[2]), 1e-5);
  EXPECT_LT(max_diff(r2.vectors[1], alone[0]), 1e-5);
  // The generations are unaffected and finish.
  for (auto& h : {g1, g2}) {
    int n = 0;
    while (auto e = h->next(std::chrono::seconds(30))) {
      n += int(e->tokens.size());
      if (e->finished) {
        EXPECT_EQ(e->finish_reason, FinishReason::Length);
        break;
      }
    }
    EXPECT_EQ(n, 6);
  }
  // Different inputs give different vectors (the pooling is not degenerate).
  EXPECT_GT(max_diff(alone[0], alone[1]), 1e-3);
}

TEST(EngineEmbedding, RejectsBadRequests) {
  auto m = model();
  EngineOptions o;
  o.context = 16;
  Engine eng(m, tiny_tokenizer(), o);
  EXPECT_THROW(eng.submit_embedding({}), Error);                                       // no inputs
  EXPECT_THROW(eng.submit_embedding({{{1, 2}, {}}}), Error);                           // an empty input
  EXPECT_THROW(eng.submit_embedding({{{1, int32_t(m->config().vocab_size)}}}), Error);  // outside the vocabulary
  EXPECT_THROW(eng.submit_embedding({{std::vector<int32_t>(17, 1)}}), Error);           // longer than the context
  EXPECT_EQ(wait(*eng.submit_embedding({{std::vector<int32_t>(16, 1)}})).finish_reason, FinishReason::Stop);
}

TEST(EngineEmbedding, CancelAndShutdownFinishTheHandle) {
  auto m = model();
  auto eng = std::make_unique<Engine>(m, tiny_tokenizer());
  auto h = eng->submit_embedding({std::vector<std::vector<int32_t>>(64, {1, 2, 3, 4, 5, 6, 7, 8})});
  h->cancel();
  EmbeddingResult r = wait(*h);
  EXPECT_TRUE(r.finish_reason == FinishReason::Cancelled || r.finish_reason == FinishReason::Stop);
  auto h2 = eng->submit_embedding({std::vector<std::vector<int32_t>>(64, {1, 2, 3, 4, 5, 6, 7, 8})});
  eng->shutdown(/*drain=*/false);
  EmbeddingResult r2 = wait(*h2);
  EXPECT_TRUE(r2.finish_reason == FinishReason::Cancelled || r2.finish_reason == FinishReason::Stop);
  EXPECT_THROW(eng->submit_embedding({{{1}}}), Error);
}
