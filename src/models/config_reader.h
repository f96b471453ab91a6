// models/config_reader.h — typed readers over a config.json object whose errors name the file and the key
// (shared by the language-model config and the multimodal configs that wrap one).
// defines: detail::Reader
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/check.h"

namespace baleine::detail {

using nlohmann::json;

// Small typed readers: every error names the file and the key.
struct Reader {
  const json& j;
  const std::string& source;

  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }

  int64_t integer(const char* key, int64_t fallback, bool required, int64_t min_value = 0) const {
    if (!has(key)) {
      BALEINE_CHECK(!required, "{}: missing required key '{}'", source, key);
      return fallback;
    }
    const json& v = j[key];
    BALEINE_CHECK(v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()),
                  "{}: key '{}' must be an integer, got {}", source, key, v.dump());
    int64_t x = v.is_number_integer() ? v.get<int64_t>() : int64_t(v.get<double>());
    BALEINE_CHECK(x >= min_value, "{}: key '{}' must be >= {}, got {}", source, key, min_value, x);
    BALEINE_CHECK(x <= (int64_t(1) << 40), "{}: key '{}' is implausibly large: {}", source, key, x);
    return x;
  }
  double number(const char* key, double fallback, bool required = false) const {
    if (!has(key)) {
      BALEINE_CHECK(!required, "{}: missing required key '{}'", source, key);
      return fallback;
    }
    BALEINE_CHECK(j[key].is_number(), "{}: key '{}' must be a number, got {}", source, key, j[key].dump());
    double x = j[key].get<double>();
    BALEINE_CHECK(std::isfinite(x), "{}: key '{}' must be finite", source, key);
    return x;
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    BALEINE_CHECK(j[key].is_boolean(), "{}: key '{}' must be true or false, got {}", source, key, j[key].dump());
    return j[key].get<bool>();
  }
  std::string string(const char* key, const std::string& fallback, bool required = false) const {
    if (!has(key)) {
      BALEINE_CHECK(!required, "{}: missing required key '{}'", source, key);
      return fallback;
    }
    BALEINE_CHECK(j[key].is_string(), "{}: key '{}' must be a string, got {}", source, key, j[key].dump());
    return j[key].get<std::string>();
  }
};

// Reads `path` (a config.json or a directory holding one) as a JSON object; returns it with the file's path.
std::pair<json, std::string> read_config_json(const std::string& path);

}  // namespace baleine::detail
