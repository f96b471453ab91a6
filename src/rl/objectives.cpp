#include "rl/objectives.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

namespace baleine::rl {

namespace {
// log-sum-exp of row / tau and the row's softmax (into p, double).
double log_softmax_row(const float* row, int64_t V, double tau, std::vector<double>& p) {
  p.resize(size_t(V));
  double mx = -INFINITY;
  for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(row[v]) / tau);
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += (p[size_t(v)] = std::exp(double(row[v]) / tau - mx));
  for (auto& x : p) x /= sum;
  return mx + std::log(sum);
}
}  // namespace

std::vector<double> target_logprobs(const ObjectiveInput& in) {
  std::vector<double> out(size_t(in.T), 0.0), p;
  for (int64_t t = 0; t < in.T; ++t) {
    const int32_t y = in.targets[size_t(t)];
    if (y < 0) continue;
    const float* row = in.logits + t * in.V;
    out[size_t(t)] = double(row[y]) - log_softmax_row(row, in.V, 1.0, p);
  }
  return out;
}

LogitObjective logprob_objective(LogprobFn f) {
  return [f = std::move(f)](const ObjectiveInput& in, float* dlogits) {
    std::vector<double> logp = target_logprobs(in), dlogp(size_t(in.T), 0.0), p;
    const double value = f(logp, dlogp);
    if (!dlogits) return value;
    for (int64_t t = 0; t < in.T; ++t) {
      const int32_t y = in.targets[size_t(t)];
      const double g = dlogp[size_t(t)];
      if (y < 0 || g == 0) continue;
      const float* row = in.logits + t * in.V;
      log_softmax_row(row, in.V, 1.0, p);
      float* dr = dlogits + t * in.V;
      for (int64_t v = 0; v < in.V; ++v) dr[v] += float(-g * p[size_t(v)]);
      dr[y] += float(g);
    }
    return value;
  };
}

LogitObjective weighted_nll(std::vector<float> weights) {
  return logprob_objective([w = std::move(weights)](std::span<const double> logp, std::span<double> dlogp) {
    BALEINE_CHECK(w.size() == logp.size(), "{} weights for {} tokens", w.size(), logp.size());
    double loss = 0;
    for (size_t t = 0; t < logp.size(); ++t) {
      if (w[t] == 0) continue;  // exactly no contribution
      loss -= double(w[t]) * logp[t];
      dlogp[t] = -double(w[t]);
    }
    return loss;
  });
}

double distill_loss_row(const float* s, const float* t, int64_t V, const DistillLoss& c, float* ds) {
  BALEINE_CHECK(c.temperature > 0, "distillation temperature must be > 0, got {}", c.temperature);
  BALEINE_CHECK(c.beta >= 0 && c.beta <= 1, "distillation beta must be in [0, 1], got {}", c.beta);
  std::vector<double> q, p;
  const double lq = log_softmax_row(s, V, c.temperature, q), lp = log_softmax_row(t, V, c.temperature, p);
  auto logq = [&](int64_t v) { return double(s[v]) / c.temperature - lq; };
  auto logp = [&](int64_t v) { return double(t[v]) / c.temperature - lp; };
  const double b = c.beta;
  double loss = 0;
  std::vector<double> g(size_t(V), 0.0);  // dL/dq_v
  for (int64_t v = 0; v < V; ++v) {
    const double pv = p[size_t(v)], qv = q[size_t(v)];
    if (b == 0) {  // KL(p‖q)
      if (pv > 0) loss += pv * (logp(v) - logq(v));
      g[size_t(v)] = -pv / qv;
    } else if (b == 1) {  // KL(q‖p)
      if (qv > 0) loss += qv * (logq(v) - logp(v));
      g[size_t(v)] = logq(v) - logp(v) + 1;
    } else {
      const double mv = b * pv + (1 - b) * qv, lm = std::log(mv);
      if (pv > 0) loss += b * pv * (logp(v) - lm);
      if (qv > 0) loss += (1 - b) * qv * (logq(v) - lm);
      g[size_t(v)] = -b * pv * (1 - b) / mv + (1 - b) * (logq(v) + 1 - lm - qv * (1 - b) / mv);
    }
  }
  if (ds) {  // through q = softmax(s/τ): ds = (1/τ)·q ⊙ (g − Σ q·g)
    double dot = 0;
    for (int64_t v = 0; v < V; ++v) dot += q[size_t(v)] * g[size_t(v)];
    for (int64_t v = 0; v < V; ++v) ds[v] = float(q[size_t(v)] * (g[size_t(v)] - dot) / c.temperature);
  }
  return loss;
}

LogitObjective distill_objective(std::vector<float> teacher, std::vector<float> weights, DistillLoss cfg) {
  return [teacher = std::move(teacher), w = std::move(weights), cfg](const ObjectiveInput& in, float* dlogits) {
    BALEINE_CHECK(int64_t(teacher.size()) == in.T * in.V, "teacher logits hold {} values, expected {} x {}",
                  teacher.size(), in.T, in.V);
    BALEINE_CHECK(int64_t(w.size()) == in.T, "{} weights for {} rows", w.size(), in.T);
    double loss = 0;
    std::vector<float> ds(size_t(in.V));
    for (int64_t t = 0; t < in.T; ++t) {
      if (w[size_t(t)] == 0) continue;
      loss += double(w[size_t(t)]) * distill_loss_row(in.logits + t * in.V, teacher.data() + t * in.V, in.V, cfg,
                                                      dlogits ? ds.data() : nullptr);
      if (dlogits)
        for (int64_t v = 0; v < in.V; ++v) dlogits[t * in.V + v] += w[size_t(t)] * ds[size_t(v)];
    }
    return loss;
  };
}

GrpoTokenLoss grpo_token_loss(double logp, double old_logp, double ref_logp, double A, double eps_low,
                              double eps_high, double beta) {
  GrpoTokenLoss r;
  r.ratio = std::exp(logp - old_logp);
  const double clipped = std::clamp(r.ratio, 1 - eps_low, 1 + eps_high);
  const double unclipped_obj = r.ratio * A, clipped_obj = clipped * A;
  double surrogate, dsur;
  if (unclipped_obj <= clipped_obj) {
    surrogate = unclipped_obj, dsur = r.ratio * A;
  } else {
    surrogate = clipped_obj;
    const bool inside = r.ratio > 1 - eps_low && r.ratio < 1 + eps_high;
    dsur = inside ? r.ratio * A : 0.0;  // clamp passes the gradient only inside its range
    r.clipped = !inside;
  }
  double dkl = 0;
  if (beta != 0) {
    const double diff = ref_logp - logp;
    r.kl = std::exp(diff) - diff - 1;
    dkl = -std::exp(diff) + 1;
  }
  r.loss = -(surrogate - beta * r.kl);
  r.dlogp = -(dsur - beta * dkl);
  return r;
}

}  // namespace baleine::rl
