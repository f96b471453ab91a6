#include "agent/retrieval.h"

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "agent/sqlite_util.h"
#include "core/check.h"

namespace baleine::agent {

namespace {

bool utf8_continuation(char c) { return (uint8_t(c) & 0xc0) == 0x80; }

// The query's words, lower-cased, alphanumeric runs (and any non-ASCII byte), at most 32; each once unless `in_order`
// (a phrase keeps its repeats).
std::vector<std::string> query_words(const std::string& q, bool in_order = false) {
  std::vector<std::string> words;
  std::string w;
  auto flush = [&] {
    if (!w.empty() && words.size() < 32 && (in_order || std::find(words.begin(), words.end(), w) == words.end()))
      words.push_back(w);
    w.clear();
  };
  for (char c : q) {
    if (std::isalnum(uint8_t(c)) || uint8_t(c) >= 0x80) w += char(std::tolower(uint8_t(c)));
    else flush();
  }
  flush();
  return words;
}

// The spans between double quotes (ASCII or typographic), as a search engine reads "must contain this phrase".
std::vector<std::string> quoted_spans(const std::string& q) {
  static const std::string open_curly = "\xe2\x80\x9c", close_curly = "\xe2\x80\x9d";
  std::vector<std::string> spans;
  size_t i = 0;
  while (i < q.size()) {
    const bool ascii = q[i] == '"', curly = q.compare(i, 3, open_curly) == 0;
    if (!ascii && !curly) {
      ++i;
      continue;
    }
    const size_t start = i + (ascii ? 1 : 3);
    const size_t end = ascii ? q.find('"', start) : q.find(close_curly, start);
    if (end == std::string::npos) break;
    if (end > start && spans.size() < 4) spans.push_back(q.substr(start, end - start));
    i = end + (ascii ? 1 : 3);
  }
  return spans;
}

// FTS5 query: the words OR-ed, each quoted so that FTS5 operators and punctuation in user text never reach the
// parser. With `require_quoted`, every double-quoted span of the query must also occur as a phrase (ANDed in
// front; BM25 still scores all words). Empty when the query has no word (or no quoted span, if required).
std::string fts_query(const std::string& q, bool require_quoted) {
  std::string any;
  for (const auto& x : query_words(q)) any += (any.empty() ? "\"" : " OR \"") + x + "\"";
  if (!require_quoted || any.empty()) return any;
  std::string all;
  for (const auto& span : quoted_spans(q)) {
    std::string phrase;
    for (const auto& x : query_words(span, true)) phrase += (phrase.empty() ? "" : " ") + x;
    if (!phrase.empty()) all += "\"" + phrase + "\" AND ";
  }
  return all.empty() ? std::string() : all + "(" + any + ")";
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.empty()) return 0;
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0;
}

}  // namespace

std::vector<std::pair<size_t, size_t>> chunk_text(const std::string& text, const ChunkOptions& o) {
  std::vector<std::pair<size_t, size_t>> out;
  const size_t n = text.size(), target = std::max<size_t>(o.target_bytes, 32);
  const size_t overlap = std::min(o.overlap_bytes, target / 2);
  size_t start = 0;
  while (start < n) {
    size_t end = std::min(n, start + target);
    if (end < n) {
      // Prefer a sentence or paragraph end in the second half of the window, then a space.
      size_t cut = std::string::npos;
      for (size_t i = end; i > start + target / 2; --i) {
        const char c = text[i - 1];
        if (c == '\n' || ((c == '.' || c == '!' || c == '?') && i < n && (text[i] == ' ' || text[i] == '\n'))) {
          cut = i;
          break;
        }
      }
      if (cut == std::string::npos)
        for (size_t i = end; i > start + target / 2; --i)
          if (text[i - 1] == ' ') { cut = i; break; }
      if (cut != std::string::npos) end = cut;
      while (end > start + 1 && end < n && utf8_continuation(text[end])) --end;
    }
    out.push_back({start, end - start});
    if (end >= n) break;
    size_t next = end > overlap ? end - overlap : end;
    while (next < end && text[next] != ' ' && text[next] != '\n') ++next;  // start on a word
    if (next < end) ++next;
    while (next < end && utf8_continuation(text[next])) ++next;
    start = next > start ? next : end;
  }
  return out;
}

