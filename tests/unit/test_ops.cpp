// ops: the reference kernels against hand-computed values, then every fast backend this CPU supports against
// the reference (the oracle), plus strided / in-place / aliasing cases, validation errors and determinism.
//
// Tolerances (fast vs reference; the reference sums in double):
//   sums (linear, matmul): |fast − ref| <= 1e-5 · Σ|terms|, the magnitude of what was summed,
//     because the f32 rounding error of a sum is proportional to that, not to the (possibly cancelling) result.
//     bf16 / f16 weights: the reference runs on the SAME bf16 / f16 weights, so the bound is the same 1e-5.
//   attention outputs: |fast − ref| <= 1e-5 · max|v| (an output is a convex combination of value rows).
//   element-wise / row-wise (rmsnorm, softmax, silu, swiglu, axpy): |fast − ref| <= 1e-5 · |ref| + 1e-30
//     (the 1e-30 covers results below 1e-37 that the fast exp flushes to zero).
//   rope: |fast − ref| <= 1e-6 for inputs in [-1, 1] (same cos/sin table; only f32 vs double rotation differs).
//   add_inplace, embedding_gather, topk: exact.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <random>
#include <vector>

#include "core/check.h"
#include "core/dtype.h"
#include "core/threadpool.h"
#include "ops/cpu/kernels.h"
#include "ops/ops.h"
#include "ops_test_util.h"

using namespace baleine;
using namespace baleine::ops;

namespace {

constexpr double kRtol = 1e-5;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kSentinel = 12345.0f;  // fills padding that no op may write

using test::randv;

bool close_elem(double fast, double ref) {
  if (std::isnan(ref)) return std::isnan(fast);
  if (std::isinf(ref)) return fast == ref;
  return std::abs(fast - ref) <= kRtol * std::abs(ref) + 1e-30;
}

std::vector<Backend> fast_backends() {
  std::vector<Backend> out;
  const Backend saved = active_backend();
  for (Backend b : {Backend::AVX2, Backend::AVX512}) {
    try {
      set_backend(b);
      out.push_back(b);
    } catch (const Error&) {
    }
  }
  set_backend(saved);
  return out;
}

const cpu::Kernels& table(Backend b) { return b == Backend::AVX512 ? cpu::kAvx512 : cpu::kAvx2; }

// Forces linear down one path: 0 = default thresholds, 1 = own kernel always, 2 = OpenBLAS always.
struct TuningGuard {
  Backend b = active_backend();
  cpu::LinearTuning saved = cpu::linear_tuning(b);
  explicit TuningGuard(int path) {
    constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
    if (path == 1) cpu::linear_tuning(b) = {kNever, kNever};
    if (path == 2) cpu::linear_tuning(b) = {1, 1};
  }
  ~TuningGuard() { cpu::linear_tuning(b) = saved; }
};

// A weight matrix [N, K] with row stride ld in the given dtype, and its exact f32 values.
struct Weights {
  std::vector<float> f32;      // [N, ld] values as stored (after rounding to the dtype)
  std::vector<uint16_t> half;  // [N, ld] bf16 / f16 bits
  WeightRef ref;
};
Weights make_weights(DType dt, int64_t N, int64_t K, int64_t ld, uint32_t seed) {
  Weights w;
  w.f32 = randv(size_t(N * ld), seed);
  if (dt != DType::F32) {
    w.half.resize(w.f32.size());
    for (size_t i = 0; i < w.f32.size(); ++i) {
      w.half[i] = dt == DType::BF16 ? f32_to_bf16(w.f32[i]) : f32_to_f16(w.f32[i]);
      w.f32[i] = dt == DType::BF16 ? bf16_to_f32(w.half[i]) : f16_to_f32(w.half[i]);
    }
  }
  w.ref = WeightRef{dt == DType::F32 ? static_cast<const void*>(w.f32.data()) : w.half.data(), dt, N, K, ld};
  return w;
}

class Fast : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { set_backend(GetParam()); }
  void TearDown() override { set_backend(best_backend()); }
};
INSTANTIATE_TEST_SUITE_P(Backends, Fast, ::testing::ValuesIn(fast_backends()),
                         [](const ::testing::TestParamInfo<Backend>& i) { return std::string(backend_name(i.param)); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Fast);

// ----------------------------------------------------------------------------------------------------------
// The reference on hand-computed cases.
// ----------------------------------------------------------------------------------------------------------
TEST(Reference, LinearAndMatmul) {
  const float x[2] = {1, 2};
  const float w[6] = {1, 0, 0, 1, 1, 1};  // [3, 2]
  const float bias[3] = {0, 0, 1};
  float y[3];
  reference::linear(y, x, WeightRef{w, DType::F32, 3, 2, 0}, bias, 1, 0, 0);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], 2.0f);
  EXPECT_EQ(y[2], 4.0f);
  const uint16_t wb[6] = {f32_to_bf16(1), 0, 0, f32_to_bf16(1), f32_to_bf16(1), f32_to_bf16(1)};
  reference::linear(y, x, WeightRef{wb, DType::BF16, 3, 2, 0}, nullptr, 1, 0, 0);
  EXPECT_EQ(y[2], 3.0f);
  // C = 2·A·B + 1·C with A [1,2] = [1 2], B [2,2] = [[1 2],[3 4]] -> 2·[7 10] + [1 1].
  const float A[2] = {1, 2}, B[4] = {1, 2, 3, 4};
  float C[2] = {1, 1};
  reference::matmul_f32(C, A, B, 1, 2, 2, false, 2, 2, 2, 2.0f, 1.0f);
  EXPECT_EQ(C[0], 15.0f);
  EXPECT_EQ(C[1], 21.0f);
  reference::matmul_f32(C, A, B, 1, 2, 2, true, 2, 2, 2, 1.0f, 0.0f);  // Bᵀ: rows of B are columns
  EXPECT_EQ(C[0], 5.0f);
  EXPECT_EQ(C[1], 11.0f);
}

