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

std::unique_ptr<Sequence> CausalLM::new_sequence(std::shared_ptr<KvPool> pool, int64_t max_tokens) const {
  BALEINE_CHECK(max_tokens > 0, "sequence capacity must be positive, got {}", max_tokens);
  BALEINE_CHECK(max_tokens <= config().max_position_embeddings, "{} tokens exceed the model context of {}", max_tokens,
                config().max_position_embeddings);
  return std::make_unique<Sequence>(std::move(pool), max_tokens);
}

std::unique_ptr<Sequence> CausalLM::new_sequence(int64_t max_tokens) const {
  BALEINE_CHECK(max_tokens > 0, "sequence capacity must be positive, got {}", max_tokens);
  BALEINE_CHECK(max_tokens <= config().max_position_embeddings, "{} tokens exceed the model context of {}", max_tokens,
                config().max_position_embeddings);
  const int64_t bs = 16;
  return new_sequence(new_kv_pool((max_tokens + bs - 1) / bs, bs), max_tokens);
}

Tensor CausalLM::forward(Sequence& seq, std::span<const int32_t> tokens, MlaMode mode) {
  BatchItem item{&seq, tokens, true};
  return forward_batch(std::span<const BatchItem>(&item, 1), mode);
}

void check_batch(const ModelConfig& config, std::span<const BatchItem> items, int64_t layers, int64_t row) {
  BALEINE_CHECK(!items.empty(), "no sequences to process");
  for (size_t i = 0; i < items.size(); ++i) {
    BALEINE_CHECK(items[i].seq != nullptr, "batch item {} has no sequence", i);
    const KvPool& pool = items[i].seq->pool();
    BALEINE_CHECK(pool.layers() == layers && pool.row() == row,
                  "batch item {}: the KV pool ({} layers × {} floats) was not made for this model ({} × {})", i,
                  pool.layers(), pool.row(), layers, row);
    for (size_t j = 0; j < i; ++j)
      BALEINE_CHECK(items[j].seq != items[i].seq, "batch items {} and {} are the same sequence", j, i);
    check_forward_input(config, *items[i].seq, items[i].tokens);
  }
  for (const BatchItem& it : items) it.seq->reserve(it.seq->length() + int64_t(it.tokens.size()));
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
