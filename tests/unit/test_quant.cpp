// Block quantisation (ops/quant.h): byte-exact agreement with llama.cpp's reference quantisers, exact
// dequantisation of hand-built blocks, round-trip error bounds, quantised linear / embedding kernels against
// the reference, and quantised models against their f32 logits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/threadpool.h"
#include "models/config.h"
#include "models/model.h"
#include "models/quantize.h"
#include "ops/cpu/kernels.h"
#include "ops/grad.h"
#include "ops/ops.h"
#include "ops/quant.h"
#include "ops/quant_blocks.h"

using namespace baleine;

namespace {

const std::string kData = BALEINE_TEST_DATA;
constexpr DType kTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K};

std::string type_name(const testing::TestParamInfo<DType>& info) { return std::string(dtype_name(info.param)); }

std::vector<float> gaussian(size_t n, uint32_t seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::vector<uint8_t> quantize(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(dtype_nbytes(t, int64_t(x.size())));
  ops::quantize_row(t, x.data(), q.data(), int64_t(x.size()));
  return q;
}

std::vector<float> dequantize(DType t, const std::vector<uint8_t>& q, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  ops::dequantize_row(t, q.data(), y.data(), n);
  return y;
}

uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// ---------------------------------------------------------------------------------------------------------
// Agreement with llama.cpp (tests/data/quant/*.bin from tests/reference/make_quant_fixture.py).

class LlamaCppFixture : public testing::TestWithParam<DType> {};

TEST_P(LlamaCppFixture, SameBytesAndSameDequantisedFloats) {
  const DType t = GetParam();
  std::ifstream in(kData + "/quant/" + std::string(dtype_name(t)) + ".bin", std::ios::binary);
  ASSERT_TRUE(in.good());
  uint32_t rows = 0, cols = 0;
  in.read(reinterpret_cast<char*>(&rows), 4);
  in.read(reinterpret_cast<char*>(&cols), 4);
  const size_t row_bytes = dtype_nbytes(t, cols);
  std::vector<float> x(size_t(rows) * cols), y_ref(size_t(rows) * cols);
  std::vector<uint8_t> q_ref(rows * row_bytes);
  in.read(reinterpret_cast<char*>(x.data()), std::streamsize(x.size() * 4));
  in.read(reinterpret_cast<char*>(q_ref.data()), std::streamsize(q_ref.size()));
  in.read(reinterpret_cast<char*>(y_ref.data()), std::streamsize(y_ref.size() * 4));
  ASSERT_TRUE(in.good()) << "truncated fixture";
  std::vector<uint8_t> q(q_ref.size());
  ops::quantize_rows(t, x.data(), q.data(), rows, cols);
  std::vector<float> y(x.size());
  for (uint32_t r = 0; r < rows; ++r) {
    EXPECT_EQ(0, std::memcmp(q.data() + r * row_bytes, q_ref.data() + r * row_bytes, row_bytes))
        << dtype_name(t) << " row " << r << " differs from llama.cpp";
    ops::dequantize_row(t, q_ref.data() + r * row_bytes, y.data() + size_t(r) * cols, cols);
  }
  for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(bits(y[i]), bits(y_ref[i])) << dtype_name(t) << " value " << i;
}

INSTANTIATE_TEST_SUITE_P(Quant, LlamaCppFixture, testing::ValuesIn(kTypes), type_name);

// ---------------------------------------------------------------------------------------------------------
// Dequantisation of hand-built blocks: values computed here from the layout description in dtype.h.

TEST(Dequantize, Q8_0HandBuilt) {
  ops::BlockQ8_0 b;
  b.d = f32_to_f16(0.5f);
  for (int i = 0; i < 32; ++i) b.qs[i] = int8_t(i * 8 - 128);
  float y[32];
  ops::dequantize_row(DType::Q8_0, &b, y, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], 0.5f * float(i * 8 - 128));
}

