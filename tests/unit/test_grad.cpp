// Backward kernels against central finite differences of their forward ops (ops/grad.h vs ops/ops.h).
// L = Σ r ⊙ f(x) for a random r, so dL/df = r; each analytic gradient is compared with (L(x+h) − L(x−h)) / 2h.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "ops/grad.h"
#include "ops/ops.h"

using namespace baleine;
using Vec = std::vector<float>;

namespace {
Vec randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  Vec v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Checks analytic gradient `g` of scalar function `loss` at `x` (modifies x temporarily).
void expect_gradient(Vec& x, const Vec& g, const std::function<double()>& loss, const char* what, double tol = 5e-3) {
  const float h = 1e-2f;
  double max_err = 0, max_ref = 1e-6;
  for (size_t i = 0; i < x.size(); ++i) {
    const float keep = x[i];
    x[i] = keep + h;
    const double lp = loss();
    x[i] = keep - h;
    const double lm = loss();
    x[i] = keep;
    const double num = (lp - lm) / (2.0 * h);
    max_err = std::max(max_err, std::fabs(num - g[i]));
    max_ref = std::max(max_ref, std::fabs(num));
  }
  EXPECT_LE(max_err / max_ref, tol) << what;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}
}  // namespace

TEST(Grad, Linear) {
  for (int64_t M : {1, 3}) {
    const int64_t N = 5, K = 7;
    Vec x = randn(size_t(M * K), 1), w = randn(size_t(N * K), 2), b = randn(size_t(N), 3), r = randn(size_t(M * N), 4);
    auto loss = [&] {
      Vec y(size_t(M * N));
      ops::linear(y.data(), x.data(), {w.data(), DType::F32, N, K, 0}, b.data(), M);
      return dot(y, r);
    };
    Vec dx(x.size(), 0), dw(w.size(), 0), db(b.size(), 0);
    ops::linear_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), {w.data(), DType::F32, N, K, 0}, M);
    expect_gradient(x, dx, loss, "linear dx");
    expect_gradient(w, dw, loss, "linear dW");
    expect_gradient(b, db, loss, "linear db");
  }
}

TEST(Grad, RMSNorm) {
  const int64_t rows = 3, dim = 33;
  Vec x = randn(size_t(rows * dim), 5), w = randn(size_t(dim), 6), r = randn(x.size(), 7);
  auto loss = [&] {
    Vec y(x.size());
    ops::rmsnorm(y.data(), x.data(), w.data(), rows, dim, 1e-6f);
    return dot(y, r);
  };
  Vec dx(x.size(), 0), dw(w.size(), 0);
  ops::rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rows, dim, 1e-6f);
  expect_gradient(x, dx, loss, "rmsnorm dx");
  expect_gradient(w, dw, loss, "rmsnorm dw");
}

TEST(Grad, RopeBothLayoutsWithYarn) {
  const int64_t T = 4, H = 2, D = 8;
  ops::RopeTable table = ops::rope_table_yarn(int(D), 10000, 40, 4096, 32, 1, 1.0, 0.707);  // attention_factor != 1
  std::vector<int32_t> pos{0, 3, 7, 100};
  for (auto layout : {ops::RopeLayout::Interleaved, ops::RopeLayout::HalfSplit}) {
    Vec x = randn(size_t(T * H * D), 8), r = randn(x.size(), 9);
    auto loss = [&] {
      Vec y = x;
      ops::rope_apply(y.data(), T, H, H * D, D, pos.data(), table, layout);
      return dot(y, r);
    };
    Vec dx = r;
    ops::rope_backward(dx.data(), T, H, H * D, D, pos.data(), table, layout);
    expect_gradient(x, dx, loss, "rope");
  }
}

TEST(Grad, SwiGLUAndSoftmax) {
  const int64_t n = 31;
  Vec g = randn(size_t(n), 10, 2.0f), u = randn(size_t(n), 11), r = randn(size_t(n), 12);
  auto loss = [&] {
    Vec y(static_cast<size_t>(n));
    ops::swiglu(y.data(), g.data(), u.data(), n);
    return dot(y, r);
  };
  Vec dg(static_cast<size_t>(n), 0), du(static_cast<size_t>(n), 0);
  ops::swiglu_backward(dg.data(), du.data(), r.data(), g.data(), u.data(), n);
  expect_gradient(g, dg, loss, "swiglu dgate");
  expect_gradient(u, du, loss, "swiglu dup");

  Vec x = randn(size_t(2 * n), 13), rs = randn(x.size(), 14);
  auto sloss = [&] {
    Vec y = x;
    ops::softmax_rows(y.data(), 2, n);
    return dot(y, rs);
  };
  Vec y = x;
  ops::softmax_rows(y.data(), 2, n);
  Vec dx(x.size(), 0);
  ops::softmax_rows_backward(dx.data(), rs.data(), y.data(), 2, n);
  expect_gradient(x, dx, sloss, "softmax");
}

