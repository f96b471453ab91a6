// The sampler chain stage by stage: penalties on hand-made logits, the constraint mask, temperature, top-k,
// top-p, min-p (which candidates survive), and the draw's distribution with fixed seeds against the exact
// softmax probabilities (a chi-square bound that a wrong temperature or a dropped stage fails).
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/check.h"
#include "infer/sampler.h"

using namespace baleine;

namespace {

Candidates full(std::vector<float> logits) {
  Candidates c;
  c.logits = std::move(logits);
  return c;
}

std::vector<int32_t> ids(const Candidates& c) {
  std::vector<int32_t> out;
  for (int64_t i = 0; i < c.size(); ++i) out.push_back(c.id(i));
  return out;
}

// Empirical frequencies of `n` draws against `want` (probabilities by token id): Pearson chi-square.
double chi_square(SamplerChain& chain, const std::vector<float>& logits, const std::vector<double>& want, int n) {
  std::vector<int> count(want.size(), 0);
  for (int i = 0; i < n; ++i) ++count[size_t(chain.sample(logits))];
  double chi = 0;
  for (size_t t = 0; t < want.size(); ++t) {
    if (want[t] == 0) { EXPECT_EQ(count[t], 0) << "token " << t << " must never be drawn"; continue; }
    const double e = want[t] * n;
    chi += (count[t] - e) * (count[t] - e) / e;
  }
  return chi;
}

std::vector<double> softmax(const std::vector<float>& l, double temperature) {
  double mx = *std::max_element(l.begin(), l.end()), sum = 0;
  std::vector<double> p(l.size());
  for (size_t i = 0; i < l.size(); ++i) sum += p[i] = std::exp((l[i] - mx) / temperature);
  for (auto& q : p) q /= sum;
  return p;
}

}  // namespace

TEST(Sampler, PenaltiesOnHandMadeLogits) {
  SamplingParams p;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  std::vector<float> l{1, 2, 3, 4};
  const std::vector<int32_t> gen{1, 1, 3}, ctx{0, 1, 1, 3};
  Candidates c = full(l);
  PenaltyStage(p).apply(c, {gen, ctx});
  EXPECT_FLOAT_EQ(c.logits[0], 1.0f);                 // only in the prompt: no presence/frequency penalty
  EXPECT_FLOAT_EQ(c.logits[1], 2.0f - 0.5f - 0.5f);   // twice
  EXPECT_FLOAT_EQ(c.logits[2], 3.0f);
  EXPECT_FLOAT_EQ(c.logits[3], 4.0f - 0.5f - 0.25f);  // once
  SamplingParams r;
  r.repetition_penalty = 2.0f;
  Candidates d = full({2, -2, 3, 1});
  PenaltyStage(r).apply(d, {gen, ctx});
  EXPECT_FLOAT_EQ(d.logits[0], 1.0f);   // positive: divided
  EXPECT_FLOAT_EQ(d.logits[1], -4.0f);  // negative: multiplied
  EXPECT_FLOAT_EQ(d.logits[2], 3.0f);   // never seen
  EXPECT_FLOAT_EQ(d.logits[3], 0.5f);
  // Penalties after truncation would penalise the wrong ids: refused.
  Candidates t = full({1, 2, 3});
  TopKStage(2).apply(t, {});
  EXPECT_THROW(PenaltyStage(p).apply(t, {gen, ctx}), Error);
}

TEST(Sampler, ConstraintMaskRemovesTokens) {
  struct EvenOnly : TokenConstraint {
    void mask(std::span<float> l) override {
      for (size_t i = 1; i < l.size(); i += 2) l[i] = -INFINITY;
    }
    void accept(int32_t) override {}
  };
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 3;
  SamplerChain chain = SamplerChain::standard(p, std::make_shared<EvenOnly>());
  const std::vector<float> l{0, 5, 0.5f, 5, 1};
  auto want = softmax({0, -INFINITY, 0.5f, -INFINITY, 1}, 1.0);
  EXPECT_LT(chi_square(chain, l, want, 20000), 18.5);  // 3 dof: p = 0.0003
  SamplerChain greedy = SamplerChain::standard(SamplingParams{}, std::make_shared<EvenOnly>());
  EXPECT_EQ(greedy.sample(l), 4);
}

