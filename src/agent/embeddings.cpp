#include "agent/embeddings.h"

#include <cmath>
#include <mutex>

namespace baleine::agent {

std::vector<float> model_embedding(CausalLM& model, const Tokenizer& tok, const std::string& text, int64_t max_tokens) {
  const int64_t d = model.config().hidden_size;
  std::vector<float> out(size_t(d), 0.0f);
  std::vector<int32_t> ids = tok.encode(text);
  if (int64_t(ids.size()) > max_tokens) ids.resize(size_t(max_tokens));
  if (ids.empty()) return out;
  auto seq = model.new_sequence(int64_t(ids.size()));
  Tensor h = model.hidden_states(*seq, ids);  // [T, d]
  const int64_t T = h.dim(0);
  std::vector<double> acc(size_t(d), 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < d; ++i) acc[size_t(i)] += h.f32()[t * d + i];
  double norm = 0;
  for (double v : acc) norm += v * v;
  norm = std::sqrt(norm);
  for (int64_t i = 0; i < d; ++i) out[size_t(i)] = norm > 0 ? float(acc[size_t(i)] / norm) : 0.0f;
  return out;
}

Embedder model_embedder(std::shared_ptr<CausalLM> model, std::shared_ptr<const Tokenizer> tok, int64_t max_tokens) {
  auto mu = std::make_shared<std::mutex>();
  return [model, tok, max_tokens, mu](const std::string& text) {
    std::lock_guard lock(*mu);
    return model_embedding(*model, *tok, text, max_tokens);
  };
}

}  // namespace baleine::agent
