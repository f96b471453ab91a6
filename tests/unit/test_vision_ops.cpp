// The image ops (ops/vision.h) — conv2d, group_norm, upsample_nearest2x, gelu, attention_full — on every backend
// against their scalar references, on awkward sizes (odd widths, channel counts around SIMD widths, a band split
// of the im2col convolution), and 1 vs 2 threads bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/check.h"
#include "core/threadpool.h"
#include "ops/vision.h"
#include "ops_test_util.h"

using namespace baleine;
using namespace baleine::ops;
using test::randv;

namespace {

class Vision : public test::BackendTest {};
INSTANTIATE_TEST_SUITE_P(Backends, Vision, ::testing::ValuesIn(test::backends()), test::backend_param_name);

void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1.0 + std::abs(want[i]))) << what << " at " << i;
}

// The direct definition, independent of both implementations (PyTorch's [Cout, Cin, K, K] weight, NCHW indexing
// written out), to pin the layout conventions themselves.
float conv_direct(const std::vector<float>& x_nhwc, const std::vector<float>& w_oikk, const Conv2dShape& s, int64_t n,
                  int64_t oy, int64_t ox, int64_t co) {
  double acc = 0;
  for (int64_t ci = 0; ci < s.Cin; ++ci)
    for (int64_t ky = 0; ky < s.K; ++ky)
      for (int64_t kx = 0; kx < s.K; ++kx) {
        const int64_t iy = oy + ky - s.pad, ix = ox + kx - s.pad;
        if (iy < 0 || ix < 0 || iy >= s.H || ix >= s.W) continue;
        acc += double(x_nhwc[size_t(((n * s.H + iy) * s.W + ix) * s.Cin + ci)]) *
               double(w_oikk[size_t(((co * s.Cin + ci) * s.K + ky) * s.K + kx)]);
      }
  return float(acc);
}

TEST(VisionLayout, ConvMatchesThePyTorchDefinition) {
  Conv2dShape s{2, 5, 7, 3, 4, 3, 1};
  auto x = randv(size_t(s.N * s.H * s.W * s.Cin), 1);
  auto w = randv(size_t(s.Cout * s.Cin * 9), 2);
  std::vector<float> packed(w.size());  // [Cout, K, K, Cin]
  for (int64_t o = 0; o < s.Cout; ++o)
    for (int64_t c = 0; c < s.Cin; ++c)
      for (int64_t k = 0; k < 9; ++k) packed[size_t((o * 9 + k) * s.Cin + c)] = w[size_t((o * s.Cin + c) * 9 + k)];
  std::vector<float> out(size_t(s.N * s.H * s.W * s.Cout));
  reference::conv2d(out.data(), x.data(), packed.data(), nullptr, s);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t y = 0; y < s.H; ++y)
      for (int64_t xx = 0; xx < s.W; ++xx)
        for (int64_t co = 0; co < s.Cout; ++co)
          ASSERT_NEAR(out[size_t(((n * s.H + y) * s.W + xx) * s.Cout + co)], conv_direct(x, w, s, n, y, xx, co), 1e-5);
}

TEST_P(Vision, Conv2dMatchesReference) {
  struct Case { int64_t N, H, W, Cin, Cout, K, pad; };
  for (Case c : {Case{1, 1, 1, 1, 1, 1, 0}, Case{2, 5, 7, 3, 4, 3, 1}, Case{1, 9, 31, 33, 17, 3, 1},
                 Case{1, 6, 6, 32, 32, 1, 0}, Case{3, 4, 3, 15, 31, 3, 0}, Case{1, 33, 5, 8, 3, 3, 1},
                 Case{1, 40, 64, 96, 8, 3, 1}}) {  // the last: 40·64·864·4 B > 8 MiB, so several im2col bands
    Conv2dShape s{c.N, c.H, c.W, c.Cin, c.Cout, c.K, c.pad};
    auto x = randv(size_t(s.N * s.H * s.W * s.Cin), 3);
    auto w = randv(size_t(s.Cout * s.K * s.K * s.Cin), 4, -0.3f, 0.3f);
    auto b = randv(size_t(s.Cout), 5);
    const size_t n_out = size_t(s.N * s.out_h() * s.out_w() * s.Cout);
    std::vector<float> fast(n_out), ref(n_out);
    conv2d(fast.data(), x.data(), w.data(), b.data(), s);
    reference::conv2d(ref.data(), x.data(), w.data(), b.data(), s);
    expect_close(fast, ref, 2e-5, "conv2d " + std::to_string(c.H) + "x" + std::to_string(c.W));
  }
}

TEST_P(Vision, GroupNormMatchesReference) {
  struct Case { int64_t N, HW, C, G; };
  for (Case c : {Case{1, 1, 1, 1}, Case{2, 31, 32, 8}, Case{1, 33, 96, 32}, Case{3, 17, 12, 3}, Case{1, 1024, 64, 32}}) {
    auto x = randv(size_t(c.N * c.HW * c.C), 6, -2.0f, 5.0f);  // a large mean: the two-pass variance matters
    auto g = randv(size_t(c.C), 7), b = randv(size_t(c.C), 8);
    std::vector<float> fast(x.size()), ref(x.size());
    group_norm(fast.data(), x.data(), c.N, c.HW, c.C, c.G, g.data(), b.data(), 1e-6f);
    reference::group_norm(ref.data(), x.data(), c.N, c.HW, c.C, c.G, g.data(), b.data(), 1e-6f);
    expect_close(fast, ref, 1e-5, "group_norm");
    std::vector<float> inplace = x;  // in place gives the same
    group_norm(inplace.data(), inplace.data(), c.N, c.HW, c.C, c.G, g.data(), b.data(), 1e-6f);
    ASSERT_EQ(inplace, fast);
  }
}

