#include "server/store.h"

#include <cstdlib>
#include <filesystem>

#include <openssl/evp.h>
#include <sqlite3.h>

#include <chrono>
#include <random>

#include "core/check.h"

namespace baleine::server {

std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  BALEINE_CHECK(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) == 1, "SHA-256 failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

namespace {

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A prepared statement: bind by position (1-based), step, read columns; finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    BALEINE_CHECK(sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) == SQLITE_OK, "sqlite: {} ({})", sqlite3_errmsg(db), sql);
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt& bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); return *this; }
  Stmt& bind(int i, double v) { sqlite3_bind_double(s_, i, v); return *this; }
  Stmt& bind(int i, const std::string& v) { sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT); return *this; }
  bool row() {  // true while there is a row
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    BALEINE_CHECK(rc == SQLITE_DONE, "sqlite: {}", sqlite3_errmsg(db_));
    return false;
  }
  void run() { (void)row(); }
  int64_t i64(int c) { return sqlite3_column_int64(s_, c); }
  double f64(int c) { return sqlite3_column_double(s_, c); }
  std::string text(int c) {
    const auto* p = sqlite3_column_text(s_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), size_t(sqlite3_column_bytes(s_, c))) : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

std::string random_hex(size_t bytes) {
  std::random_device rd;  // /dev/urandom on Linux
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    const unsigned v = rd() & 0xFF;
    out += hex[v >> 4];
    out += hex[v & 15];
  }
  return out;
}

Conversation read_conversation(Stmt& s) {
  Conversation c;
  c.id = s.text(0);
  c.title = s.text(1);
  c.model = s.text(2);
  c.system_prompt = s.text(3);
  c.temperature = s.f64(4);
  c.created = s.i64(5);
  c.updated = s.i64(6);
  c.key_id = s.i64(7);
  c.assistant_id = s.text(8);
  return c;
}

}  // namespace

std::string default_db_path() {
  if (const char* e = std::getenv("BALEINE_DB"); e && *e) return e;
  std::filesystem::path dir;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) dir = x;
  else if (const char* h = std::getenv("HOME"); h && *h) dir = std::filesystem::path(h) / ".local" / "share";
  else dir = ".";
  dir /= "baleine";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  BALEINE_CHECK(!ec, "{}: cannot create the database folder: {} (set BALEINE_DB or pass --db)", dir.string(), ec.message());
  return (dir / "baleine.db").string();
}

Store::Store(const std::string& path) : path_(path) {
  BALEINE_CHECK(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                                nullptr) == SQLITE_OK,
                "{}: cannot open the database: {}", path, db_ ? sqlite3_errmsg(db_) : "out of memory");
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=FULL");
  exec("PRAGMA foreign_keys=ON");
  exec(R"(CREATE TABLE IF NOT EXISTS api_keys (
      id INTEGER PRIMARY KEY, name TEXT NOT NULL, prefix TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
      created INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, rpm INTEGER NOT NULL DEFAULT 0,
      tpm INTEGER NOT NULL DEFAULT 0))");
  exec(R"(CREATE TABLE IF NOT EXISTS usage_ledger (
      id INTEGER PRIMARY KEY, key_id INTEGER NOT NULL, ts INTEGER NOT NULL, endpoint TEXT NOT NULL, model TEXT NOT NULL,
      status TEXT NOT NULL, prompt_tokens INTEGER NOT NULL DEFAULT 0, cached_tokens INTEGER NOT NULL DEFAULT 0,
      completion_tokens INTEGER NOT NULL DEFAULT 0, reasoning_tokens INTEGER NOT NULL DEFAULT 0,
      cost_usd REAL NOT NULL DEFAULT 0))");
  exec("CREATE INDEX IF NOT EXISTS usage_by_key ON usage_ledger(key_id, ts)");
  exec(R"(CREATE TABLE IF NOT EXISTS conversations (
      id TEXT PRIMARY KEY, title TEXT NOT NULL, model TEXT NOT NULL, system_prompt TEXT NOT NULL,
      temperature REAL NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL,
      key_id INTEGER NOT NULL DEFAULT 0))");
  exec(R"(CREATE TABLE IF NOT EXISTS messages (
      id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
      role TEXT NOT NULL, content TEXT NOT NULL, reasoning TEXT NOT NULL, model TEXT NOT NULL,
      reasoning_seconds REAL NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
      cost_usd REAL NOT NULL, status TEXT NOT NULL, created INTEGER NOT NULL))");
  exec("CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, id)");
  // Columns added after the first release: databases made before them are migrated in place.
  add_column_if_missing("conversations", "assistant_id", "TEXT NOT NULL DEFAULT ''");
  add_column_if_missing("messages", "agent_json", "TEXT NOT NULL DEFAULT ''");
}