TEST(Dequantize, Q4_0HandBuilt) {
  ops::BlockQ4_0 b;
  b.d = f32_to_f16(-0.25f);
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | (15 - j) << 4);
  float y[32];
  ops::dequantize_row(DType::Q4_0, &b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], -0.25f * float(j - 8));
    EXPECT_EQ(y[j + 16], -0.25f * float(7 - j));
  }
}

TEST(Dequantize, Q4_KHandBuilt) {
  ops::BlockQ4_K b;
  b.d = f32_to_f16(0.125f);
  b.dmin = f32_to_f16(0.0625f);
  const uint8_t sc[8] = {1, 7, 13, 63, 0, 33, 48, 17}, mn[8] = {0, 63, 5, 31, 62, 1, 16, 40};
  // Pack per dtype.h: j < 4 low 6 bits of bytes j (scale) / j+4 (min); j >= 4 nibbles in byte j+4, top bits
  // in bytes j-4 (scale) and j (min).
  std::memset(b.scales, 0, 12);
  for (int j = 0; j < 4; ++j) b.scales[j] = sc[j], b.scales[j + 4] = mn[j];
  for (int j = 4; j < 8; ++j) {
    b.scales[j + 4] = uint8_t((sc[j] & 15) | (mn[j] & 15) << 4);
    b.scales[j - 4] |= uint8_t((sc[j] >> 4) << 6);
    b.scales[j] |= uint8_t((mn[j] >> 4) << 6);
  }
  uint8_t code[256];
  for (int i = 0; i < 256; ++i) code[i] = uint8_t((i * 7 + 3) % 16);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) b.qs[32 * c + l] = uint8_t(code[64 * c + l] | code[64 * c + 32 + l] << 4);
  float y[256];
  ops::dequantize_row(DType::Q4_K, &b, y, 256);
  for (int i = 0; i < 256; ++i) {
    const int j = i / 32;
    const float expect = 0.125f * float(sc[j]) * float(code[i]) - 0.0625f * float(mn[j]);
    EXPECT_EQ(y[i], expect) << i;
  }
}

TEST(Dequantize, Q6_KHandBuilt) {
  ops::BlockQ6_K b;
  std::memset(&b, 0, sizeof b);
  b.d = f32_to_f16(0.03125f);
  for (int j = 0; j < 16; ++j) b.scales[j] = int8_t(j * 17 - 128);
  uint8_t code[256];  // 0..63
  for (int i = 0; i < 256; ++i) code[i] = uint8_t((i * 29 + 5) % 64);
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* c = code + 128 * h;
      b.ql[64 * h + l] = uint8_t((c[l] & 15) | (c[l + 64] & 15) << 4);
      b.ql[64 * h + 32 + l] = uint8_t((c[l + 32] & 15) | (c[l + 96] & 15) << 4);
      b.qh[32 * h + l] = uint8_t(c[l] >> 4 | (c[l + 32] >> 4) << 2 | (c[l + 64] >> 4) << 4 | (c[l + 96] >> 4) << 6);
    }
  float y[256];
  ops::dequantize_row(DType::Q6_K, &b, y, 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], 0.03125f * float(b.scales[i / 16]) * float(int(code[i]) - 32)) << i;
}

// ---------------------------------------------------------------------------------------------------------
// Round trips.

TEST(RoundTrip, Q8_0AndQ4_0WithinHalfAStep) {
  const auto x = gaussian(32 * 64, 1);
  for (DType t : {DType::Q8_0, DType::Q4_0}) {
    const auto q = quantize(t, x);
    const auto y = dequantize(t, q, int64_t(x.size()));
    for (size_t b = 0; b < x.size() / 32; ++b) {
      float amax = 0, max = 0;  // max: the value of largest magnitude, with its sign
      for (int i = 0; i < 32; ++i)
        if (std::fabs(x[b * 32 + i]) > amax) amax = std::fabs(x[b * 32 + i]), max = x[b * 32 + i];
      const float step = t == DType::Q8_0 ? amax / 127 : amax / 8;
      for (int i = 0; i < 32; ++i) {
        const float v = x[b * 32 + i], e = std::fabs(v - y[b * 32 + i]);
        // Half a step plus the f16 rounding of the scale (2^-11 relative, times up to 127 or 8 steps); Q4_0's
        // one clamped code (the value −max maps to +8, stored as 7) may be a whole step off.
        const float tol = step * (0.5f + (t == DType::Q8_0 ? 127.0f : 8.0f) / 2048.0f) * 1.0001f;
        const bool clamped = t == DType::Q4_0 && v * (-8.0f / max) > 7.5f;
        EXPECT_LE(e, clamped ? step * 1.01f : tol) << dtype_name(t) << " block " << b << " value " << i;
      }
    }
  }
}