bool sqlite_has_fts5() { return sqlite3_compileoption_used("ENABLE_FTS5") == 1; }

DocumentStore::DocumentStore(const std::string& path, ChunkOptions options) : options_(options) {
  BALEINE_CHECK(sqlite3_open(path.c_str(), &db_) == SQLITE_OK, "cannot open document store '{}': {}", path,
                db_ ? sqlite3_errmsg(db_) : "out of memory");
  sqlite3_busy_timeout(db_, 5000);
  if (!sqlite_has_fts5()) {
    sqlite3_close(db_);
    db_ = nullptr;
    BALEINE_FAIL("this SQLite ({}) has no FTS5: retrieval needs it", sqlite3_libversion());
  }
  exec("PRAGMA foreign_keys = ON");
  exec("CREATE TABLE IF NOT EXISTS documents(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, text TEXT NOT NULL)");
  exec("CREATE TABLE IF NOT EXISTS chunks(id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
       " offset INTEGER NOT NULL, text TEXT NOT NULL, embedding BLOB)");
  exec("CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, content='chunks', content_rowid='id',"
       " tokenize='porter unicode61 remove_diacritics 2')");
}

DocumentStore::~DocumentStore() {
  if (db_) sqlite3_close(db_);
}

void DocumentStore::exec(const char* sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    BALEINE_FAIL("sqlite: {} ({})", msg, sql);
  }
}

bool DocumentStore::remove_document(const std::string& name) {
  std::lock_guard lock(mu_);
  int64_t id = -1;
  {
    Stmt s(db_, "SELECT id FROM documents WHERE name = ?");
    s.text(1, name);
    if (s.step()) id = s.col_int(0);
  }
  if (id < 0) return false;
  exec("BEGIN");
  try {
    Stmt chunks(db_, "SELECT id, text FROM chunks WHERE doc_id = ?");
    chunks.integer(1, id);
    while (chunks.step()) {
      Stmt del(db_, "INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES('delete', ?, ?)");
      del.integer(1, chunks.col_int(0)).text(2, chunks.col_text(1)).step();
    }
    Stmt(db_, "DELETE FROM chunks WHERE doc_id = ?").integer(1, id).step();
    Stmt(db_, "DELETE FROM documents WHERE id = ?").integer(1, id).step();
    exec("COMMIT");
  } catch (...) {
    exec("ROLLBACK");
    throw;
  }
  return true;
}

size_t DocumentStore::add_document(const std::string& name, const std::string& text) {
  BALEINE_CHECK(!name.empty() && name.size() <= 256, "document name must be 1 to 256 bytes");
  BALEINE_CHECK(text.size() <= (size_t(16) << 20), "document '{}' is larger than 16 MiB", name.substr(0, 64));
  remove_document(name);
  auto chunks = chunk_text(text, options_);
  std::lock_guard lock(mu_);
  exec("BEGIN");
  try {
    Stmt(db_, "INSERT INTO documents(name, text) VALUES(?, ?)").text(1, name).text(2, text).step();
    const int64_t doc = sqlite3_last_insert_rowid(db_);
    for (auto [off, len] : chunks) {
      const std::string piece = text.substr(off, len);
      Stmt ins(db_, "INSERT INTO chunks(doc_id, offset, text, embedding) VALUES(?, ?, ?, ?)");
      ins.integer(1, doc).integer(2, int64_t(off)).text(3, piece);
      if (embedder_) {
        auto e = embedder_(piece);
        ins.blob(4, e.data(), e.size() * sizeof(float));
      }
      ins.step();
      const int64_t cid = sqlite3_last_insert_rowid(db_);
      Stmt(db_, "INSERT INTO chunks_fts(rowid, text) VALUES(?, ?)").integer(1, cid).text(2, piece).step();
    }
    exec("COMMIT");
  } catch (...) {
    exec("ROLLBACK");
    throw;
  }
  return chunks.size();
}

std::vector<std::string> DocumentStore::documents() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  Stmt s(db_, "SELECT name FROM documents ORDER BY name");
  while (s.step()) out.push_back(s.col_text(0));
  return out;
}

