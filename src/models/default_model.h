// models/default_model.h — where the model embedded in this source tree (models/default) lives, for commands
// that run without --model (`baleine generate`, `baleine serve`).
// defines: default_model_path, kDefaultModelEnv
#pragma once
#include <string>

namespace baleine {

// Environment variable that overrides the embedded model's directory.
inline constexpr const char* kDefaultModelEnv = "BALEINE_DEFAULT_MODEL";

// The default model directory: $BALEINE_DEFAULT_MODEL when set and non-empty, else the source tree's
// models/default (a path fixed at compile time). Throws baleine::Error, naming the path and how to fix it,
// when that directory has no config.json or tokenizer.json.
std::string default_model_path();

}  // namespace baleine