// Relative RMS error over gaussian rows: what each format gives in practice (bounds a little above the
// measured values: Q8_0 0.0054, Q4_0 0.089, Q4_K 0.072, Q6_K 0.018).
TEST(RoundTrip, RelativeRmsErrorPerType) {
  const auto x = gaussian(256 * 64, 2);
  const std::pair<DType, double> bounds[] = {{DType::Q8_0, 0.0065}, {DType::Q4_0, 0.11}, {DType::Q4_K, 0.09}, {DType::Q6_K, 0.024}};
  for (auto [t, bound] : bounds) {
    const auto y = dequantize(t, quantize(t, x), int64_t(x.size()));
    double se = 0, sx = 0;
    for (size_t i = 0; i < x.size(); ++i) se += double(x[i] - y[i]) * double(x[i] - y[i]), sx += double(x[i]) * x[i];
    const double rel = std::sqrt(se / sx);
    EXPECT_LE(rel, bound) << dtype_name(t);
    EXPECT_GT(rel, bound / 10) << dtype_name(t) << ": suspiciously exact";
    std::printf("%s relative rms error %.4f\n", std::string(dtype_name(t)).c_str(), rel);
  }
}

TEST(RoundTrip, ZeroRowsStayZero) {
  const std::vector<float> x(512, 0.0f);
  for (DType t : kTypes) {
    const auto y = dequantize(t, quantize(t, x), 512);
    for (float v : y) EXPECT_EQ(v, 0.0f) << dtype_name(t);
  }
}

TEST(Quant, SizesAndBadInput) {
  EXPECT_TRUE(ops::is_quantizable(DType::Q8_0, 32));
  EXPECT_FALSE(ops::is_quantizable(DType::Q8_0, 48));
  EXPECT_TRUE(ops::is_quantizable(DType::Q4_K, 512));
  EXPECT_FALSE(ops::is_quantizable(DType::Q6_K, 128));
  EXPECT_FALSE(ops::is_quantizable(DType::F32, 32));
  float x[48] = {};
  uint8_t q[256];
  EXPECT_THROW(ops::quantize_row(DType::Q8_0, x, q, 48), Error);
  EXPECT_THROW(ops::quantize_row(DType::F32, x, q, 32), Error);
  EXPECT_THROW(ops::dequantize_row(DType::Q4_K, q, x, 32), Error);
  EXPECT_THROW(ops::quantize_rows(DType::Q4_0, x, q, 1, 48), Error);
}

