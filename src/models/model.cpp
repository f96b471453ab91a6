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
    if (items[i].input_embeds.empty()) {
      check_forward_input(config, *items[i].seq, items[i].tokens);
    } else {
      const BatchItem& it = items[i];
      const int64_t d = config.hidden_size, n = int64_t(it.input_embeds.size()), p0 = it.seq->length();
      BALEINE_CHECK(it.tokens.empty(), "batch item {} gives both tokens and input embeddings", i);
      BALEINE_CHECK(n > 0 && n % d == 0, "batch item {}: {} input-embedding values are not rows of hidden_size {}", i, n, d);
      BALEINE_CHECK(p0 + n / d <= it.seq->capacity(), "{} rows at position {} exceed the sequence capacity of {}", n / d,
                    p0, it.seq->capacity());
    }
  }
  for (const BatchItem& it : items) it.seq->reserve(it.seq->length() + it.length(config.hidden_size));
}

Tensor CausalLM::logits(std::span<const int32_t> tokens, MlaMode mode) {
  auto seq = new_sequence(int64_t(tokens.size()));
  return forward(*seq, tokens, mode);
}

PackedWindowLayout packed_window_layout(const ModelConfig& config, std::span<const int32_t> tokens,
                                        std::span<const int64_t> sample_lengths) {
  const int64_t T = int64_t(tokens.size());
  BALEINE_CHECK(T >= 1, "need at least 1 token, got {}", T);
  for (int32_t t : tokens)
    BALEINE_CHECK(t >= 0 && t < config.vocab_size, "token id {} is outside the vocabulary [0, {})", t, config.vocab_size);
  PackedWindowLayout w;
  w.lengths.assign(sample_lengths.begin(), sample_lengths.end());
  if (w.lengths.empty()) w.lengths.push_back(T);
  int64_t total = 0;
  for (int64_t len : w.lengths) {
    BALEINE_CHECK(len >= 1, "a packed sample has length {}", len);
    BALEINE_CHECK(len <= config.max_position_embeddings, "a sample of {} tokens exceeds the context of {}", len,
                  config.max_position_embeddings);
    total += len;
  }
  BALEINE_CHECK(total == T, "sample lengths add up to {}, the window has {} tokens", total, T);
  w.positions.resize(size_t(T));
  w.targets.assign(size_t(T), -1);
  w.sample_of.resize(size_t(T));
  int64_t start = 0;
  for (size_t s = 0; s < w.lengths.size(); ++s) {
    for (int64_t i = 0; i < w.lengths[s]; ++i) {
      w.positions[size_t(start + i)] = int32_t(i);
      w.sample_of[size_t(start + i)] = int64_t(s);
      if (i + 1 < w.lengths[s]) w.targets[size_t(start + i)] = tokens[size_t(start + i + 1)];
    }
    start += w.lengths[s];
  }
  return w;
}

double CausalLM::objective_and_grad(std::span<const int32_t>, std::span<const int64_t>, const LogitObjective&,
                                    nn::Gradients*) {
  BALEINE_FAIL("training is not implemented for {} models loaded this way (a GGUF file is inference only; "
               "convert it to HF safetensors)", config().model_type);
}

LossParts CausalLM::loss_and_grad(std::span<const int32_t>, nn::Gradients*, double) {
  BALEINE_FAIL("pretraining is not implemented for {} models loaded this way", config().model_type);
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
