// tests/unit/ops_test_util.h — what the op tests share: random vectors, the backends this CPU runs (each test is
// instantiated once per backend), and a fixture that switches to the backend under test.
#pragma once
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/check.h"
#include "ops/ops.h"

namespace baleine::test {

inline std::vector<float> randv(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Reference first, then every SIMD backend this CPU can run.
inline std::vector<ops::Backend> backends() {
  std::vector<ops::Backend> out{ops::Backend::Reference};
  for (ops::Backend b : {ops::Backend::AVX2, ops::Backend::AVX512}) {
    try {
      ops::set_backend(b);
      out.push_back(b);
    } catch (const Error&) {
    }
  }
  ops::set_backend(ops::best_backend());
  return out;
}

class BackendTest : public ::testing::TestWithParam<ops::Backend> {
 protected:
  void SetUp() override { ops::set_backend(GetParam()); }
  void TearDown() override { ops::set_backend(ops::best_backend()); }
};

inline std::string backend_param_name(const ::testing::TestParamInfo<ops::Backend>& i) {
  return ops::backend_name(i.param);
}

}  // namespace baleine::test