TEST(Reference, RmsnormOf3And4) {
  float x[2] = {3, 4};  // mean square 12.5
  const float w[2] = {2, 0.5f};
  float y[2];
  reference::rmsnorm(y, x, nullptr, 1, 2, 0.0f, 0, 0);
  EXPECT_NEAR(y[0], 3 / std::sqrt(12.5), 1e-7);
  EXPECT_NEAR(y[1], 4 / std::sqrt(12.5), 1e-7);
  reference::rmsnorm(x, x, w, 1, 2, 0.0f, 0, 0);  // in place
  EXPECT_NEAR(x[0], 6 / std::sqrt(12.5), 1e-6);
  EXPECT_NEAR(x[1], 2 / std::sqrt(12.5), 1e-7);
}

TEST(Reference, SoftmaxKnownValuesAndInfinities) {
  float x[8] = {0, std::log(2.0f), std::log(3.0f), -kInf, -kInf, -kInf, -kInf, -kInf};
  reference::softmax_rows(x, 2, 4, 4);  // row 1 ends in -inf entries; row 2 is all -inf
  EXPECT_NEAR(x[0], 1.0 / 6, 1e-7);
  EXPECT_NEAR(x[1], 2.0 / 6, 1e-7);
  EXPECT_NEAR(x[2], 3.0 / 6, 1e-7);
  EXPECT_EQ(x[3], 0.0f);
  for (int i = 4; i < 8; ++i) EXPECT_EQ(x[i], 0.0f);
}

TEST(Reference, ElementWise) {
  const float x[3] = {0, 1, -2};
  float y[3];
  reference::silu(y, x, 3);
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_NEAR(y[1], 1 / (1 + std::exp(-1.0)), 1e-7);
  EXPECT_NEAR(y[2], -2 / (1 + std::exp(2.0)), 1e-7);
  const float up[3] = {5, 2, 1};
  reference::swiglu(y, x, up, 3);
  EXPECT_NEAR(y[1], 2 / (1 + std::exp(-1.0)), 1e-7);
  float z[3] = {1, 1, 1};
  reference::axpy(z, 2.0f, x, 3);
  EXPECT_EQ(z[2], -3.0f);
  reference::add_inplace(z, x, 3);
  EXPECT_EQ(z[1], 4.0f);
}

TEST(Reference, RopeRotatesUnitVectorsByKnownAngles) {
  const RopeTable t2 = rope_table_default(2, 10000.0);  // one pair, inv_freq 1
  ASSERT_EQ(t2.inv_freq.size(), 1u);
  EXPECT_EQ(t2.inv_freq[0], 1.0f);
  float v[4] = {1, 0, 0, 1};  // two tokens: (1, 0) at pos 1, (0, 1) at pos 1
  const int32_t pos[2] = {1, 1};
  reference::rope_apply(v, 2, 1, 2, 0, pos, t2, RopeLayout::Interleaved);
  EXPECT_NEAR(v[0], std::cos(1.0), 1e-7);
  EXPECT_NEAR(v[1], std::sin(1.0), 1e-7);
  EXPECT_NEAR(v[2], -std::sin(1.0), 1e-7);
  EXPECT_NEAR(v[3], std::cos(1.0), 1e-7);
  // HalfSplit, dim 4: pairs (x0, x2) at freq 1 and (x1, x3) at freq 10000^(-1/2) = 0.01; pos 100 -> 100, 1 rad.
  const RopeTable t4 = rope_table_default(4, 10000.0);
  EXPECT_NEAR(t4.inv_freq[1], 0.01, 1e-9);
  float h[4] = {1, 1, 0, 0};
  const int32_t p100 = 100;
  reference::rope_apply(h, 1, 1, 4, 4, &p100, t4, RopeLayout::HalfSplit);
  EXPECT_NEAR(h[0], std::cos(100.0), 1e-6);
  EXPECT_NEAR(h[2], std::sin(100.0), 1e-6);
  EXPECT_NEAR(h[1], std::cos(double(float(100 * 0.01f))), 1e-7);
  EXPECT_NEAR(h[3], std::sin(double(float(100 * 0.01f))), 1e-7);
}

TEST(RopeTables, YarnDeepSeekShape) {
  // dim 64, θ 1e4, factor 40, original context 4096, β 32/1: low = floor(10.47) = 10, high = ceil(22.5) = 23.
  const RopeTable y = rope_table_yarn(64, 10000.0, 40.0, 4096.0, 32.0, 1.0, 1.0, 1.0);
  const RopeTable d = rope_table_default(64, 10000.0);
  ASSERT_EQ(y.inv_freq.size(), 32u);
  for (int j = 0; j <= 10; ++j) EXPECT_EQ(y.inv_freq[size_t(j)], d.inv_freq[size_t(j)]) << j;
  for (int j = 23; j < 32; ++j) EXPECT_NEAR(y.inv_freq[size_t(j)], d.inv_freq[size_t(j)] / 40.0, 1e-7 * d.inv_freq[size_t(j)]) << j;
  const double base16 = std::pow(10000.0, -32.0 / 64), ramp16 = (16.0 - 10) / 13;
  EXPECT_NEAR(y.inv_freq[16], base16 * (1 - ramp16) + base16 / 40 * ramp16, 1e-9);
  EXPECT_EQ(y.attention_factor, 1.0f);  // mscale == mscale_all_dim
  const RopeTable y2 = rope_table_yarn(64, 10000.0, 40.0, 4096.0, 32.0, 1.0, 1.0, 0.0);
  EXPECT_NEAR(y2.attention_factor, 0.1 * std::log(40.0) + 1, 1e-6);
}

