#include "agent/embeddings.h"

#include <cmath>

#include "agent/sqlite_util.h"
#include "core/check.h"

namespace baleine::agent {

std::vector<float> model_embedding(CausalLM& model, const Tokenizer& tok, const std::string& text, int64_t max_tokens) {
  const int64_t d = model.config().hidden_size;
  std::vector<float> out(size_t(d), 0.0f);
  std::vector<int32_t> ids = tok.encode(text, /*add_bos=*/false, /*allow_special=*/false);
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

std::vector<std::vector<float>> engine_embeddings(Engine& engine, const std::vector<std::string>& texts, int64_t max_tokens,
                                                  std::chrono::milliseconds timeout) {
  const int64_t d = engine.config().hidden_size, limit = std::min(max_tokens, engine.context());
  std::vector<std::vector<float>> out(texts.size(), std::vector<float>(size_t(d), 0.0f));
  EmbeddingRequest req;
  std::vector<size_t> where;  // input -> text index (empty texts are not sent)
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> ids = engine.tokenizer().encode(texts[i], /*add_bos=*/false, /*allow_special=*/false);
    if (int64_t(ids.size()) > limit) ids.resize(size_t(limit));
    if (ids.empty()) continue;
    req.inputs.push_back(std::move(ids));
    where.push_back(i);
  }
  for (size_t at = 0; at < req.inputs.size(); at += 4096) {  // the engine takes 4096 inputs per request
    EmbeddingRequest part;
    const size_t end = std::min(req.inputs.size(), at + 4096);
    part.inputs.assign(req.inputs.begin() + std::ptrdiff_t(at), req.inputs.begin() + std::ptrdiff_t(end));
    auto h = engine.submit_embedding(std::move(part));
    auto r = h->wait(timeout);
    if (!r) {
      h->cancel();
      BALEINE_FAIL("embedding timed out after {} ms", timeout.count());
    }
    BALEINE_CHECK(r->finish_reason == FinishReason::Stop, "embedding failed: {}",
                  r->error.empty() ? finish_reason_name(r->finish_reason) : r->error);
    for (size_t k = at; k < end; ++k) out[where[k]] = std::move(r->vectors[k - at]);
  }
  return out;
}

Embedder engine_embedder(Engine& engine, int64_t max_tokens) {
  return [&engine, max_tokens](const std::string& text) { return engine_embeddings(engine, {text}, max_tokens).at(0); };
}

EmbeddingCache::EmbeddingCache(const std::string& path) : db_(sqlite_open(path)) {
  sqlite_exec(db_, "CREATE TABLE IF NOT EXISTS embedding_cache(model TEXT NOT NULL, text TEXT NOT NULL, vec BLOB NOT NULL,"
                   " PRIMARY KEY(model, text))");
}

EmbeddingCache::~EmbeddingCache() { sqlite3_close(db_); }

bool EmbeddingCache::get(const std::string& model, const std::string& text, std::vector<float>& out) const {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT vec FROM embedding_cache WHERE model = ? AND text = ?");
  s.text(1, model).text(2, text);
  if (!s.step()) return false;
  out = s.col_floats(0);
  return true;
}

void EmbeddingCache::put(const std::string& model, const std::string& text, const std::vector<float>& v) {
  std::lock_guard lock(mu_);
  Stmt(db_, "INSERT OR REPLACE INTO embedding_cache(model, text, vec) VALUES(?, ?, ?)")
      .text(1, model).text(2, text).blob(3, v.data(), v.size() * sizeof(float)).step();
}

size_t EmbeddingCache::size() const {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT COUNT(*) FROM embedding_cache");
  s.step();
  return size_t(s.col_int(0));
}

Embedder cached_embedder(std::shared_ptr<EmbeddingCache> cache, std::string model, Embedder inner) {
  return [cache, model, inner](const std::string& text) {
    std::vector<float> v;
    if (cache->get(model, text, v)) return v;
    v = inner(text);
    cache->put(model, text, v);
    return v;
  };
}

}  // namespace baleine::agent
