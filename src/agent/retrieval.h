// agent/retrieval.h — documents for retrieval: chunked, indexed by SQLite FTS5 (BM25, Porter stemming), searched
// into cited passages (document name + byte offset of the chunk); optionally fused (reciprocal rank) with dense
// similarity from an embedding function (e.g. the model's own mean-pooled hidden states).
// defines: ChunkOptions, chunk_text, Passage, Embedder, DocumentStore, sqlite_has_fts5
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

struct sqlite3;

namespace baleine::agent {

struct ChunkOptions {
  size_t target_bytes = 700;   // a chunk ends at the last sentence (or word) boundary before this
  size_t overlap_bytes = 120;  // the next chunk starts this far back (at a word boundary)
};
// (offset, length) of each chunk; never splits a UTF-8 character; covers the whole text.
std::vector<std::pair<size_t, size_t>> chunk_text(const std::string& text, const ChunkOptions& options = {});

struct Passage {
  std::string document;
  int64_t offset = 0;  // byte offset of the chunk in the document
  std::string text;
  double score = 0;    // BM25 (higher is better), or the fused reciprocal-rank score with dense search
};

// Text -> embedding vector (any fixed dimension).
using Embedder = std::function<std::vector<float>(const std::string&)>;

bool sqlite_has_fts5();

// Thread-safe (one mutex around the connection).
class DocumentStore {
 public:
  // path: a SQLite file (created when missing) or ":memory:". Throws baleine::Error when SQLite lacks FTS5.
  explicit DocumentStore(const std::string& path, ChunkOptions options = {});
  ~DocumentStore();
  DocumentStore(const DocumentStore&) = delete;
  DocumentStore& operator=(const DocumentStore&) = delete;

  // Adds (or replaces, by name) a document; returns the number of chunks. Name 1..256 bytes, text <= 16 MiB.
  size_t add_document(const std::string& name, const std::string& text);
  bool remove_document(const std::string& name);
  std::vector<std::string> documents() const;
  size_t chunk_count() const;
  // Best `k` passages for the query (words are matched with OR; FTS syntax in the query is neutralised). A
  // double-quoted span of the query is a phrase the passages must contain, as in a web search, unless no passage
  // contains it (then the words alone). With an embedder: reciprocal-rank fusion of BM25 and cosine similarity,
  // the best BM25 passage always kept among the k.
  std::vector<Passage> search(const std::string& query, int k) const;
  // Enables dense similarity: chunk embeddings are computed on first search (and for new documents).
  void set_embedder(Embedder e);

 private:
  std::vector<std::pair<int64_t, Passage>> bm25_ids(const std::string& query, int k) const;
  void exec(const char* sql) const;
  void embed_missing() const;
  sqlite3* db_ = nullptr;
  ChunkOptions options_;
  Embedder embedder_;
  mutable std::mutex mu_;
};

}  // namespace baleine::agent