TEST(RopeTables, Llama3) {
  // Llama 3.1: θ 5e5, factor 8, low/high freq factor 1/4, original 8192 -> wavelengths < 2048 kept,
  // > 8192 divided by 8, blended between.
  const RopeTable l = rope_table_llama3(128, 500000.0, 8.0, 1.0, 4.0, 8192.0);
  const RopeTable d = rope_table_default(128, 500000.0);
  int kept = 0, divided = 0, blended = 0;
  for (size_t j = 0; j < 64; ++j) {
    const double f = d.inv_freq[j], wl = 2 * std::numbers::pi / f;
    if (wl < 2048) {
      EXPECT_NEAR(l.inv_freq[j], f, 1e-7 * f);
      ++kept;
    } else if (wl > 8192) {
      EXPECT_NEAR(l.inv_freq[j], f / 8, 1e-7 * f);
      ++divided;
    } else {
      const double s = (8192 / wl - 1) / 3;
      EXPECT_NEAR(l.inv_freq[j], (1 - s) * f / 8 + s * f, 1e-7 * f);
      ++blended;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(blended, 0);
}

TEST(Reference, AttentionSingleKeyCausalAndGqa) {
  AttentionArgs a;
  a.n_q = 1, a.n_kv = 1, a.n_heads = 1, a.n_kv_heads = 1, a.qk_dim = 2, a.v_dim = 3, a.scale = 0.5f;
  a.q_stride = a.q_head_stride = 2, a.k_stride = a.k_head_stride = 2, a.v_stride = a.v_head_stride = 3;
  a.out_stride = a.out_head_stride = 3;
  const float q[2] = {1, -2}, k[2] = {3, 4}, v[3] = {7, -8, 9};
  float out[3];
  reference::attention_causal(out, q, k, v, a);
  EXPECT_EQ(out[0], 7.0f);
  EXPECT_EQ(out[1], -8.0f);
  EXPECT_EQ(out[2], 9.0f);

  // GQA: 4 heads over 2 kv heads, 2 queries, 2 keys with equal (zero) scores. Head h uses kv group h / 2;
  // query 0 sees key 0 only, query 1 averages keys 0 and 1.
  AttentionArgs g;
  g.n_q = 2, g.n_kv = 2, g.n_heads = 4, g.n_kv_heads = 2, g.qk_dim = 1, g.v_dim = 1, g.scale = 1.0f;
  g.q_stride = 4, g.q_head_stride = 1, g.k_stride = 2, g.k_head_stride = 1, g.v_stride = 2, g.v_head_stride = 1;
  g.out_stride = 4, g.out_head_stride = 1;
  const float gq[8] = {0, 0, 0, 0, 0, 0, 0, 0}, gk[4] = {1, 1, 1, 1};
  const float gv[4] = {10, 20, 30, 40};  // [s, group]: key 0 -> (10, 20), key 1 -> (30, 40)
  float go[8];
  reference::attention_causal(go, gq, gk, gv, g);
  const float expect[8] = {10, 10, 20, 20, 20, 20, 30, 30};
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(go[i], expect[i]) << i;
}

TEST(Reference, TopkTieOrder) {
  const float x[6] = {1, 3, 3, 2, 3, -kInf};
  int32_t idx[6];
  float val[6];
  reference::topk(x, 6, 3, idx, val);
  EXPECT_EQ(idx[0], 1);
  EXPECT_EQ(idx[1], 2);
  EXPECT_EQ(idx[2], 4);
  EXPECT_EQ(val[2], 3.0f);
  reference::topk(x, 6, 6, idx, val);
  EXPECT_EQ(idx[3], 3);
  EXPECT_EQ(idx[5], 5);
}

TEST(Validation, ErrorsNameTheOp) {
  for (Backend b : {Backend::Reference, best_backend()}) {
    set_backend(b);
    const float tab[6] = {1, 2, 3, 4, 5, 6};
    float y[4];
    const int32_t bad[2] = {1, 3};
    try {
      embedding_gather(y, WeightRef{tab, DType::F32, 3, 2, 0}, bad, 2);
      ADD_FAILURE() << "no throw";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("[embedding_gather]", 0), 0u) << e.what();
    }
    const int32_t neg = -1;
    EXPECT_THROW(embedding_gather(y, WeightRef{tab, DType::F32, 3, 2, 0}, &neg, 1), Error);
    EXPECT_THROW(linear(y, tab, WeightRef{tab, DType::I32, 1, 2, 0}, nullptr, 1), Error);
    EXPECT_THROW(linear(y, tab, WeightRef{tab, DType::F32, 2, 3, 2}, nullptr, 1), Error);  // ld < cols
    int32_t idx[2];
    EXPECT_THROW(topk(tab, 2, 3, idx, nullptr), Error);
    AttentionArgs a;
    a.n_q = 1, a.n_kv = 1, a.n_heads = 3, a.n_kv_heads = 2, a.qk_dim = 1, a.v_dim = 1;
    EXPECT_THROW(attention_causal(y, tab, tab, tab, a), Error);
    a.n_heads = 2, a.n_kv = 0;  // query 0 would have no key
    EXPECT_THROW(attention_causal(y, tab, tab, tab, a), Error);
  }
  set_backend(best_backend());
}

TEST(Backends, SelectionAndNames) {
  EXPECT_STREQ(backend_name(Backend::Reference), "reference");
  EXPECT_STREQ(backend_name(Backend::AVX2), "avx2");
  EXPECT_STREQ(backend_name(Backend::AVX512), "avx512");
  EXPECT_NO_THROW(set_backend(best_backend()));
  EXPECT_EQ(active_backend(), best_backend());
  set_backend(Backend::Reference);
  EXPECT_EQ(active_backend(), Backend::Reference);
  set_backend(best_backend());
  if (fast_backends().size() == 2) GTEST_SKIP() << "every backend runs here; cannot test the refusal";
  EXPECT_THROW(set_backend(Backend::AVX512), Error);
}

// ----------------------------------------------------------------------------------------------------------
// Fast backends against the reference.
// ----------------------------------------------------------------------------------------------------------
void check_linear(DType dt, int64_t M, int64_t N, int64_t K, bool with_bias, int64_t pad, uint32_t seed) {
  const int64_t ldx = K + pad, ldy = N + pad, ldw = K + pad;
  const Weights w = make_weights(dt, N, K, ldw, seed);
  const std::vector<float> x = randv(size_t(M * ldx), seed + 1), bias = randv(size_t(N), seed + 2);
  std::vector<float> yr(size_t(M * ldy), kSentinel), yf = yr;
  reference::linear(yr.data(), x.data(), w.ref, with_bias ? bias.data() : nullptr, M, ldy, ldx);
  linear(yf.data(), x.data(), w.ref, with_bias ? bias.data() : nullptr, M, ldy, ldx);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < ldy; ++n) {
      const size_t i = size_t(m * ldy + n);
      if (n >= N) {
        ASSERT_EQ(yf[i], kSentinel) << "padding written";
        continue;
      }
      double mag = with_bias ? std::abs(bias[size_t(n)]) : 0.0;
      for (int64_t k = 0; k < K; ++k) mag += std::abs(double(x[size_t(m * ldx + k)]) * w.f32[size_t(n * ldw + k)]);
      ASSERT_LE(std::abs(double(yf[i]) - yr[i]), kRtol * mag + 1e-30)
          << dtype_name(dt) << " M=" << M << " N=" << N << " K=" << K << " m=" << m << " n=" << n;
    }
}