TEST(Sampler, LogitBiasShiftsBeforeTemperatureAndMinus100Bans) {
  SamplingParams p;
  p.temperature = 2.0f;
  p.seed = 11;
  // Token 1 is far ahead (logit 150): an additive -100 would leave it the favourite; -100 must ban it outright.
  p.logit_bias = {{1, -100.0f}, {3, 2.0f}, {999, 5.0f}};  // 999: outside this vocabulary, ignored
  SamplerChain chain = SamplerChain::standard(p);
  ASSERT_EQ(chain.stages().size() >= 2u, true);
  EXPECT_STREQ(chain.stages()[0]->name(), "logit_bias");
  EXPECT_STREQ(chain.stages()[1]->name(), "temperature");
  const std::vector<float> l{0, 150, 0.5f, 1, 1};
  // The bias is added before the division by the temperature: token 3 ends at (1 + 2) / 2.
  auto want = softmax({0, -INFINITY, 0.5f, 3, 1}, 2.0);
  EXPECT_LT(chi_square(chain, l, want, 20000), 18.5);  // 3 dof: p = 0.0003
  SamplingParams g;
  g.logit_bias = {{1, -100.0f}};
  EXPECT_EQ(SamplerChain::standard(g).sample(l), 3);  // greedy: the banned argmax is skipped
  g.logit_bias = {{1, -99.0f}};
  EXPECT_EQ(SamplerChain::standard(g).sample(l), 1);  // -99 is only a shift: 150 - 99 still wins
  g.logit_bias = {{0, 100.0f}};
  const std::vector<float> l2{0, 50, 0.5f, 1, 1};
  EXPECT_EQ(SamplerChain::standard(g).sample(l2), 0);
}

TEST(Sampler, TopKTopPMinPKeepTheRightCandidates) {
  const std::vector<float> l{1.0f, 3.0f, 2.0f, 3.0f, 0.0f};  // ties 1 and 3: lower id first
  Candidates c = full(l);
  TopKStage(3).apply(c, {});
  EXPECT_EQ(ids(c), (std::vector<int32_t>{1, 3, 2}));
  // probabilities of softmax(l): ids 1, 3 -> .392 each, id 2 -> .144, id 0 -> .053, id 4 -> .020
  Candidates p = full(l);
  TopPStage(0.5f).apply(p, {});
  EXPECT_EQ(ids(p), (std::vector<int32_t>{1, 3}));
  Candidates p2 = full(l);
  TopPStage(0.9f).apply(p2, {});
  EXPECT_EQ(ids(p2), (std::vector<int32_t>{1, 3, 2}));
  Candidates p3 = full(l);
  TopPStage(0.0f).apply(p3, {});
  EXPECT_EQ(ids(p3), (std::vector<int32_t>{1}));  // always at least one
  Candidates m = full(l);
  MinPStage(0.3f).apply(m, {});  // keeps p >= 0.3 · 0.392 = 0.118
  EXPECT_EQ(ids(m), (std::vector<int32_t>{1, 3, 2}));
  Candidates t = full(l);
  TemperatureStage(0.5f).apply(t, {});
  EXPECT_FLOAT_EQ(t.logits[1], 6.0f);
  EXPECT_THROW(TemperatureStage(0.0f).apply(t, {}), Error);
}

