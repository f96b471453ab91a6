// agent/sqlite_util.h — internal: a prepared-statement wrapper and exec() for the SQLite-backed stores.
// defines: Stmt, sqlite_exec, sqlite_open
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/check.h"

namespace baleine::agent {

// One prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    BALEINE_CHECK(sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) == SQLITE_OK, "sqlite: {} ({})", sqlite3_errmsg(db), sql);
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt& text(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& integer(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& blob(int i, const void* p, size_t n) {
    sqlite3_bind_blob(s_, i, p, int(n), SQLITE_TRANSIENT);
    return *this;
  }
  bool step() {
    int rc = sqlite3_step(s_);
    BALEINE_CHECK(rc == SQLITE_ROW || rc == SQLITE_DONE, "sqlite: {}", sqlite3_errmsg(db_));
    return rc == SQLITE_ROW;
  }
  int64_t col_int(int i) const { return sqlite3_column_int64(s_, i); }
  double col_double(int i) const { return sqlite3_column_double(s_, i); }
  std::string col_text(int i) const {
    const unsigned char* p = sqlite3_column_text(s_, i);
    return p ? std::string(reinterpret_cast<const char*>(p), size_t(sqlite3_column_bytes(s_, i))) : std::string();
  }
  std::vector<float> col_floats(int i) const {
    const void* p = sqlite3_column_blob(s_, i);
    const size_t n = size_t(sqlite3_column_bytes(s_, i)) / sizeof(float);
    std::vector<float> v(n);
    if (n) std::memcpy(v.data(), p, n * sizeof(float));
    return v;
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

inline void sqlite_exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    BALEINE_FAIL("sqlite: {} ({})", msg, sql);
  }
}

// Opens (creating) a database with a busy timeout, WAL journaling for files, and foreign keys on.
inline sqlite3* sqlite_open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    BALEINE_FAIL("cannot open database '{}': {}", path, msg);
  }
  sqlite3_busy_timeout(db, 5000);
  if (path != ":memory:") sqlite_exec(db, "PRAGMA journal_mode = WAL");
  sqlite_exec(db, "PRAGMA foreign_keys = ON");
  return db;
}

}  // namespace baleine::agent