TEST_P(Fast, LinearAllDtypesShapesAndPaths) {
  uint32_t seed = 1;
  for (int path : {1, 2})  // own kernel, OpenBLAS
    for (DType dt : {DType::F32, DType::BF16, DType::F16})
      for (int64_t M : {1, 3, 17})
        for (int64_t N : {1, 31, 33, 257})
          for (int64_t K : {1, 31, 32, 33, 257}) {
            TuningGuard tg(path);
            check_linear(dt, M, N, K, (M + N + K) % 2 == 0, (N + K) % 3, seed++);
          }
}

TEST_P(Fast, LinearDefaultThresholds) {
  uint32_t seed = 100;
  for (DType dt : {DType::F32, DType::BF16, DType::F16})
    for (int64_t M : {1, 2, 4, 5, 8, 15, 16, 31, 32, 33, 64, 130}) check_linear(dt, M, 70, 1100, true, 1, seed++);
}

TEST_P(Fast, LinearEmptySums) {
  const float bias[3] = {1, 2, 3};
  float y[6] = {9, 9, 9, 9, 9, 9};
  linear(y, nullptr, WeightRef{bias, DType::F32, 3, 0, 0}, bias, 2);  // K == 0: y = bias
  EXPECT_EQ(y[3], 1.0f);
  EXPECT_EQ(y[5], 3.0f);
  float c[2] = {std::numeric_limits<float>::quiet_NaN(), 5.0f};
  matmul_f32(c, nullptr, nullptr, 1, 2, 0, false, 0, 2, 2, 1.0f, 0.0f);  // K == 0, beta 0: zeros, C unread
  EXPECT_EQ(c[0], 0.0f);
  EXPECT_EQ(c[1], 0.0f);
  linear(y, nullptr, WeightRef{bias, DType::F32, 3, 2, 0}, bias, 0);  // M == 0: nothing to do
  EXPECT_EQ(y[0], 1.0f);
}

TEST_P(Fast, Matmul) {
  uint32_t seed = 500;
  for (bool tb : {false, true})
    for (float beta : {0.0f, 1.5f})
      for (int64_t M : {1, 3, 17})
        for (int64_t N : {1, 31, 33, 257})
          for (int64_t K : {1, 32, 33, 257}) {
            const int64_t lda = K + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
            const std::vector<float> A = randv(size_t(M * lda), seed++), B = randv(size_t((tb ? N : K) * ldb), seed++);
            std::vector<float> Cr = randv(size_t(M * ldc), seed++);
            if (beta == 0.0f)  // beta 0 must not read C
              for (float& c : Cr) c = std::numeric_limits<float>::quiet_NaN();
            std::vector<float> Cf = Cr, C0 = Cr;
            reference::matmul_f32(Cr.data(), A.data(), B.data(), M, N, K, tb, lda, ldb, ldc, 0.5f, beta);
            matmul_f32(Cf.data(), A.data(), B.data(), M, N, K, tb, lda, ldb, ldc, 0.5f, beta);
            for (int64_t m = 0; m < M; ++m)
              for (int64_t n = 0; n < N; ++n) {
                double mag = beta == 0.0f ? 0.0 : std::abs(beta * C0[size_t(m * ldc + n)]);
                for (int64_t k = 0; k < K; ++k)
                  mag += 0.5 * std::abs(A[size_t(m * lda + k)] * B[size_t(tb ? n * ldb + k : k * ldb + n)]);
                const size_t i = size_t(m * ldc + n);
                ASSERT_LE(std::abs(double(Cf[i]) - Cr[i]), kRtol * mag) << M << " " << N << " " << K << " tb=" << tb;
              }
          }
}