int64_t Store::mark_interrupted() {
  std::lock_guard<std::mutex> lk(mu_);
  exec("UPDATE messages SET status='interrupted' WHERE status='streaming'");
  const int64_t n = sqlite3_changes(db_);
  exec("UPDATE usage_ledger SET status='interrupted' WHERE status='running'");
  return n;
}

void Store::add_column_if_missing(const std::string& table, const std::string& column, const std::string& decl) {
  Stmt s(db_, ("PRAGMA table_info(" + table + ")").c_str());
  while (s.row())
    if (s.text(1) == column) return;
  exec(("ALTER TABLE " + table + " ADD COLUMN " + column + " " + decl).c_str());
}

Store::~Store() { sqlite3_close(db_); }

void Store::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    BALEINE_FAIL("{}: sqlite: {} ({})", path_, msg, sql);
  }
}

std::string Store::create_key(const std::string& name, int64_t rpm, int64_t tpm, ApiKey* out) {
  BALEINE_CHECK(!name.empty() && name.size() <= 100, "a key needs a name (1..100 characters)");
  BALEINE_CHECK(rpm >= 0 && tpm >= 0, "rate limits must not be negative");
  const std::string secret = "sk-" + random_hex(24);
  std::lock_guard lock(mu_);
  Stmt s(db_, "INSERT INTO api_keys(name, prefix, hash, created, rpm, tpm) VALUES(?,?,?,?,?,?)");
  const int64_t t = now_s();
  s.bind(1, name).bind(2, secret.substr(0, 7)).bind(3, sha256_hex(secret)).bind(4, t).bind(5, rpm).bind(6, tpm).run();
  if (out) *out = {sqlite3_last_insert_rowid(db_), name, secret.substr(0, 7), t, false, rpm, tpm};
  return secret;
}

std::vector<ApiKey> Store::list_keys() {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT id, name, prefix, created, revoked, rpm, tpm FROM api_keys ORDER BY id");
  std::vector<ApiKey> out;
  while (s.row()) out.push_back({s.i64(0), s.text(1), s.text(2), s.i64(3), s.i64(4) != 0, s.i64(5), s.i64(6)});
  return out;
}

bool Store::revoke_key(const std::string& id_or_name) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "UPDATE api_keys SET revoked = 1 WHERE revoked = 0 AND (CAST(id AS TEXT) = ?1 OR name = ?1 OR prefix = ?1)");
  s.bind(1, id_or_name).run();
  return sqlite3_changes(db_) > 0;
}

bool Store::any_active_key() {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT 1 FROM api_keys WHERE revoked = 0 LIMIT 1");
  return s.row();
}

std::optional<ApiKey> Store::find_key(const std::string& secret) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT id, name, prefix, created, revoked, rpm, tpm FROM api_keys WHERE hash = ? AND revoked = 0");
  s.bind(1, sha256_hex(secret));
  if (!s.row()) return std::nullopt;
  return ApiKey{s.i64(0), s.text(1), s.text(2), s.i64(3), s.i64(4) != 0, s.i64(5), s.i64(6)};
}

int64_t Store::ledger_begin(int64_t key_id, const std::string& endpoint, const std::string& model, int64_t prompt_tokens) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "INSERT INTO usage_ledger(key_id, ts, endpoint, model, status, prompt_tokens) VALUES(?,?,?,?,'running',?)");
  s.bind(1, key_id).bind(2, now_s()).bind(3, endpoint).bind(4, model).bind(5, prompt_tokens).run();
  return sqlite3_last_insert_rowid(db_);
}

void Store::ledger_end(int64_t id, const LedgerEntry& e) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "UPDATE usage_ledger SET status=?, prompt_tokens=?, cached_tokens=?, completion_tokens=?, reasoning_tokens=?, "
              "cost_usd=? WHERE id=?");
  s.bind(1, e.status).bind(2, e.prompt_tokens).bind(3, e.cached_tokens).bind(4, e.completion_tokens)
      .bind(5, e.reasoning_tokens).bind(6, e.cost_usd).bind(7, id).run();
}

std::vector<LedgerEntry> Store::ledger(int64_t key_id, int64_t limit) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT id, key_id, ts, endpoint, model, status, prompt_tokens, cached_tokens, completion_tokens, "
              "reasoning_tokens, cost_usd FROM usage_ledger WHERE ?1 < 0 OR key_id = ?1 ORDER BY id DESC LIMIT ?2");
  s.bind(1, key_id).bind(2, limit);
  std::vector<LedgerEntry> out;
  while (s.row())
    out.push_back({s.i64(0), s.i64(1), s.i64(2), s.text(3), s.text(4), s.text(5), s.i64(6), s.i64(7), s.i64(8), s.i64(9), s.f64(10)});
  return out;
}