TEST(Quant, TensorToF32Dequantises) {
  const auto x = gaussian(4 * 256, 3);
  for (DType t : kTypes) {
    Tensor q = Tensor::empty(t, {4, 256});
    ops::quantize_rows(t, x.data(), q.raw(), 4, 256);
    Tensor f = q.to_f32();
    ASSERT_EQ(f.shape(), (std::vector<int64_t>{4, 256}));
    const auto y = dequantize(t, std::vector<uint8_t>(q.data<uint8_t>(), q.data<uint8_t>() + q.nbytes()), 4 * 256);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(f.f32()[i], y[i]);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Quantised linear and embedding: every backend against the reference on awkward sizes.

std::vector<ops::Backend> fast_backends() {
  std::vector<ops::Backend> v;
  for (ops::Backend b : {ops::Backend::AVX2, ops::Backend::AVX512}) {
    try {
      ops::set_backend(b);
      v.push_back(b);
    } catch (const Error&) {
    }
  }
  ops::set_backend(ops::best_backend());
  return v;
}

struct QuantMatrix {
  std::vector<uint8_t> bytes;
  std::vector<float> deq;  // the exact values the weights stand for, [N, K]
  ops::WeightRef ref;
};

QuantMatrix make_matrix(DType t, int64_t N, int64_t K, uint32_t seed) {
  QuantMatrix m;
  const auto w = gaussian(size_t(N * K), seed, 0.05f);
  m.bytes.resize(dtype_nbytes(t, N * K));
  ops::quantize_rows(t, w.data(), m.bytes.data(), N, K);
  m.deq.resize(size_t(N * K));
  for (int64_t n = 0; n < N; ++n)
    ops::dequantize_row(t, m.bytes.data() + size_t(n) * dtype_nbytes(t, K), m.deq.data() + n * K, K);
  m.ref = ops::WeightRef{m.bytes.data(), t, N, K, 0};
  return m;
}

// The int8 activation blocks the fast path uses (32 values for Q8_0 / Q4_0, 256 for the K-quants).
int64_t act_block(DType t) { return dtype_block_elems(t); }

// Allowed |y_fast − y_ref| for output (m, n): the activation rounding, at most half a step (amax/254 of its
// block) per value, times |ŵ|, plus f32 summation error.
double allowed(DType t, const float* x, const float* w, int64_t K) {
  const int64_t blk = act_block(t), step = blk ? blk : K;  // blk 0: a path without activation rounding
  double bound = 0, mag = 0;
  for (int64_t b0 = 0; b0 < K; b0 += step) {
    const int64_t b1 = b0 + step;
    float amax = 0;
    for (int64_t k = b0; k < b1; ++k) amax = std::max(amax, std::fabs(x[k]));
    for (int64_t k = b0; k < b1; ++k) {
      if (blk) bound += double(std::fabs(w[k])) * amax / 254.0;
      mag += std::fabs(double(w[k]) * x[k]);
    }
  }
  return 1.01 * bound + 2e-6 * mag + 1e-7;
}

class QuantLinear : public testing::TestWithParam<DType> {};

TEST_P(QuantLinear, FastBackendsMatchReferenceOnAwkwardSizes) {
  const DType t = GetParam();
  const auto backends = fast_backends();
  if (backends.empty()) GTEST_SKIP() << "no SIMD backend on this CPU";
  std::vector<int64_t> Ks = {256, 512, 768};
  if (dtype_block_elems(t) == 32) Ks.insert(Ks.begin(), {32, 96});
  int checked = 0;
  for (int64_t K : Ks)
    for (int64_t N : {1, 31, 32, 33, 257}) {
      const QuantMatrix w = make_matrix(t, N, K, uint32_t(K * 1000 + N));
      for (int64_t M : {1, 2, 3, 7, 33}) {
        if (N == 257 && K > 256 && M > 3) continue;  // keeps the double-precision reference fast
        auto x = gaussian(size_t(M * K), uint32_t(M + 7 * N));
        x[0] = 4.0f;  // an outlier sets one block's step
        const auto bias = gaussian(size_t(N), 99);
        std::vector<float> ref(size_t(M * N)), got(size_t(M * N));
        ops::set_backend(ops::Backend::Reference);
        ops::linear(ref.data(), x.data(), w.ref, bias.data(), M);
        for (ops::Backend b : backends) {
          ops::set_backend(b);
          {  // the f32 fallback path: exact activations, so only summation order differs from the reference
            ops::cpu::LinearTuning& tune = ops::cpu::linear_tuning(b);
            tune.quant_via_f32 = true;
            std::vector<float> out(size_t(M * N));
            ops::linear(out.data(), x.data(), w.ref, bias.data(), M);
            tune.quant_via_f32 = false;
            for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-5 * (1 + std::fabs(ref[i]))) << i;
          }
          for (int threads : {1, 2}) {
            ThreadPool::set_global_threads(threads);
            std::vector<float> out(size_t(M * N), -1.0f);
            ops::linear(out.data(), x.data(), w.ref, bias.data(), M);
            if (threads == 1) got = out;
            else ASSERT_EQ(0, std::memcmp(out.data(), got.data(), out.size() * 4)) << "thread split changed results";
          }
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) {
              const double tol = allowed(t, x.data() + m * K, w.deq.data() + n * K, K);
              ASSERT_NEAR(got[size_t(m * N + n)], ref[size_t(m * N + n)], tol)
                  << dtype_name(t) << " " << ops::backend_name(b) << " M=" << M << " N=" << N << " K=" << K << " m=" << m
                  << " n=" << n;
            }
          ++checked;
        }
      }
    }
  ThreadPool::set_global_threads(0);
  ops::set_backend(ops::best_backend());
  EXPECT_GT(checked, 50);
}