TEST_P(Fast, RmsnormStridedAndInPlace) {
  uint32_t seed = 900;
  for (int64_t dim : {1, 31, 32, 33, 257, 4100})
    for (bool with_w : {false, true}) {
      const int64_t rows = 3, ldx = dim + 3, ldy = dim + 5;
      const std::vector<float> x = randv(size_t(rows * ldx), seed++, -3, 3), w = randv(size_t(dim), seed++);
      std::vector<float> yr(size_t(rows * ldy), kSentinel), yf = yr;
      reference::rmsnorm(yr.data(), x.data(), with_w ? w.data() : nullptr, rows, dim, 1e-6f, ldy, ldx);
      rmsnorm(yf.data(), x.data(), with_w ? w.data() : nullptr, rows, dim, 1e-6f, ldy, ldx);
      for (size_t i = 0; i < yr.size(); ++i) ASSERT_TRUE(close_elem(yf[i], yr[i])) << dim << " " << i << " " << yf[i] << " " << yr[i];
      std::vector<float> inplace = x;  // y == x, ld = ldx
      rmsnorm(inplace.data(), inplace.data(), with_w ? w.data() : nullptr, rows, dim, 1e-6f, ldx, ldx);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < dim; ++i) ASSERT_EQ(inplace[size_t(r * ldx + i)], yf[size_t(r * ldy + i)]);
    }
}

TEST_P(Fast, SoftmaxWithInfinities) {
  uint32_t seed = 1000;
  for (int64_t n : {1, 31, 32, 33, 257, 5000}) {
    const int64_t rows = 4, ld = n + 2;
    std::vector<float> x = randv(size_t(rows * ld), seed++, -20, 20);
    for (int64_t i = 0; i < n; i += 3) x[size_t(ld + i)] = -kInf;  // row 1: some -inf (all of it when n == 1)
    for (int64_t i = 0; i < n; ++i) x[size_t(2 * ld + i)] = -kInf;  // row 2: all -inf -> zeros
    x[size_t(3 * ld)] = 80.0f;                                     // row 3: one dominant entry
    std::vector<float> r = x, f = x;
    reference::softmax_rows(r.data(), rows, n, ld);
    softmax_rows(f.data(), rows, n, ld);
    for (size_t i = 0; i < r.size(); ++i) ASSERT_TRUE(close_elem(f[i], r[i])) << n << " " << i << " " << f[i] << " " << r[i];
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(f[size_t(2 * ld + i)], 0.0f);
  }
}

