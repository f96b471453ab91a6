// ops/grad.cpp — backward kernels (plain C++; the GEMMs go through matmul_f32, i.e. OpenBLAS).
#include "ops/grad.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/check.h"
#include "core/threadpool.h"

namespace baleine::ops {

void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x, const WeightRef& w, int64_t M,
                     int64_t ldy, int64_t ldx) {
  const int64_t N = w.rows, K = w.cols;
  if (ldy == 0) ldy = N;
  if (ldx == 0) ldx = K;
  if (dx) {
    BALEINE_CHECK(w.dtype == DType::F32, "training needs f32 weights, got {}", dtype_name(w.dtype));
    // dx[M,K] += dy[M,N] · W[N,K]
    matmul_f32(dx, dy, static_cast<const float*>(w.data), M, K, N, false, ldy, w.row_stride(), ldx, 1.0f, 1.0f);
  }
  if (dW) {
    // dW[N,K] += dyᵀ[N,M] · x[M,K]: computed as C = Aᵀ·B with A = dy; matmul_f32 has no transposed A, so
    // transpose dy into a scratch buffer (cheap next to the GEMM).
    std::vector<float> dyt(size_t(N * M));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) dyt[size_t(n * M + m)] = dy[m * ldy + n];
    matmul_f32(dW, dyt.data(), x, N, K, M, false, M, ldx, K, 1.0f, 1.0f);
  }
  if (db)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) db[n] += dy[m * ldy + n];
}

void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, int64_t rows, int64_t dim,
                      float eps, int64_t ldx, int64_t ldy) {
  if (ldx == 0) ldx = dim;
  if (ldy == 0) ldy = dim;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    const float* gr = dy + r * ldy;
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(xr[i]) * xr[i];
    const double inv = 1.0 / std::sqrt(ss / double(dim) + eps);
    // y_i = x_i·inv·w_i; dL/dx_j = inv·(g_j w_j) − inv³/dim · x_j · Σ_i g_i w_i x_i
    double dot = 0;
    for (int64_t i = 0; i < dim; ++i) dot += double(gr[i]) * (w ? w[i] : 1.0f) * xr[i];
    const double c = inv * inv * inv * dot / double(dim);
    if (dx) {
      float* dxr = dx + r * ldx;
      for (int64_t i = 0; i < dim; ++i) dxr[i] += float(inv * gr[i] * (w ? w[i] : 1.0f) - c * xr[i]);
    }
    if (dw)
      for (int64_t i = 0; i < dim; ++i) dw[i] += float(double(gr[i]) * xr[i] * inv);
  }
}

void rope_backward(float* dx, int64_t n_tokens, int64_t n_heads, int64_t token_stride, int64_t head_stride,
                   const int32_t* positions, const RopeTable& table, RopeLayout layout) {
  std::vector<int32_t> negated(static_cast<size_t>(n_tokens));
  for (int64_t t = 0; t < n_tokens; ++t) negated[size_t(t)] = -positions[t];
  // The transpose of a rotation by θ is the rotation by −θ; the attention factor scales both equally.
  RopeTable back = table;
  reference::rope_apply(dx, n_tokens, n_heads, token_stride, head_stride, negated.data(), back, layout);
}

void swiglu_backward(float* dgate, float* dup, const float* dy, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i], s = 1.0 / (1.0 + std::exp(-g)), silu = g * s;
    if (dup) dup[i] += float(dy[i] * silu);
    if (dgate) dgate[i] += float(dy[i] * up[i] * (s * (1.0 + g * (1.0 - s))));
  }
}

void softmax_rows_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    double dot = 0;
    for (int64_t i = 0; i < n; ++i) dot += double(dy[r * n + i]) * y[r * n + i];
    for (int64_t i = 0; i < n; ++i) dx[r * n + i] += float(y[r * n + i] * (dy[r * n + i] - dot));
  }
}

void embedding_backward(float* dtable, const float* dy, const int32_t* ids, int64_t n, int64_t dim) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < dim; ++j) dtable[int64_t(ids[i]) * dim + j] += dy[i * dim + j];
}

