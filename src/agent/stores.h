// agent/stores.h — server-side state in SQLite, ready for /v1/assistants and /v1/responses: assistants (name,
// instructions, model, tools, sampling settings, attached documents) and stored responses chained by
// previous_response_id. Requests are validated here with messages fit for a 400 reply.
// defines: Assistant, AssistantStore, messages_to_json, messages_from_json, StoredResponse, ResponseStore
#pragma once
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/chat_template.h"

struct sqlite3;

namespace baleine::agent {

struct Assistant {
  std::string id;           // "asst_" + 24 alphanumerics
  int64_t created_at = 0;   // unix seconds
  int64_t owner = 0;        // id of the API key that created it (0: none); the server shows it only to that key
  std::string name, description, instructions, model;
  // OpenAI-style tools: {"type":"function","function":{...}} (validated by parse_tools) or built-in tools
  // {"type":"calculator"} | {"type":"current_datetime"} | {"type":"file_search"} (retrieval over the documents;
  // "ranking_options": {"ranker": "hybrid"} fuses dense similarity) | {"type":"mcp","server_label":...}.
  nlohmann::json tools = nlohmann::json::array();
  nlohmann::json sampling = nlohmann::json::object();  // temperature, top_p, max_tokens, presence/frequency_penalty
  // tool_choice of the first agent step: null (auto), "auto", "none", "required", a built-in tool
  // {"type":"file_search"|"calculator"|"current_datetime"} or {"type":"function","name":...} (or the chat-completions
  // shape {"type":"function","function":{"name":...}}); a named tool must be among `tools`.
  nlohmann::json tool_choice;
  // [{"server_label": ..., "allowed_tools"?: [...]}]: servers the operator configured (serve --mcp-config)
  nlohmann::json mcp_servers = nlohmann::json::array();
  nlohmann::json metadata = nlohmann::json::object();  // string -> string, at most 16 keys
  // Grounded quotes and quote search in this assistant's agent loop (agent/grounding.h, agent/quote_search.h):
  // true / false, or null for the server's default (serve --grounded-quotes, --quote-search); a request's own
  // fields override them.
  nlohmann::json grounded_quotes, quote_search;
  nlohmann::json to_openai() const;  // {"id","object":"assistant","created_at",...}
};

// Thread-safe. One database file (or ":memory:").
class AssistantStore {
 public:
  explicit AssistantStore(const std::string& path);
  ~AssistantStore();
  AssistantStore(const AssistantStore&) = delete;
  AssistantStore& operator=(const AssistantStore&) = delete;

  // From an OpenAI create-assistant body; throws baleine::Error naming the field.
  Assistant create(const nlohmann::json& body, int64_t owner = 0);
  // Fields present in `body` replace the stored ones (same validation). nullopt: no such assistant.
  std::optional<Assistant> update(const std::string& id, const nlohmann::json& body);
  std::optional<Assistant> get(const std::string& id) const;
  bool remove(const std::string& id);  // its documents go with it
  // Newest first; `after`: continue after this id (pagination); limit 1..101 (a page of 100 and one more).
  // owner: only that key's assistants (nullopt: everyone's).
  std::vector<Assistant> list(int limit = 20, const std::string& after = "", std::optional<int64_t> owner = std::nullopt) const;

  // Attached documents (the text retrieval indexes). Name 1..256 bytes; replaces a document of that name.
  void put_document(const std::string& assistant_id, const std::string& name, const std::string& text);
  std::vector<std::pair<std::string, std::string>> documents(const std::string& assistant_id) const;  // (name, text)
  bool remove_document(const std::string& assistant_id, const std::string& name);

 private:
  Assistant validated(Assistant a, const nlohmann::json& body) const;
  void save(const Assistant& a);
  sqlite3* db_ = nullptr;
  mutable std::mutex mu_;
};

// An assistant's (or a /v1/responses request's) tool_choice in the shape parse_tool_choice reads: built-in tool types
// become the names the server registers them under (file_search -> search_documents), Responses-style
// {"type":"function","name":...} becomes {"type":"function","function":{"name":...}}; anything else is returned as is.
nlohmann::json loop_tool_choice(const nlohmann::json& choice);

nlohmann::json messages_to_json(const std::vector<ChatMessage>& messages);
std::vector<ChatMessage> messages_from_json(const nlohmann::json& j);

struct StoredResponse {
  std::string id;             // "resp_" + 24 alphanumerics
  std::string previous_id;    // "" for the first of a chain
  int64_t created_at = 0;
  std::vector<ChatMessage> input;   // the messages this request added (instructions are not stored here)
  std::vector<ChatMessage> output;  // what the model answered (assistant and tool messages)
  nlohmann::json response;          // the response object as returned to the client
};

// Thread-safe store of Responses-API state: a request with previous_response_id continues the conversation
// made of every earlier input and output in the chain.
class ResponseStore {
 public:
  explicit ResponseStore(const std::string& path);
  ~ResponseStore();
  ResponseStore(const ResponseStore&) = delete;
  ResponseStore& operator=(const ResponseStore&) = delete;

  // Stores a response; its id is assigned here (the `id` field of `r` is ignored) and returned. Throws when
  // previous_id names no stored response.
  std::string save(StoredResponse r);
  std::optional<StoredResponse> get(const std::string& id) const;
  bool remove(const std::string& id);  // later responses of the chain keep their own messages
  // Every input and output message from the start of the chain up to and including `id`, in order. Throws
  // baleine::Error (400) when id is unknown; chains longer than max_chain are refused.
  std::vector<ChatMessage> conversation(const std::string& id, size_t max_chain = 1000) const;

 private:
  sqlite3* db_ = nullptr;
  mutable std::mutex mu_;
};

}  // namespace baleine::agent