TEST_P(Fast, ElementWise) {
  uint32_t seed = 1100;
  for (int64_t n : {1, 31, 32, 33, 257, 40000}) {
    std::vector<float> x = randv(size_t(n), seed++, -20, 20), u = randv(size_t(n), seed++, -3, 3);
    const float extremes[] = {0.0f, -87.0f, -88.5f, -90.0f, -100.0f, 88.0f, 100.0f, -kInf, kInf, 1e-20f};
    for (size_t i = 0; i < std::size(extremes) && i < size_t(n); ++i) x[i] = extremes[i];
    std::vector<float> r(static_cast<size_t>(n)), f(static_cast<size_t>(n));
    reference::silu(r.data(), x.data(), n);
    silu(f.data(), x.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_TRUE(close_elem(f[size_t(i)], r[size_t(i)])) << "silu " << x[size_t(i)];
    reference::swiglu(r.data(), x.data(), u.data(), n);
    std::vector<float> g = x;  // in place: y == gate, as the SwiGLU layer calls it
    swiglu(g.data(), g.data(), u.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_TRUE(close_elem(g[size_t(i)], r[size_t(i)])) << "swiglu " << x[size_t(i)];
    std::vector<float> ar = u, af = u;
    reference::axpy(ar.data(), -0.75f, x.data(), n);
    axpy(af.data(), -0.75f, x.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_TRUE(close_elem(af[size_t(i)], ar[size_t(i)])) << "axpy";
    std::vector<float> sr = u, sf = u;
    reference::add_inplace(sr.data(), ar.data(), n);
    add_inplace(sf.data(), ar.data(), n);
    ASSERT_EQ(sr, sf);
  }
}

TEST_P(Fast, ExpAccuracy) {
  // Relative error of the backend's exp over the whole finite range, against std::exp in double.
  const cpu::Kernels& kt = table(GetParam());
  const int64_t n = 1 << 21;
  std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[size_t(i)] = float(-87.3 + (88.37 + 87.3) * double(i) / double(n - 1));
  kt.exp(y.data(), x.data(), n);
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = std::exp(double(x[size_t(i)]));
    worst = std::max(worst, std::abs(y[size_t(i)] - e) / e);
  }
  EXPECT_LT(worst, 1.5e-7);  // measured over every float in range: 7.9e-8
  const float special[6] = {0.0f, -kInf, kInf, -100.0f, 89.0f, std::numeric_limits<float>::quiet_NaN()};
  float out[6];
  kt.exp(out, special, 6);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 0.0f);
  EXPECT_EQ(out[2], kInf);
  EXPECT_EQ(out[3], 0.0f);
  EXPECT_EQ(out[4], kInf);
  EXPECT_TRUE(std::isnan(out[5]));
}

TEST_P(Fast, Rope) {
  uint32_t seed = 1200;
  const RopeTable yarn = rope_table_yarn(64, 10000.0, 40.0, 4096.0, 32.0, 1.0, 1.0, 0.707);
  for (const RopeTable& t : {rope_table_default(2, 10000.0), rope_table_default(32, 1e6), yarn,
                             rope_table_default(128, 10000.0)})
    for (RopeLayout layout : {RopeLayout::Interleaved, RopeLayout::HalfSplit}) {
      const int64_t T = 5, H = 3, hs = t.dim + 3, ts = H * hs + 1;
      std::vector<float> x = randv(size_t(T * ts), seed++);
      const int32_t pos[5] = {0, 1, 17, 4095, 100000};
      std::vector<float> r = x, f = x;
      reference::rope_apply(r.data(), T, H, ts, hs, pos, t, layout);
      rope_apply(f.data(), T, H, ts, hs, pos, t, layout);
      for (size_t i = 0; i < r.size(); ++i) ASSERT_NEAR(f[i], r[i], 1e-6) << t.dim << " " << i;
      // head_stride 0, one head (the shared MLA k_pe): same as a one-head tensor.
      std::vector<float> s1 = x, s2 = x;
      rope_apply(s1.data(), T, 1, ts, 0, pos, t, layout);
      reference::rope_apply(s2.data(), T, 1, ts, hs, pos, t, layout);
      for (size_t i = 0; i < s1.size(); ++i) ASSERT_NEAR(s1[i], s2[i], 1e-6);
    }
}

TEST_P(Fast, TopkMatchesReferenceWithTies) {
  uint32_t seed = 1300;
  for (int64_t n : {1, 31, 32, 33, 257, 5000}) {
    std::vector<float> x = randv(size_t(n), seed++);
    for (float& v : x) v = std::round(v * 4) / 4;  // few distinct values: many ties
    if (n > 10) x[3] = -kInf, x[7] = std::numeric_limits<float>::quiet_NaN();
    for (int64_t k : {int64_t(1), n / 2, n}) {
      std::vector<int32_t> ir(static_cast<size_t>(k)), jf(static_cast<size_t>(k));
      std::vector<float> vr(static_cast<size_t>(k)), vf(static_cast<size_t>(k));
      reference::topk(x.data(), n, k, ir.data(), vr.data());
      topk(x.data(), n, k, jf.data(), vf.data());
      ASSERT_EQ(ir, jf) << n << " " << k;
      for (int64_t i = 0; i < k; ++i) ASSERT_TRUE(vf[size_t(i)] == vr[size_t(i)] || std::isnan(vr[size_t(i)]));
    }
  }
}

TEST_P(Fast, EmbeddingGather) {
  for (DType dt : {DType::F32, DType::BF16, DType::F16})
    for (int64_t dim : {1, 31, 33, 257}) {
      const int64_t vocab = 50;
      const Weights w = make_weights(dt, vocab, dim, dim + 1, uint32_t(dim));
      const int32_t ids[5] = {0, 49, 7, 7, 13};
      std::vector<float> yr(size_t(5 * dim)), yf(size_t(5 * dim));
      reference::embedding_gather(yr.data(), w.ref, ids, 5);
      embedding_gather(yf.data(), w.ref, ids, 5);
      ASSERT_EQ(yr, yf);
      EXPECT_EQ(yf[size_t(dim)], w.f32[size_t(49 * (dim + 1))]);
      const int32_t bad = int32_t(vocab);
      EXPECT_THROW(embedding_gather(yf.data(), w.ref, &bad, 1), Error);
    }
}

struct AttnCase {
  int64_t n_q, kv_offset, H, G, qk, v;
};

// Dense [t, h, d] layouts with padding between heads and tokens; values in [-1, 1] so max|v| <= 1.
void check_attention(const AttnCase& c, uint32_t seed) {
  AttentionArgs a;
  a.n_q = c.n_q, a.kv_offset = c.kv_offset, a.n_kv = c.kv_offset + c.n_q;
  a.n_heads = c.H, a.n_kv_heads = c.G, a.qk_dim = c.qk, a.v_dim = c.v;
  a.q_head_stride = c.qk + 1, a.q_stride = c.H * a.q_head_stride + 2;
  a.k_head_stride = c.qk + 3, a.k_stride = c.G * a.k_head_stride;
  a.v_head_stride = c.v + 2, a.v_stride = c.G * a.v_head_stride + 1;
  a.out_head_stride = c.v + 1, a.out_stride = c.H * a.out_head_stride + 3;
  a.scale = float(1 / std::sqrt(double(c.qk)));
  const std::vector<float> q = randv(size_t(c.n_q * a.q_stride), seed, -2, 2);
  const std::vector<float> k = randv(size_t(a.n_kv * a.k_stride), seed + 1, -2, 2);
  const std::vector<float> v = randv(size_t(a.n_kv * a.v_stride), seed + 2);
  std::vector<float> r(size_t(c.n_q * a.out_stride), kSentinel), f = r;
  reference::attention_causal(r.data(), q.data(), k.data(), v.data(), a);
  attention_causal(f.data(), q.data(), k.data(), v.data(), a);
  for (size_t i = 0; i < r.size(); ++i)
    ASSERT_NEAR(f[i], r[i], kRtol) << "n_q=" << c.n_q << " off=" << c.kv_offset << " H=" << c.H << " G=" << c.G
                                   << " qk=" << c.qk << " v=" << c.v << " i=" << i;
}

TEST_P(Fast, AttentionShapesGqaOffsets) {
  uint32_t seed = 1400;
  for (auto [qk, v] : {std::pair<int64_t, int64_t>{1, 1}, {31, 33}, {32, 32}, {33, 31}, {257, 257}, {64, 17}})
    for (auto [H, G] : {std::pair<int64_t, int64_t>{1, 1}, {4, 2}, {6, 1}, {5, 5}, {12, 4}, {8, 1}})
      for (auto [n_q, off] : {std::pair<int64_t, int64_t>{1, 0}, {1, 33}, {5, 0}, {4, 7}})
        check_attention({n_q, off, H, G, qk, v}, seed++);
}

TEST_P(Fast, AttentionMlaAbsorbedAliasing) {
  // One latent cache row per key [c ‖ k_pe] of C = R + Dr floats; k and v both point at it, v_dim = R.
  const int64_t R = 40, Dr = 8, C = R + Dr, H = 6, T = 3, p0 = 9, S = p0 + T;
  const std::vector<float> cache = randv(size_t(S * C), 7);
  const std::vector<float> q = randv(size_t(T * H * C), 8, -2, 2);
  AttentionArgs a;
  a.n_q = T, a.n_kv = S, a.n_heads = H, a.n_kv_heads = 1, a.qk_dim = C, a.v_dim = R, a.kv_offset = p0;
  a.q_stride = H * C, a.q_head_stride = C, a.k_stride = C, a.k_head_stride = 0, a.v_stride = C, a.v_head_stride = 0;
  a.out_stride = H * R, a.out_head_stride = R, a.scale = 0.1f;
  std::vector<float> r(size_t(T * H * R)), f(size_t(T * H * R));
  reference::attention_causal(r.data(), q.data(), cache.data(), cache.data(), a);
  attention_causal(f.data(), q.data(), cache.data(), cache.data(), a);
  for (size_t i = 0; i < r.size(); ++i) ASSERT_NEAR(f[i], r[i], kRtol) << i;
}

// The paged op over a block table equals the contiguous oracle on the same (decoded) rows: GQA rows [k ‖ v]
// and MLA latent rows (k and v the same row), block sizes 1, 3, 16, sequences ending mid-block, blocks out of
// order, rows stored as f32, bf16 and int8.
TEST_P(Fast, AttentionPagedEqualsContiguous) {
  uint32_t seed = 1500;
  for (KvDType dt : {KvDType::F32, KvDType::BF16, KvDType::Int8})
    for (int64_t bs : {1, 3, 16})
      for (auto [n_q, off] : {std::pair<int64_t, int64_t>{1, 0}, {1, 31}, {4, 29}, {33, 0}})
        for (bool mla : {false, true}) {
          const int64_t H = mla ? 6 : 8, G = mla ? 1 : 2, qk = mla ? 48 : 33, vd = mla ? 40 : 31;
          const int64_t row = mla ? qk : G * (qk + vd), S = off + n_q, rb = kv_row_bytes(dt, row);
          AttentionArgs a;
          a.n_q = n_q, a.n_kv = S, a.kv_offset = off, a.n_heads = H, a.n_kv_heads = G, a.qk_dim = qk, a.v_dim = vd;
          a.q_stride = H * qk, a.q_head_stride = qk;
          a.k_head_stride = mla ? 0 : qk, a.v_head_stride = mla ? 0 : vd;
          a.k_stride = a.v_stride = row;
          a.out_stride = H * vd, a.out_head_stride = vd, a.scale = 0.2f;
          const std::vector<float> rows = randv(size_t(S * row), seed++);  // contiguous [S, row]
          const std::vector<float> q = randv(size_t(n_q * H * qk), seed++, -2, 2);
          // Encode the rows into blocks placed in reverse order inside one buffer; the oracle sees the decoded rows.
          const int64_t nb = (S + bs - 1) / bs;
          std::vector<char> pool(size_t(nb * bs * rb), 0);
          std::vector<const void*> blocks(static_cast<size_t>(nb));
          for (int64_t b = 0; b < nb; ++b) blocks[size_t(b)] = pool.data() + (nb - 1 - b) * bs * rb;
          std::vector<float> decoded(rows.size());
          for (int64_t s = 0; s < S; ++s) {
            char* dst = const_cast<char*>(static_cast<const char*>(blocks[size_t(s / bs)])) + (s % bs) * rb;
            kv_encode_row(dt, rows.data() + s * row, row, dst);
            kv_decode_row(dt, dst, row, decoded.data() + s * row);
          }
          PagedKv kv{blocks.data(), bs, row, 0, mla ? 0 : G * qk, dt};
          std::vector<float> want(size_t(n_q * a.out_stride)), ref = want, fast = want;
          reference::attention_causal(want.data(), q.data(), decoded.data(), decoded.data() + kv.v_offset, a);
          reference::attention_paged(ref.data(), q.data(), kv, a);
          attention_paged(fast.data(), q.data(), kv, a);
          for (size_t i = 0; i < want.size(); ++i) {
            ASSERT_NEAR(ref[i], want[i], 1e-6) << kv_dtype_name(dt) << " bs=" << bs << " n_q=" << n_q << " off=" << off << " mla=" << mla;
            ASSERT_NEAR(fast[i], want[i], kRtol) << kv_dtype_name(dt) << " bs=" << bs << " n_q=" << n_q << " off=" << off << " mla=" << mla;
          }
        }
  // Bad tables fail clearly.
  AttentionArgs a;
  a.n_q = 1, a.n_kv = 1, a.n_heads = 1, a.n_kv_heads = 1, a.qk_dim = 4, a.v_dim = 4, a.q_stride = 4, a.out_stride = 4;
  std::vector<float> q(4), out(4), row(8);
  const void* blk[1] = {row.data()};
  EXPECT_THROW(attention_paged(out.data(), q.data(), PagedKv{blk, 0, 8, 0, 4}, a), Error);
  EXPECT_THROW(attention_paged(out.data(), q.data(), PagedKv{blk, 4, 6, 0, 4}, a), Error);  // value past the row
  const void* null_blk[1] = {nullptr};
  EXPECT_THROW(attention_paged(out.data(), q.data(), PagedKv{null_blk, 4, 8, 0, 4}, a), Error);
}

TEST(KvCodec, RoundTripErrorBounds) {
  for (int64_t row : {1, 31, 32, 33, 80, 257}) {
    std::vector<float> x = randv(size_t(row), uint32_t(row), -3, 3);
    x[0] = 100.0f;  // one large value only coarsens its own group of 32
    std::vector<char> buf(size_t(kv_row_bytes(KvDType::Int8, row)));
    std::vector<float> y(static_cast<size_t>(row));
    kv_encode_row(KvDType::Int8, x.data(), row, buf.data());
    kv_decode_row(KvDType::Int8, buf.data(), row, y.data());
    for (int64_t g = 0; g * 32 < row; ++g) {
      float amax = 0;
      for (int64_t i = g * 32; i < std::min(row, g * 32 + 32); ++i) amax = std::max(amax, std::fabs(x[size_t(i)]));
      for (int64_t i = g * 32; i < std::min(row, g * 32 + 32); ++i)
        ASSERT_LE(std::fabs(y[size_t(i)] - x[size_t(i)]), amax / 254.0f * 1.0001f + 1e-7f) << row << " " << i;
    }
    EXPECT_EQ(kv_row_bytes(KvDType::Int8, row), row + 4 * ((row + 31) / 32));
    std::vector<char> hb(size_t(kv_row_bytes(KvDType::BF16, row)));
    kv_encode_row(KvDType::BF16, x.data(), row, hb.data());
    kv_decode_row(KvDType::BF16, hb.data(), row, y.data());
    for (int64_t i = 0; i < row; ++i) ASSERT_LE(std::fabs(y[size_t(i)] - x[size_t(i)]), std::fabs(x[size_t(i)]) / 256.0f);
  }
  std::vector<float> zero(40, 0.0f), back(40, 1.0f);
  std::vector<char> zb(size_t(kv_row_bytes(KvDType::Int8, 40)));
  kv_encode_row(KvDType::Int8, zero.data(), 40, zb.data());
  kv_decode_row(KvDType::Int8, zb.data(), 40, back.data());
  EXPECT_EQ(back, zero);
  EXPECT_EQ(kv_dtype_from_name("bf16"), KvDType::BF16);
  EXPECT_THROW(kv_dtype_from_name("fp8"), Error);
}

TEST_P(Fast, AttentionSingleKeyReturnsV) {
  AttentionArgs a;
  a.n_q = 1, a.n_kv = 1, a.n_heads = 2, a.n_kv_heads = 1, a.qk_dim = 3, a.v_dim = 19, a.scale = 1.0f;
  a.q_stride = 6, a.q_head_stride = 3, a.k_stride = 3, a.v_stride = 19, a.out_stride = 38, a.out_head_stride = 19;
  const std::vector<float> q = randv(6, 1), k = randv(3, 2), v = randv(19, 3);
  std::vector<float> out(38);
  attention_causal(out.data(), q.data(), k.data(), v.data(), a);
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 19; ++i) EXPECT_FLOAT_EQ(out[size_t(h * 19 + i)], v[size_t(i)]);
}