TEST(Grad, CausalAttentionGqaWithOffset) {
  ops::AttentionArgs a;
  a.n_q = 3, a.n_kv = 5, a.n_heads = 4, a.n_kv_heads = 2, a.qk_dim = 6, a.v_dim = 5, a.kv_offset = 2, a.scale = 0.4f;
  a.q_stride = a.n_heads * a.qk_dim, a.q_head_stride = a.qk_dim;
  a.k_stride = a.n_kv_heads * a.qk_dim, a.k_head_stride = a.qk_dim;
  a.v_stride = a.n_kv_heads * a.v_dim, a.v_head_stride = a.v_dim;
  a.out_stride = a.n_heads * a.v_dim, a.out_head_stride = a.v_dim;
  Vec q = randn(size_t(a.n_q * a.q_stride), 15), k = randn(size_t(a.n_kv * a.k_stride), 16);
  Vec v = randn(size_t(a.n_kv * a.v_stride), 17), r = randn(size_t(a.n_q * a.out_stride), 18);
  auto loss = [&] {
    Vec o(r.size());
    ops::attention_causal(o.data(), q.data(), k.data(), v.data(), a);
    return dot(o, r);
  };
  Vec dq(q.size(), 0), dk(k.size(), 0), dv(v.size(), 0);
  ops::attention_causal_backward(dq.data(), dk.data(), dv.data(), r.data(), q.data(), k.data(), v.data(), a);
  expect_gradient(q, dq, loss, "attention dq");
  expect_gradient(k, dk, loss, "attention dk");
  expect_gradient(v, dv, loss, "attention dv");
}

TEST(Grad, ChunkedCrossEntropyMatchesUnchunkedAndDifferences) {
  const int64_t T = 4, d = 6, V = 37;
  Vec h = randn(size_t(T * d), 19), w = randn(size_t(V * d), 20);
  std::vector<int32_t> targets{3, -1, 36, 0};  // -1: not scored
  auto loss = [&] { return ops::cross_entropy_loss(h.data(), {w.data(), DType::F32, V, d, 0}, targets.data(), T, nullptr, nullptr); };
  Vec dh(h.size(), 0), dw(w.size(), 0);
  int64_t count = 0;
  double l = ops::cross_entropy_loss(h.data(), {w.data(), DType::F32, V, d, 0}, targets.data(), T, dh.data(), dw.data(), 1.0f,
                                     &count, 8);  // chunks of 8 over a vocabulary of 37
  EXPECT_EQ(count, 3);
  // Direct definition: mean over scored rows of logsumexp − target logit.
  double ref = 0;
  for (int64_t t = 0; t < T; ++t) {
    if (targets[size_t(t)] < 0) continue;
    std::vector<double> z(static_cast<size_t>(V));
    double mx = -1e300, s = 0;
    for (int64_t v = 0; v < V; ++v) {
      for (int64_t i = 0; i < d; ++i) z[size_t(v)] += double(h[size_t(t * d + i)]) * w[size_t(v * d + i)];
      mx = std::max(mx, z[size_t(v)]);
    }
    for (double zv : z) s += std::exp(zv - mx);
    ref += mx + std::log(s) - z[size_t(targets[size_t(t)])];
  }
  EXPECT_NEAR(l, ref / 3, 1e-5);
  expect_gradient(h, dh, loss, "cross-entropy dh");
  expect_gradient(w, dw, loss, "cross-entropy dW");
}

TEST(Grad, EmbeddingScatterAdds) {
  Vec dtable(4 * 3, 0), dy{1, 2, 3, 10, 20, 30, 100, 200, 300};
  std::vector<int32_t> ids{2, 0, 2};
  ops::embedding_backward(dtable.data(), dy.data(), ids.data(), 3, 3);
  EXPECT_EQ(dtable[6], 101);   // row 2 gets rows 0 and 2 of dy
  EXPECT_EQ(dtable[0], 10);
  EXPECT_EQ(dtable[3], 0);
}
