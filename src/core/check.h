// core/check.h — errors and invariants.
// defines: baleine::Error, baleine::fail, BALEINE_CHECK, BALEINE_ASSERT
//
// Policy: library boundaries throw baleine::Error with "[function] message"; apps catch at main and
// print it on one line. BALEINE_ASSERT guards internal invariants (always on, it is cheap).
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace baleine {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const char* function, const std::string& message);

}  // namespace baleine

// BALEINE_CHECK(cond, "format {}", args...) throws baleine::Error("[function] format ...").
#define BALEINE_CHECK(cond, ...)                                   \
  do {                                                             \
    if (!(cond)) ::baleine::fail(__func__, fmt::format(__VA_ARGS__)); \
  } while (0)

#define BALEINE_FAIL(...) ::baleine::fail(__func__, fmt::format(__VA_ARGS__))

#define BALEINE_ASSERT(cond)                                                                      \
  do {                                                                                            \
    if (!(cond)) ::baleine::fail(__func__, fmt::format("internal error: {} ({}:{})", #cond, __FILE__, __LINE__)); \
  } while (0)
