#include "models/model.h"

#include <filesystem>

#include "models/deepseek.h"
#include "models/dense.h"
#include "models/gguf_model.h"
#include "models/weights.h"

namespace baleine {

void check_forward_input(const ModelConfig& config, const Sequence& seq, std::span<const int32_t> tokens) {
  const int64_t T = int64_t(tokens.size()), p0 = seq.length();
  BALEINE_CHECK(T > 0, "no tokens to process");
  BALEINE_CHECK(p0 + T <= seq.capacity(), "{} tokens at position {} exceed the sequence capacity of {} (the context)", T,
                p0, seq.capacity());
  for (int32_t t : tokens)
    BALEINE_CHECK(t >= 0 && t < config.vocab_size, "token id {} is outside the vocabulary [0, {})", t, config.vocab_size);
}

Tensor CausalLM::logits(std::span<const int32_t> tokens, MlaMode mode) {
  auto seq = new_sequence(int64_t(tokens.size()));
  return forward(*seq, tokens, mode);
}

std::unique_ptr<CausalLM> create_model(const ModelConfig& config) {
  if (config.is_deepseek()) return std::make_unique<DeepSeekModel>(config);
  return std::make_unique<DenseModel>(config);
}

std::unique_ptr<CausalLM> load_model(const std::string& path) {
  namespace fs = std::filesystem;
  BALEINE_CHECK(fs::exists(path), "{}: no such file or directory", path);
  if (fs::is_regular_file(path) && is_gguf_path(path)) return load_gguf_model(path);
  fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
  ModelConfig config = load_model_config(dir.string());
  std::unique_ptr<CausalLM> model = create_model(config);
  load_params(*model, dir.string());
  model->prepare();
  return model;
}

}  // namespace baleine