// Same inputs with 1, 2 and 3 pool threads must give bit-identical outputs.
TEST_P(Fast, DeterministicAcrossThreadCounts) {
  const int64_t M = 5, N = 1000, K = 700;
  const Weights wf = make_weights(DType::F32, N, K, K, 1), wb = make_weights(DType::BF16, N, K, K, 2);
  const std::vector<float> x = randv(size_t(64 * K), 3);
  AttentionArgs a;
  a.n_q = 6, a.kv_offset = 200, a.n_kv = 206, a.n_heads = 8, a.n_kv_heads = 2, a.qk_dim = 64, a.v_dim = 64;
  a.q_stride = 8 * 64, a.q_head_stride = 64, a.k_stride = 2 * 64, a.k_head_stride = 64;
  a.v_stride = 2 * 64, a.v_head_stride = 64, a.out_stride = 8 * 64, a.out_head_stride = 64, a.scale = 0.125f;
  const std::vector<float> q = randv(size_t(6 * 512), 4), kv = randv(size_t(206 * 128), 5);
  // MLA-style decode (one query, one kv head, 8 heads): the head block shrinks as threads grow (8, 4, 2).
  AttentionArgs d = a;
  d.n_q = 1, d.kv_offset = 205, d.n_kv = 206, d.n_kv_heads = 1, d.k_stride = d.v_stride = 128;
  d.k_head_stride = d.v_head_stride = 0, d.qk_dim = 128, d.v_dim = 100, d.q_head_stride = 128;
  d.q_stride = 8 * 128, d.out_stride = 8 * 100, d.out_head_stride = 100;
  auto run = [&] {
    std::vector<float> out;
    for (int path : {1, 2}) {
      TuningGuard tg(path);
      for (const Weights* w : {&wf, &wb})
        for (int64_t m : {M, int64_t(64)}) {
          std::vector<float> y(size_t(m * N));
          linear(y.data(), x.data(), w->ref, nullptr, m);
          out.insert(out.end(), y.begin(), y.end());
        }
    }
    std::vector<float> o(size_t(6 * 512));
    attention_causal(o.data(), q.data(), kv.data(), kv.data(), a);
    out.insert(out.end(), o.begin(), o.end());
    std::vector<float> od(size_t(8 * 100));
    attention_causal(od.data(), q.data(), kv.data(), kv.data(), d);
    out.insert(out.end(), od.begin(), od.end());
    std::vector<float> s = randv(size_t(300 * 333), 6, -5, 5);
    softmax_rows(s.data(), 300, 333, 333);
    out.insert(out.end(), s.begin(), s.end());
    return out;
  };
  ThreadPool::set_global_threads(1);
  const std::vector<float> one = run();
  ThreadPool::set_global_threads(2);
  const std::vector<float> two = run();
  ThreadPool::set_global_threads(3);
  const std::vector<float> three = run();
  ThreadPool::set_global_threads(0);
  ASSERT_EQ(one.size(), two.size());
  EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(one.data(), three.data(), one.size() * sizeof(float)), 0);
}

}  // namespace