void attention_causal_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                               const float* v, const AttentionArgs& a) {
  // Per head, as GEMMs (FlashAttention's backward without the tiling):
  //   P = softmax(scale·Q Kᵀ + causal mask)   dV += Pᵀ dO   dP = dO Vᵀ
  //   dS = P ⊙ (dP − rowsum(dP ⊙ P))·scale    dQ += dS K    dK += dSᵀ Q
  // Heads of one kv group add into the same dK/dV rows, so heads run one after another (each GEMM is threaded).
  const int64_t group = a.n_heads / a.n_kv_heads, Tq = a.n_q, S = a.n_kv;
  std::vector<float> P(static_cast<size_t>(Tq * S)), dP(static_cast<size_t>(Tq * S)), Tr(static_cast<size_t>(S * Tq));
  auto transpose = [&](const std::vector<float>& m) {  // [Tq, S] -> [S, Tq]
    for (int64_t t = 0; t < Tq; ++t)
      for (int64_t s = 0; s < S; ++s) Tr[size_t(s * Tq + t)] = m[size_t(t * S + s)];
  };
  for (int64_t h = 0; h < a.n_heads; ++h) {
    const int64_t g = h / group;
    const float* qh = q + h * a.q_head_stride;
    const float* kg = k + g * a.k_head_stride;
    const float* vg = v + g * a.v_head_stride;
    const float* doh = dout + h * a.out_head_stride;
    matmul_f32(P.data(), qh, kg, Tq, S, a.qk_dim, true, a.q_stride, a.k_stride, S, a.scale, 0.0f);
    for (int64_t t = 0; t < Tq; ++t) {  // causal softmax, row by row
      float* row = P.data() + t * S;
      const int64_t n = std::min(S, a.kv_offset + t + 1);
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t s = 0; s < n; ++s) mx = std::max(mx, row[s]);
      double sum = 0;
      for (int64_t s = 0; s < n; ++s) sum += row[s] = std::exp(row[s] - mx);
      const float inv = float(1.0 / sum);
      for (int64_t s = 0; s < n; ++s) row[s] *= inv;
      for (int64_t s = n; s < S; ++s) row[s] = 0.0f;
    }
    if (dv) {
      transpose(P);
      matmul_f32(dv + g * a.v_head_stride, Tr.data(), doh, S, a.v_dim, Tq, false, Tq, a.out_stride, a.v_stride, 1.0f, 1.0f);
    }
    if (!dq && !dk) continue;
    matmul_f32(dP.data(), doh, vg, Tq, S, a.v_dim, true, a.out_stride, a.v_stride, S, 1.0f, 0.0f);
    for (int64_t t = 0; t < Tq; ++t) {
      float* dpr = dP.data() + t * S;
      const float* pr = P.data() + t * S;
      double dot = 0;
      for (int64_t s = 0; s < S; ++s) dot += double(dpr[s]) * pr[s];
      for (int64_t s = 0; s < S; ++s) dpr[s] = pr[s] * (dpr[s] - float(dot)) * a.scale;  // dS, in place
    }
    if (dq) matmul_f32(dq + h * a.q_head_stride, dP.data(), kg, Tq, a.qk_dim, S, false, S, a.k_stride, a.q_stride, 1.0f, 1.0f);
    if (dk) {
      transpose(dP);
      matmul_f32(dk + g * a.k_head_stride, Tr.data(), qh, S, a.qk_dim, Tq, false, Tq, a.q_stride, a.k_stride, 1.0f, 1.0f);
    }
  }
}

double cross_entropy_loss(const float* h, const WeightRef& w, const int32_t* targets, int64_t T, float* dh, float* dW,
                          float scale, int64_t* count_out, int64_t vocab_chunk) {
  const int64_t V = w.rows, d = w.cols;
  int64_t count = 0;
  for (int64_t t = 0; t < T; ++t) {
    if (targets[t] < 0) continue;
    BALEINE_CHECK(targets[t] < V, "target {} is outside the vocabulary [0, {})", targets[t], V);
    ++count;
  }
  if (count_out) *count_out = count;
  if (count == 0) return 0.0;
  const int64_t C = std::min(vocab_chunk, V);
  std::vector<float> logits(static_cast<size_t>(T * C));
  std::vector<double> mx(static_cast<size_t>(T), -std::numeric_limits<double>::infinity()), sum(static_cast<size_t>(T), 0.0);
  std::vector<double> target_logit(static_cast<size_t>(T), 0.0);
  auto chunk_logits = [&](int64_t v0, int64_t n) {
    WeightRef wc = w;
    wc.data = static_cast<const char*>(w.data) + dtype_nbytes(w.dtype, v0 * w.row_stride());  // block types too
    wc.rows = n;
    linear(logits.data(), h, wc, nullptr, T, C, 0);
  };
  // Pass 1: online log-sum-exp per token.
  for (int64_t v0 = 0; v0 < V; v0 += C) {
    const int64_t n = std::min(C, V - v0);
    chunk_logits(v0, n);
    for (int64_t t = 0; t < T; ++t) {
      const float* l = logits.data() + t * C;
      double m = mx[size_t(t)];
      for (int64_t i = 0; i < n; ++i) m = std::max(m, double(l[i]));
      double s = sum[size_t(t)] * std::exp(mx[size_t(t)] - m);
      for (int64_t i = 0; i < n; ++i) s += std::exp(double(l[i]) - m);
      mx[size_t(t)] = m, sum[size_t(t)] = s;
      if (targets[t] >= v0 && targets[t] < v0 + n) target_logit[size_t(t)] = l[targets[t] - v0];
    }
  }
  double loss = 0;
  for (int64_t t = 0; t < T; ++t)
    if (targets[t] >= 0) loss += mx[size_t(t)] + std::log(sum[size_t(t)]) - target_logit[size_t(t)];
  loss /= double(count);
  if (!dh && !dW) return loss;
  // Pass 2: dlogits = (softmax − onehot)·scale/count, chunk by chunk.
  BALEINE_CHECK(w.dtype == DType::F32, "training needs an f32 output head, got {}", dtype_name(w.dtype));
  std::vector<float> dl(static_cast<size_t>(T * C));
  for (int64_t v0 = 0; v0 < V; v0 += C) {
    const int64_t n = std::min(C, V - v0);
    chunk_logits(v0, n);
    for (int64_t t = 0; t < T; ++t) {
      float* g = dl.data() + t * C;
      if (targets[t] < 0) {
        std::fill(g, g + n, 0.0f);
        continue;
      }
      const double lse = mx[size_t(t)] + std::log(sum[size_t(t)]);
      for (int64_t i = 0; i < n; ++i) {
        double pr = std::exp(double(logits[size_t(t * C + i)]) - lse) - (targets[t] == v0 + i ? 1.0 : 0.0);
        g[i] = float(pr * scale / double(count));
      }
    }
    WeightRef wc = w;
    wc.data = static_cast<const float*>(w.data) + v0 * w.row_stride();
    wc.rows = n;
    linear_backward(dh, dW ? dW + v0 * d : nullptr, nullptr, dl.data(), h, wc, T, C, 0);
  }
  return loss;
}

}  // namespace baleine::ops
