#include "infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/check.h"

namespace baleine {

void apply_penalties(std::span<float> logits, const SamplingParams& p, std::span<const int32_t> generated,
                     std::span<const int32_t> context) {
  const int64_t V = int64_t(logits.size());
  if (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) {
    std::vector<int32_t> count(static_cast<size_t>(V), 0);
    for (int32_t t : generated)
      if (t >= 0 && t < V) ++count[size_t(t)];
    for (int64_t t = 0; t < V; ++t)
      if (count[size_t(t)] > 0)
        logits[size_t(t)] -= p.presence_penalty + p.frequency_penalty * float(count[size_t(t)]);
  }
  if (p.repetition_penalty != 1.0f && p.repetition_penalty > 0.0f) {
    std::vector<bool> seen(static_cast<size_t>(V), false);
    for (int32_t t : context)
      if (t >= 0 && t < V && !seen[size_t(t)]) {
        seen[size_t(t)] = true;
        float& l = logits[size_t(t)];
        l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
      }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Candidates
// ---------------------------------------------------------------------------------------------------------
void Candidates::sort() {
  if (sorted) return;
  const int64_t n = size();
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const float la = logits[size_t(a)], lb = logits[size_t(b)];
    return la != lb ? la > lb : id(a) < id(b);
  });
  std::vector<float> l(static_cast<size_t>(n));
  std::vector<int32_t> i(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) l[size_t(k)] = logits[size_t(order[size_t(k)])], i[size_t(k)] = id(order[size_t(k)]);
  logits = std::move(l);
  ids = std::move(i);
  sorted = true;
}

void Candidates::truncate(int64_t n) {
  if (ids.empty()) {
    ids.resize(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
  }
  n = std::clamp<int64_t>(n, 1, size());
  logits.resize(size_t(n));
  ids.resize(size_t(n));
}

std::vector<double> Candidates::probabilities() const {
  std::vector<double> p(logits.size());
  if (logits.empty()) return p;
  const double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) sum += p[i] = std::exp(double(logits[i]) - mx);
  for (auto& q : p) q /= sum;
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// Stages
// ---------------------------------------------------------------------------------------------------------
void PenaltyStage::apply(Candidates& c, const SamplerContext& ctx) {
  BALEINE_CHECK(c.ids.empty(), "the penalty stage must run on the full vocabulary (before truncation)");
  apply_penalties(c.logits, p_, ctx.generated, ctx.context);
}

void LogitBiasStage::apply(Candidates& c, const SamplerContext&) {
  BALEINE_CHECK(c.ids.empty(), "the logit-bias stage must run on the full vocabulary (before truncation)");
  for (const auto& [id, b] : bias_) {
    if (id < 0 || id >= c.size()) continue;
    float& l = c.logits[size_t(id)];
    l = b <= -100.0f ? -std::numeric_limits<float>::infinity() : l + b;
  }
}

void ConstraintStage::apply(Candidates& c, const SamplerContext&) {
  BALEINE_CHECK(c.ids.empty(), "the constraint stage must run on the full vocabulary (before truncation)");
  if (c_) c_->mask(c.logits);
}

void TemperatureStage::apply(Candidates& c, const SamplerContext&) {
  BALEINE_CHECK(t_ > 0.0f, "temperature must be positive in the temperature stage, got {}", t_);
  for (float& l : c.logits) l /= t_;
}

void TopKStage::apply(Candidates& c, const SamplerContext&) {
  if (k_ <= 0 || k_ >= c.size()) return;
  c.sort();
  c.truncate(k_);
}

void TopPStage::apply(Candidates& c, const SamplerContext&) {
  if (p_ >= 1.0f) return;
  c.sort();
  const std::vector<double> prob = c.probabilities();
  double acc = 0;
  int64_t n = 0;
  while (n < c.size() && acc < double(p_)) acc += prob[size_t(n++)];
  c.truncate(std::max<int64_t>(1, n));
}

void MinPStage::apply(Candidates& c, const SamplerContext&) {
  if (p_ <= 0.0f) return;
  c.sort();
  const std::vector<double> prob = c.probabilities();
  int64_t n = 1;
  while (n < c.size() && prob[size_t(n)] >= double(p_) * prob[0]) ++n;
  c.truncate(n);
}

// ---------------------------------------------------------------------------------------------------------
// Chain
// ---------------------------------------------------------------------------------------------------------
SamplerChain SamplerChain::standard(const SamplingParams& p, std::shared_ptr<TokenConstraint> constraint,
                                    bool with_penalties) {
  const bool greedy = p.temperature <= 0.0f;
  SamplerChain chain(greedy, p.seed);
  if (with_penalties && (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f || p.repetition_penalty != 1.0f))
    chain.add(std::make_unique<PenaltyStage>(p));
  if (!p.logit_bias.empty()) chain.add(std::make_unique<LogitBiasStage>(p.logit_bias));
  if (constraint) chain.add(std::make_unique<ConstraintStage>(std::move(constraint)));
  if (greedy) return chain;
  chain.add(std::make_unique<TemperatureStage>(p.temperature));
  if (p.top_k > 0) chain.add(std::make_unique<TopKStage>(p.top_k));
  if (p.top_p < 1.0f) chain.add(std::make_unique<TopPStage>(p.top_p));
  if (p.min_p > 0.0f) chain.add(std::make_unique<MinPStage>(p.min_p));
  return chain;
}

Candidates SamplerChain::filter(std::span<const float> logits, const SamplerContext& ctx) {
  BALEINE_CHECK(!logits.empty(), "empty logits");
  Candidates c;
  c.logits.assign(logits.begin(), logits.end());
  for (auto& s : stages_) s->apply(c, ctx);
  return c;
}

int32_t SamplerChain::draw(const Candidates& c) {
  BALEINE_CHECK(c.size() > 0, "no candidates to draw from");
  if (greedy_ || c.size() == 1) {
    int64_t best = 0;  // argmax, lowest id on ties
    for (int64_t i = 1; i < c.size(); ++i)
      if (c.logits[size_t(i)] > c.logits[size_t(best)] ||
          (c.logits[size_t(i)] == c.logits[size_t(best)] && c.id(i) < c.id(best)))
        best = i;
    return c.id(best);
  }
  const std::vector<double> prob = c.probabilities();
  double r = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  int64_t last = 0;  // the last candidate with positive probability (rounding can leave r above the total)
  for (int64_t i = 0; i < c.size(); ++i) {
    if (prob[size_t(i)] <= 0) continue;
    if (r < prob[size_t(i)]) return c.id(i);
    r -= prob[size_t(i)];
    last = i;
  }
  return c.id(last);
}

int32_t SamplerChain::sample(std::span<const float> logits, const SamplerContext& ctx) {
  return draw(filter(logits, ctx));
}

int32_t speculative_verify(std::span<const double> p, std::span<const double> q, int32_t draft, std::mt19937_64& rng) {
  const int64_t V = int64_t(p.size());
  BALEINE_CHECK(int64_t(q.size()) == V && draft >= 0 && draft < V, "speculative_verify: bad sizes or draft");
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  const double pd = p[size_t(draft)], qd = q[size_t(draft)];
  if (qd > 0 && u01(rng) < std::min(1.0, pd / qd)) return draft;
  double sum = 0;
  for (int64_t i = 0; i < V; ++i) sum += std::max(0.0, p[size_t(i)] - q[size_t(i)]);
  double x = u01(rng) * (sum > 0 ? sum : 1.0);  // p == q: the residual is empty, draw from p itself
  int32_t last = -1;
  for (int64_t i = 0; i < V; ++i) {
    const double r = sum > 0 ? std::max(0.0, p[size_t(i)] - q[size_t(i)]) : p[size_t(i)];
    if (r <= 0) continue;
    last = int32_t(i);
    if (x < r) return int32_t(i);
    x -= r;
  }
  return last >= 0 ? last : draft;
}

}  // namespace baleine
