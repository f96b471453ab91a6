// agent/embeddings.h — text embeddings from the model itself: the mean of its final hidden states (after the last
// norm) over the text's tokens, L2-normalised (what /v1/embeddings and dense retrieval use). On a server the
// engine computes them (Engine::submit_embedding, batched with generation); model_embedding is the direct form
// for tools that own a model. EmbeddingCache keeps vectors of texts (document chunks) across requests.
// defines: model_embedding, model_embedder, engine_embeddings, engine_embedder, EmbeddingCache, cached_embedder
#pragma once
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/retrieval.h"
#include "infer/engine.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

struct sqlite3;

namespace baleine::agent {

// [hidden_size]; the first max_tokens tokens count; an empty text gives zeros. Not thread-safe on `model`.
std::vector<float> model_embedding(CausalLM& model, const Tokenizer& tok, const std::string& text, int64_t max_tokens = 512);
// An Embedder over `model` with its own mutex. The model must not be in use elsewhere meanwhile (the engine's
// model runs on the engine thread: use engine_embedder there).
Embedder model_embedder(std::shared_ptr<CausalLM> model, std::shared_ptr<const Tokenizer> tok, int64_t max_tokens = 512);

// Embeds `texts` in one engine request (each cut to its first max_tokens tokens, at most the context; an empty
// text gives zeros). Throws baleine::Error on an engine error, a cancel or `timeout`.
std::vector<std::vector<float>> engine_embeddings(Engine& engine, const std::vector<std::string>& texts, int64_t max_tokens = 512,
                                                  std::chrono::milliseconds timeout = std::chrono::minutes(2));
Embedder engine_embedder(Engine& engine, int64_t max_tokens = 512);

// Text -> vector, per embedding model id, in SQLite (":memory:" or a file). Thread-safe.
class EmbeddingCache {
 public:
  explicit EmbeddingCache(const std::string& path);
  ~EmbeddingCache();
  EmbeddingCache(const EmbeddingCache&) = delete;
  EmbeddingCache& operator=(const EmbeddingCache&) = delete;
  bool get(const std::string& model, const std::string& text, std::vector<float>& out) const;
  void put(const std::string& model, const std::string& text, const std::vector<float>& v);
  size_t size() const;

 private:
  sqlite3* db_ = nullptr;
  mutable std::mutex mu_;
};

// `inner` behind the cache: a text seen before costs a lookup.
Embedder cached_embedder(std::shared_ptr<EmbeddingCache> cache, std::string model, Embedder inner);

}  // namespace baleine::agent