size_t DocumentStore::chunk_count() const {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT COUNT(*) FROM chunks");
  s.step();
  return size_t(s.col_int(0));
}

void DocumentStore::set_embedder(Embedder e) {
  std::lock_guard lock(mu_);
  embedder_ = std::move(e);
}

std::vector<std::pair<int64_t, Passage>> DocumentStore::bm25_ids(const std::string& query, int k) const {
  std::vector<std::pair<int64_t, Passage>> out;
  if (k <= 0) return out;
  // Passages holding every quoted phrase first; when none does (or nothing is quoted), the plain OR query.
  for (bool require_quoted : {true, false}) {
    const std::string q = fts_query(query, require_quoted);
    if (q.empty()) continue;
    Stmt s(db_,
           "SELECT c.id, d.name, c.offset, c.text, bm25(chunks_fts) FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid"
           " JOIN documents d ON d.id = c.doc_id WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts) LIMIT ?");
    s.text(1, q).integer(2, k);
    while (s.step()) out.push_back({s.col_int(0), Passage{s.col_text(1), s.col_int(2), s.col_text(3), -s.col_double(4)}});
    if (!out.empty()) break;
  }
  return out;
}

void DocumentStore::embed_missing() const {
  std::vector<std::pair<int64_t, std::string>> todo;
  {
    Stmt s(db_, "SELECT id, text FROM chunks WHERE embedding IS NULL");
    while (s.step()) todo.push_back({s.col_int(0), s.col_text(1)});
  }
  for (auto& [id, text] : todo) {
    auto e = embedder_(text);
    Stmt(db_, "UPDATE chunks SET embedding = ? WHERE id = ?").blob(1, e.data(), e.size() * sizeof(float)).integer(2, id).step();
  }
}

std::vector<Passage> DocumentStore::search(const std::string& query, int k) const {
  std::lock_guard lock(mu_);
  k = std::clamp(k, 0, 50);
  if (!embedder_) {
    std::vector<Passage> out;
    for (auto& [id, p] : bm25_ids(query, k)) out.push_back(std::move(p));
    return out;
  }
  // Reciprocal rank fusion of BM25 and cosine similarity (k = 60, as in Cormack et al.).
  embed_missing();
  const int pool = std::max(20, 4 * k);
  std::map<int64_t, std::pair<double, Passage>> fused;
  auto lexical = bm25_ids(query, pool);
  for (size_t r = 0; r < lexical.size(); ++r) fused[lexical[r].first] = {1.0 / (60.0 + double(r + 1)), lexical[r].second};
  const std::vector<float> qe = embedder_(query);
  std::vector<std::pair<double, std::pair<int64_t, Passage>>> dense;
  Stmt s(db_, "SELECT c.id, d.name, c.offset, c.text, c.embedding FROM chunks c JOIN documents d ON d.id = c.doc_id");
  while (s.step()) dense.push_back({cosine(qe, s.col_floats(4)), {s.col_int(0), Passage{s.col_text(1), s.col_int(2), s.col_text(3), 0}}});
  std::sort(dense.begin(), dense.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t r = 0; r < dense.size() && int(r) < pool; ++r) {
    auto& slot = fused[dense[r].second.first];
    if (slot.second.document.empty()) slot.second = dense[r].second.second;
    slot.first += 1.0 / (60.0 + double(r + 1));
  }
  std::vector<std::pair<int64_t, Passage>> ranked;
  for (auto& [id, sp] : fused) {
    sp.second.score = sp.first;
    ranked.push_back({id, sp.second});
  }
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.second.score > b.second.score; });
  if (int(ranked.size()) > k) {
    // The best lexical passage always stays among the k: exact-term matches are precise, and embeddings of a
    // small or untrained model can be noise (equal-weight fusion alone would then push it out).
    const bool kept = lexical.empty() || std::any_of(ranked.begin(), ranked.begin() + k, [&](const auto& r) { return r.first == lexical[0].first; });
    ranked.resize(size_t(k));
    if (!kept) ranked.back() = {lexical[0].first, fused[lexical[0].first].second};
  }
  std::vector<Passage> out;
  for (auto& [id, p] : ranked) out.push_back(std::move(p));
  return out;
}

}  // namespace baleine::agent
