// Batched model steps (CausalLM::forward_batch) against one sequence at a time, on the PyTorch-checked
// fixtures: several sequences of different lengths, prefill chunks mixed with single-token decode rows, in one
// shared KV pool; and the KV pool's accounting.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "models/model.h"

using namespace baleine;

namespace {
const std::string kParity = std::string(BALEINE_TEST_DATA) + "/parity";

double max_rel_diff(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / std::max(den, 1e-30);
}

std::vector<int32_t> prompt(int64_t n, int32_t seed, int64_t vocab) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(int32_t((seed * 7919 + i * 104729 + i * i * 31) % vocab));
  return p;
}

class Batch : public ::testing::TestWithParam<std::string> {};

TEST_P(Batch, BatchedStepsEqualOneSequenceAtATime) {
  auto model = load_model(kParity + "/" + GetParam());
  const int64_t V = model->config().vocab_size;
  // Three sequences: prompts of 5, 19 and 1 tokens, then 6 decode tokens each (fed tokens fixed in advance so
  // both runs see the same inputs). Sequence 1 prefills in chunks of 8 while the others already decode.
  const std::vector<std::vector<int32_t>> prompts{prompt(5, 1, V), prompt(19, 2, V), prompt(1, 3, V)};
  const std::vector<int32_t> feed = prompt(6, 4, V);
  for (MlaMode mode : {MlaMode::Absorbed, MlaMode::Naive}) {
    // One at a time: each sequence prefilled whole, then decoded token by token. want[s] = last-row logits per step.
    std::vector<std::vector<std::vector<float>>> want(3);
    for (size_t s = 0; s < 3; ++s) {
      auto seq = model->new_sequence(64);
      Tensor l = model->forward(*seq, prompts[s], mode);
      want[s].emplace_back(l.f32() + (l.dim(0) - 1) * V, l.f32() + l.dim(0) * V);
      for (int32_t t : feed) {
        Tensor d = model->forward(*seq, std::span<const int32_t>(&t, 1), mode);
        want[s].emplace_back(d.f32(), d.f32() + V);
      }
    }
    // Batched, in one shared pool with small blocks.
    auto pool = model->new_kv_pool(64, 4);
    std::vector<std::unique_ptr<Sequence>> seqs;
    for (int s = 0; s < 3; ++s) seqs.push_back(model->new_sequence(pool, 64));
    std::vector<std::vector<std::vector<float>>> got(3);
    std::vector<size_t> fed(3, 0);
    std::vector<int64_t> prefilled(3, 0);
    for (int step = 0; step < 20; ++step) {
      std::vector<BatchItem> items;
      std::vector<size_t> who;
      for (size_t s = 0; s < 3; ++s) {
        const int64_t n = int64_t(prompts[s].size());
        if (prefilled[s] < n) {
          const int64_t len = s == 1 ? std::min<int64_t>(8, n - prefilled[s]) : n;
          items.push_back({seqs[s].get(), std::span(prompts[s]).subspan(size_t(prefilled[s]), size_t(len)), false});
          prefilled[s] += len;
        } else if (fed[s] < feed.size()) {
          items.push_back({seqs[s].get(), std::span(feed).subspan(fed[s]++, 1), false});
        } else {
          continue;
        }
        who.push_back(s);
      }
      if (items.empty()) break;
      Tensor l = model->forward_batch(items, mode);
      ASSERT_EQ(l.dim(0), int64_t(items.size()));
      for (size_t i = 0; i < who.size(); ++i) {
        const size_t s = who[i];
        if (prefilled[s] < int64_t(prompts[s].size())) continue;  // a mid-prompt chunk: no prediction used
        got[s].emplace_back(l.f32() + int64_t(i) * V, l.f32() + int64_t(i + 1) * V);
      }
    }
    for (size_t s = 0; s < 3; ++s) {
      ASSERT_EQ(got[s].size(), want[s].size()) << "sequence " << s;
      for (size_t k = 0; k < want[s].size(); ++k)
        EXPECT_LE(max_rel_diff(got[s][k].data(), want[s][k].data(), size_t(V)), 1e-5)
            << GetParam() << " sequence " << s << " step " << k << " mode " << int(mode);
      EXPECT_EQ(seqs[s]->length(), int64_t(prompts[s].size() + feed.size()));
    }
    // Blocks in use: ceil(length / 4) per sequence; released when the sequences go.
    EXPECT_EQ(pool->used_blocks(), (11 + 3) / 4 + (25 + 3) / 4 + (7 + 3) / 4);
    seqs.clear();
    EXPECT_EQ(pool->used_blocks(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, Batch, ::testing::Values("v3", "v2_lite", "qwen2", "llama", "v32"));

TEST(Batch, AllLogitsRowsAndBadBatches) {
  auto model = load_model(kParity + "/qwen2");
  const int64_t V = model->config().vocab_size;
  auto pool = model->new_kv_pool(8, 4);
  auto a = model->new_sequence(pool, 32), b = model->new_sequence(pool, 32);
  const std::vector<int32_t> pa = prompt(6, 5, V), pb = prompt(3, 6, V);
  const BatchItem items[2] = {{a.get(), pa, true}, {b.get(), pb, false}};
  Tensor l = model->forward_batch(items);
  EXPECT_EQ(l.dim(0), 6 + 1);  // every row of a, the last of b
  Tensor ref = model->logits(pa);
  EXPECT_LE(max_rel_diff(l.f32(), ref.f32(), size_t(6 * V)), 1e-5);
  // The same sequence twice, a pool of another layout, and an exhausted pool are errors; lengths do not move.
  const BatchItem twice[2] = {{a.get(), pb, false}, {a.get(), pb, false}};
  EXPECT_THROW(model->forward_batch(twice), Error);
  auto other = load_model(kParity + "/v3");
  auto foreign = other->new_sequence(8);
  const BatchItem wrong[1] = {{foreign.get(), pb, false}};
  EXPECT_THROW(model->forward_batch(wrong), Error);
  auto c = model->new_sequence(pool, 32);  // pool: 8 blocks of 4, a and b hold 2 + 1
  const std::vector<int32_t> long_prompt = prompt(24, 7, V);
  const BatchItem full[1] = {{c.get(), long_prompt, false}};
  EXPECT_THROW(model->forward_batch(full), Error);
  EXPECT_EQ(c->length(), 0);
  EXPECT_EQ(a->length(), 6);
}

// bf16 and int8 caches: the same steps stay close to the f32-cache logits (the cache is the only difference).
TEST_P(Batch, QuantisedKvCachesStayClose) {
  auto model = load_model(kParity + "/" + GetParam());
  const int64_t V = model->config().vocab_size;
  const std::vector<int32_t> p = prompt(20, 9, V);
  auto run = [&](ops::KvDType dt) {
    auto seq = model->new_sequence(model->new_kv_pool(8, 4, dt), 32);
    std::vector<float> out;
    Tensor a = model->forward(*seq, std::span(p).first(12));
    for (int64_t t = 12; t < 20; ++t) {
      Tensor l = model->forward(*seq, std::span(p).subspan(size_t(t), 1));
      out.insert(out.end(), l.f32(), l.f32() + V);
    }
    return out;
  };
  const std::vector<float> f32 = run(ops::KvDType::F32), bf16 = run(ops::KvDType::BF16), i8 = run(ops::KvDType::Int8);
  const double e_bf16 = max_rel_diff(bf16.data(), f32.data(), f32.size()), e_i8 = max_rel_diff(i8.data(), f32.data(), f32.size());
  EXPECT_LE(e_bf16, 2e-2) << GetParam();
  EXPECT_LE(e_i8, 5e-2) << GetParam();
  EXPECT_GT(e_i8, 0.0);  // the int8 cache is really used
  std::printf("%s: max rel logit diff vs f32 cache: bf16 %.2e, int8 %.2e\n", GetParam().c_str(), e_bf16, e_i8);
}

TEST(Batch, IncrementalMtpStepEqualsTeacherForcedMtp) {
  auto model = load_model(kParity + "/v3");
  ASSERT_TRUE(model->has_mtp());
  const int64_t V = model->config().vocab_size, d = model->config().hidden_size;
  const std::vector<int32_t> toks = prompt(12, 8, V);
  Tensor want = model->mtp_logits(toks);  // [11, V]: row i from h_i and t_{i+1}
  auto seq = model->new_sequence(12);
  Tensor hidden;
  const BatchItem item{seq.get(), toks, false};
  model->forward_batch(std::span<const BatchItem>(&item, 1), MlaMode::Absorbed, &hidden);
  ASSERT_EQ(hidden.dim(0), 12);
  auto mseq = model->new_sequence(model->new_mtp_kv_pool(4, 4), 12);
  Tensor first = model->mtp_step(*mseq, hidden.f32(), std::span(toks).subspan(1, 6), true);  // positions 0..5
  ASSERT_EQ(first.dim(0), 6);
  EXPECT_LE(max_rel_diff(first.f32(), want.f32(), size_t(6 * V)), 1e-5);
  for (int64_t i = 6; i < 11; ++i) {
    Tensor step = model->mtp_step(*mseq, hidden.f32() + i * d, std::span(toks).subspan(size_t(i + 1), 1));
    EXPECT_LE(max_rel_diff(step.f32(), want.f32() + i * V, size_t(V)), 1e-5) << i;
  }
  EXPECT_EQ(mseq->length(), 11);
  auto dense = load_model(kParity + "/qwen2");
  EXPECT_THROW(dense->new_mtp_kv_pool(4), Error);
}

TEST(KvPool, RefcountsAndReclaim) {
  KvPool pool(2, 3, 4, 2);
  const int32_t x = pool.allocate(), y = pool.allocate();
  EXPECT_NE(x, y);
  EXPECT_EQ(pool.free_blocks(), 0);
  EXPECT_THROW(pool.allocate(), Error);  // no reclaim hook
  pool.retain(x);
  pool.release(x);
  EXPECT_EQ(pool.refcount(x), 1);
  int reclaimed = 0;
  pool.set_reclaim([&] { ++reclaimed; pool.release(y); return true; });
  EXPECT_EQ(pool.allocate(), y);  // the hook freed y
  EXPECT_EQ(reclaimed, 1);
  pool.release(x);
  EXPECT_THROW(pool.release(x), Error);
  EXPECT_THROW(KvPool(0, 3, 4, 2), Error);
}

}  // namespace
