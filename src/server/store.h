// server/store.h — what the server keeps on disk, in one SQLite database in WAL mode: API keys (SHA-256 hashes
// only), a usage ledger per key, and the web chat's conversations and messages. Every write is its own committed
// transaction (synchronous=FULL), so a SIGKILL loses nothing that was acknowledged. Thread-safe (one connection
// behind a mutex; SQLite's busy timeout covers the `baleine keys` CLI writing concurrently).
// defines: sha256_hex, ApiKey, LedgerEntry, Conversation, StoredMessage, Store
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace baleine::server {

std::string sha256_hex(const std::string& data);

struct ApiKey {
  int64_t id = 0;
  std::string name, prefix;       // prefix: the first characters, to recognise a key in listings
  int64_t created = 0;            // unix seconds
  bool revoked = false;
  int64_t rpm = 0, tpm = 0;       // requests / tokens per minute; 0: the server's default
};

struct LedgerEntry {
  int64_t id = 0, key_id = 0;     // key_id 0: no key (open server)
  int64_t ts = 0;
  std::string endpoint, model, status;  // status: running | done | cancelled | error
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0, reasoning_tokens = 0;
  double cost_usd = 0;
};

struct Conversation {
  std::string id, title, model, system_prompt;
  int64_t key_id = 0;             // owner: the API key that created it (0: open server); others never see it
  double temperature = 0.7;
  int64_t created = 0, updated = 0;
  std::string assistant_id;       // "" or the /v1/assistants id the conversation talks to (through /v1/responses)
};

struct StoredMessage {
  int64_t id = 0;
  std::string conversation_id, role, content, reasoning, model;
  double reasoning_seconds = 0;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  double cost_usd = 0;
  std::string status = "done";    // streaming | done | stopped | error
  // Assistant answers: the agent steps shown as tool cards and the answer's citations, as JSON
  // {"tool_steps":[...],"citations":[...]} ("" for plain chat answers).
  std::string agent_json;
  int64_t created = 0;
};

// The database `serve` and `keys` use when no --db is given, so that keys made by one protect the other:
// $BALEINE_DB, else $XDG_DATA_HOME/baleine/baleine.db, else ~/.local/share/baleine/baleine.db (the folder is made).
std::string default_db_path();

class Store {
 public:
  explicit Store(const std::string& path);  // creates the file and tables if needed
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Keys. create_key returns the secret once ("sk-..."); only its hash is kept.
  std::string create_key(const std::string& name, int64_t rpm, int64_t tpm, ApiKey* out = nullptr);
  std::vector<ApiKey> list_keys();
  bool revoke_key(const std::string& id_or_name);
  bool any_active_key();
  std::optional<ApiKey> find_key(const std::string& secret);  // active keys only

  // Ledger: a row at admission (status running), completed at the end.
  int64_t ledger_begin(int64_t key_id, const std::string& endpoint, const std::string& model, int64_t prompt_tokens);
  void ledger_end(int64_t id, const LedgerEntry& e);
  std::vector<LedgerEntry> ledger(int64_t key_id, int64_t limit);  // key_id < 0: all

  // Conversations.
  Conversation create_conversation(const Conversation& c);
  std::vector<Conversation> list_conversations(int64_t key_id);
  std::optional<Conversation> get_conversation(const std::string& id);
  bool update_conversation(const Conversation& c);
  bool delete_conversation(const std::string& id);
  int64_t add_message(const StoredMessage& m);
  void update_message(const StoredMessage& m);
  bool delete_message(const std::string& conversation_id, int64_t id);
  std::vector<StoredMessage> messages(const std::string& conversation_id);

  // At server start: messages still 'streaming' and ledger rows still 'running' were cut off by the previous
  // process (kill -9, power loss); they become 'interrupted'. Returns how many messages were.
  int64_t mark_interrupted();

  const std::string& path() const { return path_; }

 private:
  void exec(const char* sql);
  void add_column_if_missing(const std::string& table, const std::string& column, const std::string& decl);
  std::string path_;
  sqlite3* db_ = nullptr;
  std::mutex mu_;
};

}  // namespace baleine::server