// The error bound above is not vacuous: the fast path's deviation is a sizable part of it (the activation
// rounding is real), and a wrong scale would be far outside it.
TEST_P(QuantLinear, ErrorBoundIsTight) {
  const DType t = GetParam();
  if (act_block(t) == 0 || fast_backends().empty()) GTEST_SKIP();
  const int64_t M = 4, N = 64, K = 512;
  const QuantMatrix w = make_matrix(t, N, K, 5);
  const auto x = gaussian(size_t(M * K), 6);
  std::vector<float> ref(size_t(M * N)), got(size_t(M * N));
  ops::set_backend(ops::Backend::Reference);
  ops::linear(ref.data(), x.data(), w.ref, nullptr, M);
  ops::set_backend(ops::best_backend());
  ops::linear(got.data(), x.data(), w.ref, nullptr, M);
  double worst = 0, sum_ratio = 0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      const double r = std::fabs(got[size_t(m * N + n)] - ref[size_t(m * N + n)]) /
                       allowed(t, x.data() + m * K, w.deq.data() + n * K, K);
      worst = std::max(worst, r);
      sum_ratio += r;
    }
  EXPECT_LE(worst, 1.0);
  EXPECT_GT(sum_ratio / double(M * N), 0.001) << "the fast path shows no activation rounding at all";
}

TEST_P(QuantLinear, EmbeddingGatherDequantisesRows) {
  const DType t = GetParam();
  const QuantMatrix table = make_matrix(t, 40, 512, 11);
  const std::vector<int32_t> ids = {0, 39, 7, 7, 21};
  std::vector<float> backends_out;
  std::vector<ops::Backend> all = fast_backends();
  all.push_back(ops::Backend::Reference);
  for (ops::Backend b : all) {
    ops::set_backend(b);
    std::vector<float> y(ids.size() * 512);
    ops::embedding_gather(y.data(), table.ref, ids.data(), int64_t(ids.size()));
    for (size_t i = 0; i < ids.size(); ++i)
      for (int64_t c = 0; c < 512; ++c) ASSERT_EQ(y[i * 512 + size_t(c)], table.deq[size_t(ids[i]) * 512 + size_t(c)]);
    const int32_t bad = 40;
    EXPECT_THROW(ops::embedding_gather(y.data(), table.ref, &bad, 1), Error);
  }
  ops::set_backend(ops::best_backend());
}

