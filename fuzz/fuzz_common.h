// fuzz/fuzz_common.h — shared by the libFuzzer targets: a per-process scratch file for readers that take a path,
// and the repository path for fixtures (BALEINE_SOURCE_DIR, set by CMake).
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace baleine::fuzz {

// Writes the input to one scratch file per process and returns its path (readers map files, not memory).
inline std::string scratch_file(const uint8_t* data, size_t size, const char* suffix) {
  static const std::string path = "/tmp/baleine-fuzz-" + std::to_string(::getpid()) + suffix;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits an input into pieces at a separator byte (fields of a structured input).
inline std::string_view next_piece(std::string_view& rest, char sep = '\0') {
  const size_t i = rest.find(sep);
  std::string_view piece = rest.substr(0, i);
  rest = i == std::string_view::npos ? std::string_view() : rest.substr(i + 1);
  return piece;
}

}  // namespace baleine::fuzz