TEST(VisionLayout, GroupNormStatistics) {
  // One group of the whole image: output has mean 0 and variance 1 (up to eps).
  auto x = randv(5 * 7 * 6, 9, 3.0f, 4.0f);
  std::vector<float> y(x.size());
  reference::group_norm(y.data(), x.data(), 1, 35, 6, 2, nullptr, nullptr, 0.0f);
  for (int g = 0; g < 2; ++g) {
    double m = 0, v = 0;
    for (int p = 0; p < 35; ++p)
      for (int c = 0; c < 3; ++c) m += y[size_t(p * 6 + g * 3 + c)];
    m /= 105;
    for (int p = 0; p < 35; ++p)
      for (int c = 0; c < 3; ++c) v += (y[size_t(p * 6 + g * 3 + c)] - m) * (y[size_t(p * 6 + g * 3 + c)] - m);
    EXPECT_NEAR(m, 0.0, 1e-6);
    EXPECT_NEAR(v / 105, 1.0, 1e-5);
  }
}

TEST_P(Vision, UpsampleGeluAttention) {
  const int64_t N = 2, H = 3, W = 5, C = 7;
  auto x = randv(size_t(N * H * W * C), 10);
  std::vector<float> up(size_t(N * 4 * H * W * C)), ref(up.size());
  upsample_nearest2x(up.data(), x.data(), N, H, W, C);
  reference::upsample_nearest2x(ref.data(), x.data(), N, H, W, C);
  ASSERT_EQ(up, ref);
  EXPECT_EQ(up[size_t(((1 * 6 + 5) * 10 + 9) * C + 6)], x[size_t(((1 * 3 + 2) * 5 + 4) * C + 6)]);

  auto g = randv(1001, 11, -6.0f, 6.0f);
  std::vector<float> gf(g.size()), gr(g.size());
  gelu(gf.data(), g.data(), int64_t(g.size()));
  reference::gelu(gr.data(), g.data(), int64_t(g.size()));
  expect_close(gf, gr, 1e-6, "gelu");
  EXPECT_NEAR(gr[0], 0.5 * g[0] * (1 + std::erf(g[0] / std::sqrt(2.0))), 1e-6);

  for (int64_t n : {1, 31, 33, 100}) {
    const int64_t dk = 17, dv = 9, ld = 20;
    auto q = randv(size_t(n * ld), 12), k = randv(size_t(n * ld), 13), v = randv(size_t(n * ld), 14);
    std::vector<float> of(size_t(n * dv)), orf(size_t(n * dv));
    attention_full(of.data(), q.data(), k.data(), v.data(), n, dk, dv, 0.4f, ld, ld, ld, dv);
    reference::attention_full(orf.data(), q.data(), k.data(), v.data(), n, dk, dv, 0.4f, ld, ld, ld, dv);
    expect_close(of, orf, 2e-5, "attention_full n=" + std::to_string(n));
  }
}

TEST_P(Vision, ThreadCountDoesNotChangeBits) {
  Conv2dShape s{1, 19, 23, 40, 24, 3, 1};
  auto x = randv(size_t(s.N * s.H * s.W * s.Cin), 15);
  auto w = randv(size_t(s.Cout * 9 * s.Cin), 16);
  std::vector<float> a(size_t(s.H * s.W * s.Cout)), b(a.size()), ga(x.size()), gb(x.size());
  ThreadPool::set_global_threads(1);
  conv2d(a.data(), x.data(), w.data(), nullptr, s);
  group_norm(ga.data(), x.data(), 1, s.H * s.W, s.Cin, 8, nullptr, nullptr, 1e-6f);
  ThreadPool::set_global_threads(2);
  conv2d(b.data(), x.data(), w.data(), nullptr, s);
  group_norm(gb.data(), x.data(), 1, s.H * s.W, s.Cin, 8, nullptr, nullptr, 1e-6f);
  ThreadPool::set_global_threads(0);
  EXPECT_EQ(a, b);
  EXPECT_EQ(ga, gb);
}

TEST(VisionErrors, BadShapesThrow) {
  std::vector<float> buf(64);
  Conv2dShape s{1, 2, 2, 1, 1, 5, 1};  // kernel larger than the padded image
  EXPECT_THROW(conv2d(buf.data(), buf.data() + 32, buf.data(), nullptr, s), Error);
  Conv2dShape alias{1, 2, 2, 1, 1, 1, 0};
  EXPECT_THROW(conv2d(buf.data(), buf.data(), buf.data(), nullptr, alias), Error);
  EXPECT_THROW(group_norm(buf.data(), buf.data(), 1, 4, 6, 4, nullptr, nullptr, 1e-6f), Error);  // 6 % 4 != 0
}

}  // namespace