// The chunked loss (evaluation on a quantised model) slices the head by rows: block types must slice by bytes.
TEST(QuantLinear, CrossEntropyOverChunksOfAQuantisedHead) {
  const int64_t V = 50, d = 64, T = 3;
  const QuantMatrix head = make_matrix(DType::Q8_0, V, d, 21);
  const auto h = gaussian(size_t(T * d), 22);
  const std::vector<int32_t> targets = {3, 49, 17};
  const ops::WeightRef f32{head.deq.data(), DType::F32, V, d, 0};
  ops::set_backend(ops::Backend::Reference);  // exact activations: the two heads give the same logits
  const double want = ops::cross_entropy_loss(h.data(), f32, targets.data(), T, nullptr, nullptr, 1.0f, nullptr, 7);
  const double got = ops::cross_entropy_loss(h.data(), head.ref, targets.data(), T, nullptr, nullptr, 1.0f, nullptr, 7);
  ops::set_backend(ops::best_backend());
  EXPECT_NEAR(got, want, 1e-5);
}

// A NaN or infinite activation must not be rounded into some finite int8 code: the outputs become NaN.
TEST_P(QuantLinear, NonFiniteActivationsGiveNaN) {
  const DType t = GetParam();
  const int64_t N = 5, K = 512;
  const QuantMatrix w = make_matrix(t, N, K, 31);
  std::vector<ops::Backend> all = fast_backends();
  all.push_back(ops::Backend::Reference);
  for (float bad : {std::nanf(""), INFINITY}) {
    auto x = gaussian(size_t(2 * K), 32);
    x[size_t(K + 300)] = bad;  // row 1 only
    for (ops::Backend b : all) {
      ops::set_backend(b);
      std::vector<float> y(size_t(2 * N));
      ops::linear(y.data(), x.data(), w.ref, nullptr, 2);
      for (int64_t n = 0; n < N; ++n) {
        EXPECT_TRUE(std::isfinite(y[size_t(n)])) << ops::backend_name(b);
        EXPECT_FALSE(std::isfinite(y[size_t(N + n)])) << dtype_name(t) << " " << ops::backend_name(b) << " " << bad;
      }
    }
  }
  ops::set_backend(ops::best_backend());
}

INSTANTIATE_TEST_SUITE_P(Quant, QuantLinear, testing::ValuesIn(kTypes), type_name);

TEST(QuantLinear, RejectsRowsThatAreNotWholeBlocks) {
  std::vector<uint8_t> w(4096);
  std::vector<float> x(64), y(4);
  for (ops::Backend b : {ops::Backend::Reference, ops::best_backend()}) {
    ops::set_backend(b);
    EXPECT_THROW(ops::linear(y.data(), x.data(), ops::WeightRef{w.data(), DType::Q8_0, 2, 48, 0}, nullptr, 1), Error);
    EXPECT_THROW(ops::linear(y.data(), x.data(), ops::WeightRef{w.data(), DType::Q4_K, 2, 64, 0}, nullptr, 1), Error);
  }
  ops::set_backend(ops::best_backend());
}

// ---------------------------------------------------------------------------------------------------------
// Quantised models: logits close to the f32 model's.

// ‖a − b‖ / ‖b‖ over all logits. The max-entry difference is not used: a top-k routing choice that flips
// under rounding moves single logits a lot, which says nothing about the kernels.
double rel_rms(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double e = double(a.f32()[i]) - double(b.f32()[i]);
    num += e * e;
    den += double(b.f32()[i]) * double(b.f32()[i]);
  }
  return std::sqrt(num / den);
}

const std::vector<int32_t> kTokens = {3, 17, 99, 5, 64, 1, 127, 42, 8, 77, 21, 60};

// The model with every parameter widened back to f32 (the dequantised weights, run by the f32 kernels).
void dequantize_model(CausalLM& m) {
  m.for_each_param([](nn::Param& p) {
    if (p.tensor->defined()) *p.tensor = p.tensor->to_f32();
  });
  m.prepare();
}

