#include "models/default_model.h"

#include <cstdlib>
#include <filesystem>

#include "core/check.h"

#ifndef BALEINE_DEFAULT_MODEL_DIR
#error "BALEINE_DEFAULT_MODEL_DIR must be defined by the build (src/models/CMakeLists.txt)"
#endif

namespace baleine {

std::string default_model_path() {
  namespace fs = std::filesystem;
  const char* env = std::getenv(kDefaultModelEnv);
  const bool from_env = env != nullptr && *env != '\0';
  const std::string dir = from_env ? std::string(env) : std::string(BALEINE_DEFAULT_MODEL_DIR);
  const std::string origin = from_env ? fmt::format("${}", kDefaultModelEnv) : "the embedded default model";
  for (const char* f : {"config.json", "tokenizer.json"})
    BALEINE_CHECK(fs::is_regular_file(fs::path(dir) / f),
                  "{} ({}) has no {}; pass --model DIR or set {} to a model directory", origin, dir, f, kDefaultModelEnv);
  return dir;
}

}  // namespace baleine