TEST(Sampler, DrawsFollowTheTemperedDistribution) {
  const std::vector<float> l{0.0f, 1.0f, -0.5f, 2.0f, 0.3f};
  for (float temp : {0.5f, 1.0f, 2.0f}) {
    SamplingParams p;
    p.temperature = temp;
    p.seed = 42;
    SamplerChain chain = SamplerChain::standard(p);
    EXPECT_LT(chi_square(chain, l, softmax(l, temp), 40000), 23.0) << temp;  // 4 dof, p = 0.0001
  }
  // top-k 2 at temperature 1: only ids 3 and 1, renormalised.
  SamplingParams k;
  k.temperature = 1.0f;
  k.top_k = 2;
  k.seed = 7;
  SamplerChain chain = SamplerChain::standard(k);
  std::vector<double> want(5, 0.0);
  want[3] = std::exp(2.0) / (std::exp(2.0) + std::exp(1.0));
  want[1] = 1 - want[3];
  EXPECT_LT(chi_square(chain, l, want, 20000), 15.0);  // 1 dof
  // A wrong distribution is detected by the same bound (the test can fail).
  SamplingParams hot;
  hot.temperature = 1.5f;
  hot.seed = 1;
  SamplerChain wrong = SamplerChain::standard(hot);
  EXPECT_GT(chi_square(wrong, l, softmax(l, 1.0), 40000), 100.0);
}

TEST(Sampler, SeedsReproduceAndGreedyTakesLowestIdOnTies) {
  const std::vector<float> l{0.1f, 0.9f, 0.9f, 0.2f};
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 99;
  Sampler a(p), b(p);
  std::vector<int32_t> sa, sb;
  for (int i = 0; i < 50; ++i) sa.push_back(a.sample(l)), sb.push_back(b.sample(l));
  EXPECT_EQ(sa, sb);
  EXPECT_EQ(Sampler(SamplingParams{}).sample(l), 1);
  const SamplerChain std_chain = SamplerChain::standard(p);
  std::vector<std::string> names;
  for (auto& s : std_chain.stages()) names.push_back(s->name());
  EXPECT_EQ(names, (std::vector<std::string>{"temperature"}));
  SamplingParams all = p;
  all.repetition_penalty = 1.1f, all.top_k = 5, all.top_p = 0.9f, all.min_p = 0.05f;
  std::vector<std::string> names2;
  const SamplerChain all_chain = SamplerChain::standard(all);
  for (auto& s : all_chain.stages()) names2.push_back(s->name());
  EXPECT_EQ(names2, (std::vector<std::string>{"penalties", "temperature", "top_k", "top_p", "min_p"}));
}

TEST(Sampler, SpeculativeVerifyOutputFollowsTheTargetDistribution) {
  // Draft from q, verify against p: the accepted-or-resampled token must be distributed as p, and the
  // acceptance rate must be sum_i min(p_i, q_i).
  const std::vector<double> p{0.5, 0.2, 0.2, 0.1, 0.0}, q{0.1, 0.5, 0.1, 0.1, 0.2};
  std::mt19937_64 rng(5);
  std::discrete_distribution<int> draft_dist(q.begin(), q.end());
  const int n = 60000;
  std::vector<int> count(p.size(), 0);
  int accepted = 0;
  for (int i = 0; i < n; ++i) {
    const int32_t d = int32_t(draft_dist(rng));
    const int32_t t = speculative_verify(p, q, d, rng);
    accepted += t == d;
    ++count[size_t(t)];
  }
  double chi = 0;
  for (size_t t = 0; t < p.size(); ++t) {
    if (p[t] == 0) { EXPECT_EQ(count[t], 0); continue; }
    chi += (count[t] - p[t] * n) * (count[t] - p[t] * n) / (p[t] * n);
  }
  EXPECT_LT(chi, 21.0);  // 3 dof, p = 0.0001
  double overlap = 0;
  for (size_t t = 0; t < p.size(); ++t) overlap += std::min(p[t], q[t]);
  EXPECT_NEAR(double(accepted) / n, overlap, 0.01);
  // Returning the draft unconditionally would follow q, which the same test rejects.
  std::vector<int> naive(p.size(), 0);
  for (int i = 0; i < n; ++i) ++naive[size_t(draft_dist(rng))];
  double chi_naive = 0;
  for (size_t t = 0; t < 4; ++t) chi_naive += (naive[t] - p[t] * n) * (naive[t] - p[t] * n) / (p[t] * n);
  EXPECT_GT(chi_naive, 1000.0);
  // p == q: always accepted.
  for (int i = 0; i < 100; ++i) EXPECT_EQ(speculative_verify(q, q, 1, rng), 1);
}
