#include "infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

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

int32_t Sampler::sample(std::span<const float> logits) {
  const int64_t V = int64_t(logits.size());
  BALEINE_CHECK(V > 0, "empty logits");
  if (p_.temperature <= 0.0f) return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<int32_t> idx(static_cast<size_t>(V));
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return logits[size_t(a)] != logits[size_t(b)] ? logits[size_t(a)] > logits[size_t(b)] : a < b; });
  int64_t keep = p_.top_k > 0 ? std::min(p_.top_k, V) : V;
  std::vector<double> prob(static_cast<size_t>(keep));
  const double mx = logits[size_t(idx[0])];
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i) sum += prob[size_t(i)] = std::exp((logits[size_t(idx[size_t(i)])] - mx) / p_.temperature);
  for (auto& q : prob) q /= sum;
  if (p_.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
    double acc = 0;
    int64_t n = 0;
    while (n < keep && acc < p_.top_p) acc += prob[size_t(n++)];
    keep = std::max<int64_t>(1, n);
  }
  if (p_.min_p > 0.0f) {
    int64_t n = 1;
    while (n < keep && prob[size_t(n)] >= p_.min_p * prob[0]) ++n;
    keep = n;
  }
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += prob[size_t(i)];
  double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (int64_t i = 0; i < keep; ++i) {
    r -= prob[size_t(i)];
    if (r <= 0) return idx[size_t(i)];
  }
  return idx[size_t(keep - 1)];
}

}  // namespace baleine