// The parity fixtures (hidden 32: Q8_0 and Q4_0 blocks fit the 32- and 64-wide rows; DeepSeek's 16-wide
// kv_b_proj rows stay f32; the router stays f32). The quantised model must compute what its dequantised
// weights give in f32 (kernel tolerance), and stay near the f32 logits. These tiny random models amplify
// weight noise (bf16 alone moves the llama fixture's logits by 0.8% rms), so the f32 bounds are loose;
// QuantizedWideModel has the tight ones.
TEST(QuantizedModel, ParityFixturesQ8_0AndQ4_0) {
  for (const char* name : {"v3", "llama", "qwen2"})
    for (auto [t, tol] : {std::pair{DType::Q8_0, 0.12}, std::pair{DType::Q4_0, 0.9}}) {
      auto model = load_model(kData + "/parity/" + name);
      const Tensor ref = model->logits(kTokens);
      const QuantizeReport r = quantize_model(*model, t);
      EXPECT_GT(r.converted, 10);
      EXPECT_LT(r.bytes_after, r.bytes_before / 2);
      model->for_each_param([&](nn::Param& p) {
        if (p.name.ends_with("mlp.gate.weight")) { EXPECT_EQ(p.tensor->dtype(), DType::F32) << p.name; }
        if (p.name.ends_with("kv_b_proj.weight")) { EXPECT_EQ(p.tensor->dtype(), DType::F32) << p.name; }
        if (p.name.ends_with("q_a_proj.weight") || p.name.ends_with("up_proj.weight")) {
          EXPECT_EQ(p.tensor->dtype(), t) << p.name;
        }
      });
      const Tensor fast = model->logits(kTokens);
      ops::set_backend(ops::Backend::Reference);
      const Tensor q = model->logits(kTokens);
      ops::set_backend(ops::best_backend());
      const double d = rel_rms(q, ref), df = rel_rms(fast, q);
      EXPECT_LE(d, tol) << name << " " << dtype_name(t);
      EXPECT_GT(d, 0.0) << dtype_name(t) << ": nothing was quantised";
      EXPECT_LE(df, 0.3) << name << " " << dtype_name(t) << " fast (int8 activations) vs reference kernels";
      std::printf("%s fixture %s: relative rms logit difference to f32 %.4f, fast vs reference kernels %.4f\n", name,
                  std::string(dtype_name(t)).c_str(), d, df);
      dequantize_model(*model);
      ops::set_backend(ops::Backend::Reference);
      EXPECT_LE(rel_rms(q, model->logits(kTokens)), 1e-5) << name << " " << dtype_name(t) << " vs its dequantised weights";
      ops::set_backend(ops::best_backend());
    }
}

// A wider random DeepSeek-V3-shaped model (hidden, q/kv ranks and FFN widths multiples of 256) so every type,
// including the K-quants and a quantised kv_b_proj feeding the absorbed-MLA derivation, is exercised;
// weights N(0, 1/fan_in) so activations keep their scale through the layers.
std::unique_ptr<CausalLM> wide_model(uint32_t seed) {
  std::ifstream in(kData + "/parity/v3/config.json");
  auto j = nlohmann::json::parse(in);
  j["hidden_size"] = 256;
  j["intermediate_size"] = 512;
  j["moe_intermediate_size"] = 256;
  j["kv_lora_rank"] = 256;
  j["q_lora_rank"] = 256;
  j["n_routed_experts"] = 8;
  j["num_experts_per_tok"] = 2;
  j["n_group"] = 2;
  j["topk_group"] = 1;
  j["num_hidden_layers"] = 2;
  j["num_nextn_predict_layers"] = 0;
  auto model = create_model(parse_model_config(j, "wide test config"));
  std::mt19937 rng(seed);
  model->for_each_param([&](nn::Param& p) {
    *p.tensor = Tensor::empty(DType::F32, p.shape);
    float* d = p.tensor->f32();
    const int64_t fan_in = p.shape.back();
    std::normal_distribution<float> dist(0.0f, p.kind == nn::ParamKind::Matrix ? 1.0f / std::sqrt(float(fan_in)) : 0.1f);
    for (int64_t i = 0; i < p.tensor->numel(); ++i)
      d[i] = p.kind == nn::ParamKind::Matrix ? dist(rng) : (p.name.ends_with("norm.weight") ? 1.0f : 0.0f) + dist(rng);
    // Routing pinned: correction biases far apart (sigmoid scores lie in (0, 1)) choose the same experts for
    // every token, so rounding cannot flip a top-k choice and the logits depend smoothly on the weights.
    if (p.name.ends_with("e_score_correction_bias"))
      for (int64_t e = 0; e < p.tensor->numel(); ++e) d[e] = 2.0f * float(e);
  });
  model->prepare();
  return model;
}