Conversation Store::create_conversation(const Conversation& in) {
  Conversation c = in;
  c.id = random_hex(8);
  c.created = c.updated = now_s();
  std::lock_guard lock(mu_);
  Stmt s(db_, "INSERT INTO conversations(id, title, model, system_prompt, temperature, created, updated, key_id, assistant_id) "
              "VALUES(?,?,?,?,?,?,?,?,?)");
  s.bind(1, c.id).bind(2, c.title).bind(3, c.model).bind(4, c.system_prompt).bind(5, c.temperature).bind(6, c.created)
      .bind(7, c.updated).bind(8, c.key_id).bind(9, c.assistant_id).run();
  return c;
}

std::vector<Conversation> Store::list_conversations(int64_t key_id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT id, title, model, system_prompt, temperature, created, updated, key_id, assistant_id FROM conversations "
              "WHERE key_id = ? ORDER BY updated DESC, rowid DESC");
  s.bind(1, key_id);
  std::vector<Conversation> out;
  while (s.row()) out.push_back(read_conversation(s));
  return out;
}

std::optional<Conversation> Store::get_conversation(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT id, title, model, system_prompt, temperature, created, updated, key_id, assistant_id FROM conversations WHERE id = ?");
  s.bind(1, id);
  if (!s.row()) return std::nullopt;
  return read_conversation(s);
}

bool Store::update_conversation(const Conversation& c) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "UPDATE conversations SET title=?, model=?, system_prompt=?, temperature=?, updated=?, assistant_id=? WHERE id=?");
  s.bind(1, c.title).bind(2, c.model).bind(3, c.system_prompt).bind(4, c.temperature).bind(5, now_s()).bind(6, c.assistant_id)
      .bind(7, c.id).run();
  return sqlite3_changes(db_) > 0;
}

bool Store::delete_conversation(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "DELETE FROM conversations WHERE id = ?");
  s.bind(1, id).run();
  return sqlite3_changes(db_) > 0;
}

int64_t Store::add_message(const StoredMessage& m) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "INSERT INTO messages(conversation_id, role, content, reasoning, model, reasoning_seconds, prompt_tokens, "
              "completion_tokens, cost_usd, status, created, agent_json) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");
  s.bind(1, m.conversation_id).bind(2, m.role).bind(3, m.content).bind(4, m.reasoning).bind(5, m.model)
      .bind(6, m.reasoning_seconds).bind(7, m.prompt_tokens).bind(8, m.completion_tokens).bind(9, m.cost_usd)
      .bind(10, m.status).bind(11, now_s()).bind(12, m.agent_json).run();
  const int64_t id = sqlite3_last_insert_rowid(db_);
  Stmt u(db_, "UPDATE conversations SET updated = ? WHERE id = ?");
  u.bind(1, now_s()).bind(2, m.conversation_id).run();
  return id;
}

void Store::update_message(const StoredMessage& m) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "UPDATE messages SET content=?, reasoning=?, reasoning_seconds=?, prompt_tokens=?, completion_tokens=?, "
              "cost_usd=?, status=? WHERE id=?");
  s.bind(1, m.content).bind(2, m.reasoning).bind(3, m.reasoning_seconds).bind(4, m.prompt_tokens)
      .bind(5, m.completion_tokens).bind(6, m.cost_usd).bind(7, m.status).bind(8, m.id).run();
}

bool Store::delete_message(const std::string& conversation_id, int64_t id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "DELETE FROM messages WHERE conversation_id = ? AND id = ?");
  s.bind(1, conversation_id).bind(2, id).run();
  return sqlite3_changes(db_) > 0;
}

std::vector<StoredMessage> Store::messages(const std::string& conversation_id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT id, conversation_id, role, content, reasoning, model, reasoning_seconds, prompt_tokens, "
              "completion_tokens, cost_usd, status, created, agent_json FROM messages WHERE conversation_id = ? ORDER BY id");
  s.bind(1, conversation_id);
  std::vector<StoredMessage> out;
  while (s.row()) {
    StoredMessage m;
    m.id = s.i64(0);
    m.conversation_id = s.text(1);
    m.role = s.text(2);
    m.content = s.text(3);
    m.reasoning = s.text(4);
    m.model = s.text(5);
    m.reasoning_seconds = s.f64(6);
    m.prompt_tokens = s.i64(7);
    m.completion_tokens = s.i64(8);
    m.cost_usd = s.f64(9);
    m.status = s.text(10);
    m.created = s.i64(11);
    m.agent_json = s.text(12);
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace baleine::server
