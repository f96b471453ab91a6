// tests/parity/janus_test_util.h — what the Janus parity tests share: the fixture directory and JSON, and the
// scale-relative comparison.
#pragma once
#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace janus_test {

inline const std::string kDir = std::string(BALEINE_TEST_DATA) + "/parity/janus";

inline nlohmann::json fixture() {
  std::ifstream in(kDir + "/fixture.json");
  return nlohmann::json::parse(in);
}

// max |a − b| / max(1, max |b|): errors relative to the output's scale.
inline double max_scaled_diff(const float* a, const std::vector<float>& b) {
  double num = 0, den = 1;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / den;
}

}  // namespace janus_test