class QuantizedWideModel : public testing::TestWithParam<DType> {};

TEST_P(QuantizedWideModel, LogitsCloseToF32) {
  const DType t = GetParam();
  // Relative rms logit difference to f32 measured (reference kernels, so weight rounding only): Q8_0 0.034,
  // Q4_0 0.55, Q4_K 0.42, Q6_K 0.12 — about 6.5x each type's per-weight rms error
  // (RoundTrip.RelativeRmsErrorPerType), the gain of this random 2-layer model (~12 quantised matrices in
  // series per path). Bounds about 1.4x the measured values.
  const double tol = t == DType::Q8_0 ? 0.05 : t == DType::Q4_0 ? 0.75 : t == DType::Q4_K ? 0.6 : 0.17;
  auto model = wide_model(7);
  const Tensor ref = model->logits(kTokens);
  quantize_model(*model, t);
  bool kvb = false;
  model->for_each_param([&](nn::Param& p) {
    if (p.name.ends_with("kv_b_proj.weight")) kvb = p.tensor->dtype() == t;
  });
  EXPECT_TRUE(kvb) << "kv_b_proj should be quantised";
  const Tensor fast = model->logits(kTokens, MlaMode::Absorbed);
  ops::set_backend(ops::Backend::Reference);
  const Tensor naive = model->logits(kTokens, MlaMode::Naive), absorbed = model->logits(kTokens, MlaMode::Absorbed);
  ops::set_backend(ops::best_backend());
  const double d = rel_rms(absorbed, ref);
  EXPECT_LE(d, tol) << dtype_name(t);
  EXPECT_GT(d, 0.0);
  EXPECT_LE(rel_rms(naive, absorbed), 1e-4) << "the MLA forms disagree on quantised weights";
  // The fast kernels also round the activations to int8 blocks: measured 0.028 (Q8_0), 0.037 (Q4_0), 0.038
  // (Q4_K), Q6_K below, relative rms through the whole model.
  const double df = rel_rms(fast, absorbed);
  EXPECT_LE(df, 0.06) << dtype_name(t) << " fast kernels vs reference";
  std::printf("wide model %s: relative rms logit difference to f32 %.4f; fast vs reference kernels %.4f\n",
              std::string(dtype_name(t)).c_str(), d, df);
  dequantize_model(*model);
  ops::set_backend(ops::Backend::Reference);
  EXPECT_LE(rel_rms(absorbed, model->logits(kTokens)), 1e-5) << dtype_name(t) << " vs its dequantised weights";
  ops::set_backend(ops::best_backend());
}

INSTANTIATE_TEST_SUITE_P(Quant, QuantizedWideModel, testing::ValuesIn(kTypes), type_name);

TEST(QuantizedModel, HalfTypesAndUnfitTypesAreHandled) {
  auto model = load_model(kData + "/parity/v3");
  const Tensor ref = model->logits(kTokens);
  const QuantizeReport r = quantize_model(*model, DType::Q4_K);  // no 256-wide rows: nothing changes
  EXPECT_EQ(r.converted, 0);
  EXPECT_EQ(rel_rms(model->logits(kTokens), ref), 0.0);
  quantize_model(*model, DType::BF16);
  model->for_each_param([&](nn::Param& p) {
    if (p.name.ends_with("o_proj.weight")) { EXPECT_EQ(p.tensor->dtype(), DType::BF16) << p.name; }
  });
  EXPECT_LE(rel_rms(model->logits(kTokens), ref), 0.15);
  EXPECT_THROW(quantize_model(*model, DType::I32), Error);
}

}  // namespace
