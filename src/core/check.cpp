#include "core/check.h"

namespace baleine {

void fail(const char* function, const std::string& message) {
  throw Error(fmt::format("[{}] {}", function, message));
}

}  // namespace baleine
