#include "agent/stores.h"

#include <fmt/format.h>

#include <chrono>
#include <random>

#include "agent/sqlite_util.h"
#include "agent/tools.h"
#include "core/check.h"

namespace baleine::agent {

using nlohmann::json;

namespace {

std::string new_id(const std::string& prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char kAlnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += kAlnum[rng() % 62];
  return id;
}

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string text_field(const json& body, const char* key, size_t max_bytes, const std::string& current) {
  if (!body.contains(key) || body[key].is_null()) return current;
  BALEINE_CHECK(body[key].is_string(), "{}: must be a string", key);
  const std::string v = body[key].get<std::string>();
  BALEINE_CHECK(v.size() <= max_bytes, "{}: longer than {} bytes", key, max_bytes);
  return v;
}

// An MCP server named by the label the server operator configured (serve --mcp-config): {"server_label": ...}
// (also {"type":"mcp", ...} in tools). Commands never come from a request.
void check_mcp_reference(const json& m, const std::string& where) {
  BALEINE_CHECK(m.is_object() && m.contains("server_label") && m["server_label"].is_string() &&
                    !m["server_label"].get<std::string>().empty() && m["server_label"].get<std::string>().size() <= 64,
                "{}.server_label: must be the label of an MCP server configured on the server (serve --mcp-config)", where);
  BALEINE_CHECK(!m.contains("command") && !m.contains("server_url"),
                "{}: MCP servers are configured on the server (serve --mcp-config) and referenced by server_label; "
                "commands and URLs are not accepted from requests", where);
  if (m.contains("allowed_tools")) {
    BALEINE_CHECK(m["allowed_tools"].is_array() && m["allowed_tools"].size() <= 128, "{}.allowed_tools: must be an array of tool names", where);
    for (const auto& t : m["allowed_tools"]) BALEINE_CHECK(t.is_string(), "{}.allowed_tools: must be an array of tool names", where);
  }
}

Assistant row_to_assistant(const Stmt& s) {
  Assistant a;
  a.id = s.col_text(0);
  a.created_at = s.col_int(1);
  a.owner = s.col_int(3);
  json j = json::parse(s.col_text(2));
  a.name = j.value("name", "");
  a.description = j.value("description", "");
  a.instructions = j.value("instructions", "");
  a.model = j.value("model", "");
  a.tools = j.value("tools", json::array());
  a.sampling = j.value("sampling", json::object());
  a.mcp_servers = j.value("mcp_servers", json::array());
  a.metadata = j.value("metadata", json::object());
  a.tool_choice = j.value("tool_choice", json());
  a.grounded_quotes = j.value("grounded_quotes", json());
  a.quote_search = j.value("quote_search", json());
  return a;
}

const char* builtin_tool_name(const std::string& type) {
  if (type == "file_search") return "search_documents";
  if (type == "calculator") return "calculator";
  if (type == "current_datetime") return "current_datetime";
  return nullptr;
}

}  // namespace

json loop_tool_choice(const json& choice) {
  if (!choice.is_object() || !choice.contains("type") || !choice["type"].is_string()) return choice;
  const std::string type = choice["type"];
  if (const char* name = builtin_tool_name(type)) return {{"type", "function"}, {"function", {{"name", name}}}};
  if (type == "function" && !choice.contains("function") && choice.contains("name"))
    return {{"type", "function"}, {"function", {{"name", choice["name"]}}}};
  return choice;
}

json Assistant::to_openai() const {
  json j = {{"id", id}, {"object", "assistant"}, {"created_at", created_at}, {"name", name}, {"description", description},
            {"instructions", instructions}, {"model", model}, {"tools", tools}, {"metadata", metadata},
            {"mcp_servers", mcp_servers}, {"tool_choice", tool_choice}, {"grounded_quotes", grounded_quotes},
            {"quote_search", quote_search}};
  for (auto& [k, v] : sampling.items()) j[k] = v;
  return j;
}

AssistantStore::AssistantStore(const std::string& path) : db_(sqlite_open(path)) {
  sqlite_exec(db_, "CREATE TABLE IF NOT EXISTS assistants(id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, data TEXT NOT NULL,"
                   " owner INTEGER NOT NULL DEFAULT 0)");
  // Databases from before per-key ownership: their assistants belong to "no key" (owner 0).
  bool has_owner = false;
  {
    Stmt s(db_, "PRAGMA table_info(assistants)");
    while (s.step()) has_owner = has_owner || s.col_text(1) == "owner";
  }
  if (!has_owner) sqlite_exec(db_, "ALTER TABLE assistants ADD COLUMN owner INTEGER NOT NULL DEFAULT 0");
  sqlite_exec(db_, "CREATE TABLE IF NOT EXISTS assistant_documents(assistant_id TEXT NOT NULL REFERENCES assistants(id) ON DELETE CASCADE,"
                   " name TEXT NOT NULL, text TEXT NOT NULL, PRIMARY KEY(assistant_id, name))");
}

AssistantStore::~AssistantStore() { sqlite3_close(db_); }

Assistant AssistantStore::validated(Assistant a, const json& body) const {
  BALEINE_CHECK(body.is_object(), "the request body must be a JSON object");
  a.name = text_field(body, "name", 256, a.name);
  a.description = text_field(body, "description", 512, a.description);
  a.instructions = text_field(body, "instructions", 256000, a.instructions);
  a.model = text_field(body, "model", 256, a.model);
  if (body.contains("tools") && !body["tools"].is_null()) {
    const json& tools = body["tools"];
    BALEINE_CHECK(tools.is_array() && tools.size() <= 128, "tools: must be an array of at most 128 tools");
    json functions = json::array();
    for (size_t i = 0; i < tools.size(); ++i) {
      BALEINE_CHECK(tools[i].is_object() && tools[i].contains("type") && tools[i]["type"].is_string(), "tools[{}].type: missing", i);
      const std::string type = tools[i]["type"].get<std::string>();
      if (type == "function") functions.push_back(tools[i]);
      else if (type == "mcp") check_mcp_reference(tools[i], fmt::format("tools[{}]", i));
      else BALEINE_CHECK(type == "calculator" || type == "current_datetime" || type == "file_search",
                         "tools[{}].type: '{}' is not function, calculator, current_datetime, file_search or mcp", i, type.substr(0, 40));
    }
    parse_tools(functions);  // throws with the field named
    a.tools = tools;
  }
  static const char* kSampling[] = {"temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty"};
  for (const char* k : kSampling) {
    if (!body.contains(k)) continue;
    if (body[k].is_null()) {
      a.sampling.erase(k);
      continue;
    }
    BALEINE_CHECK(body[k].is_number(), "{}: must be a number", k);
    const double v = body[k].get<double>();
    if (std::string(k) == "temperature") BALEINE_CHECK(v >= 0 && v <= 2, "temperature: must be in [0, 2]");
    if (std::string(k) == "top_p") BALEINE_CHECK(v > 0 && v <= 1, "top_p: must be in (0, 1]");
    if (std::string(k) == "max_tokens") BALEINE_CHECK(body[k].is_number_integer() && v >= 1, "max_tokens: must be a positive integer");
    if (std::string(k).find("penalty") != std::string::npos) BALEINE_CHECK(v >= -2 && v <= 2, "{}: must be in [-2, 2]", k);
    a.sampling[k] = body[k];
  }
  if (body.contains("tool_choice")) a.tool_choice = body["tool_choice"];
  if (!a.tool_choice.is_null()) {  // checked against the tools (which this body may have changed)
    const json c = loop_tool_choice(a.tool_choice);
    if (c.is_string()) {
      const std::string v = c.get<std::string>();
      BALEINE_CHECK(v == "auto" || v == "none" || v == "required", "tool_choice: '{}' is not auto, none, required or a tool", v.substr(0, 40));
      BALEINE_CHECK(v != "required" || !a.tools.empty(), "tool_choice: 'required' needs tools");
    } else {
      BALEINE_CHECK(c.is_object() && c.value("type", "") == "function" && c.contains("function") && c["function"].is_object() &&
                        c["function"].contains("name") && c["function"]["name"].is_string(),
                    "tool_choice: must be auto, none, required, {{\"type\":\"file_search\"}} (calculator, current_datetime) or "
                    "{{\"type\":\"function\",\"name\":...}}");
      const std::string name = c["function"]["name"];
      bool found = false;
      for (const auto& t : a.tools) {
        const std::string type = t.value("type", "");
        const char* builtin = builtin_tool_name(type);
        found = found || (builtin && name == builtin) ||
                (type == "function" && t.contains("function") && t["function"].value("name", "") == name);
      }
      BALEINE_CHECK(found, "tool_choice: '{}' is not among the assistant's tools", name.substr(0, 80));
    }
  }
  if (body.contains("mcp_servers") && !body["mcp_servers"].is_null()) {
    const json& m = body["mcp_servers"];
    BALEINE_CHECK(m.is_array() && m.size() <= 8, "mcp_servers: must be an array of at most 8 servers");
    for (size_t i = 0; i < m.size(); ++i) check_mcp_reference(m[i], fmt::format("mcp_servers[{}]", i));
    a.mcp_servers = m;
  }
  for (const char* k : {"grounded_quotes", "quote_search"}) {
    if (!body.contains(k)) continue;
    BALEINE_CHECK(body[k].is_null() || body[k].is_boolean(), "{}: must be true, false or null", k);
    (std::string(k) == "grounded_quotes" ? a.grounded_quotes : a.quote_search) = body[k];
  }
  if (body.contains("metadata") && !body["metadata"].is_null()) {
    const json& md = body["metadata"];
    BALEINE_CHECK(md.is_object() && md.size() <= 16, "metadata: must be an object of at most 16 keys");
    for (auto& [k, v] : md.items())
      BALEINE_CHECK(k.size() <= 64 && v.is_string() && v.get_ref<const std::string&>().size() <= 512,
                    "metadata: keys up to 64 bytes, values strings up to 512 bytes");
    a.metadata = md;
  }
  return a;
}

void AssistantStore::save(const Assistant& a) {
  json data = {{"name", a.name}, {"description", a.description}, {"instructions", a.instructions}, {"model", a.model},
               {"tools", a.tools}, {"sampling", a.sampling}, {"mcp_servers", a.mcp_servers}, {"metadata", a.metadata},
               {"tool_choice", a.tool_choice}, {"grounded_quotes", a.grounded_quotes}, {"quote_search", a.quote_search}};
  // An upsert, not INSERT OR REPLACE: a replace deletes the row first and would cascade to its documents.
  Stmt(db_, "INSERT INTO assistants(id, created_at, data, owner) VALUES(?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET data = excluded.data")
      .text(1, a.id).integer(2, a.created_at).text(3, data.dump()).integer(4, a.owner).step();
}

Assistant AssistantStore::create(const json& body, int64_t owner) {
  Assistant a = validated(Assistant{}, body);
  a.owner = owner;
  a.id = new_id("asst_");
  a.created_at = now_seconds();
  std::lock_guard lock(mu_);
  save(a);
  return a;
}

std::optional<Assistant> AssistantStore::get(const std::string& id) const {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT id, created_at, data, owner FROM assistants WHERE id = ?");
  s.text(1, id);
  if (!s.step()) return std::nullopt;
  return row_to_assistant(s);
}

std::optional<Assistant> AssistantStore::update(const std::string& id, const json& body) {
  auto cur = get(id);
  if (!cur) return std::nullopt;
  Assistant a = validated(*cur, body);
  std::lock_guard lock(mu_);
  save(a);
  return a;
}

bool AssistantStore::remove(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt(db_, "DELETE FROM assistants WHERE id = ?").text(1, id).step();
  return sqlite3_changes(db_) > 0;
}

std::vector<Assistant> AssistantStore::list(int limit, const std::string& after, std::optional<int64_t> owner) const {
  // 101: a page of 100 plus one row to tell whether there are more (/v1/assistants?limit=100 asks for that).
  BALEINE_CHECK(limit >= 1 && limit <= 101, "limit: must be 1..101");
  std::lock_guard lock(mu_);
  std::vector<Assistant> out;
  // ?1: the owner filter (NULL: every owner), ?2: the cursor id ("": from the start).
  Stmt s(db_, "SELECT id, created_at, data, owner FROM assistants WHERE (?1 IS NULL OR owner = ?1) AND"
              " (?2 = '' OR (created_at, id) < (SELECT created_at, id FROM assistants WHERE id = ?2))"
              " ORDER BY created_at DESC, id DESC LIMIT ?3");
  if (owner) s.integer(1, *owner);
  s.text(2, after).integer(3, limit);
  while (s.step()) out.push_back(row_to_assistant(s));
  return out;
}

void AssistantStore::put_document(const std::string& assistant_id, const std::string& name, const std::string& text) {
  BALEINE_CHECK(!name.empty() && name.size() <= 256, "document name must be 1 to 256 bytes");
  BALEINE_CHECK(text.size() <= (size_t(16) << 20), "document '{}' is larger than 16 MiB", name.substr(0, 64));
  BALEINE_CHECK(get(assistant_id).has_value(), "no assistant '{}'", assistant_id.substr(0, 64));
  std::lock_guard lock(mu_);
  Stmt(db_, "INSERT OR REPLACE INTO assistant_documents(assistant_id, name, text) VALUES(?, ?, ?)")
      .text(1, assistant_id).text(2, name).text(3, text).step();
}

std::vector<std::pair<std::string, std::string>> AssistantStore::documents(const std::string& assistant_id) const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, std::string>> out;
  Stmt s(db_, "SELECT name, text FROM assistant_documents WHERE assistant_id = ? ORDER BY name");
  s.text(1, assistant_id);
  while (s.step()) out.push_back({s.col_text(0), s.col_text(1)});
  return out;
}

bool AssistantStore::remove_document(const std::string& assistant_id, const std::string& name) {
  std::lock_guard lock(mu_);
  Stmt(db_, "DELETE FROM assistant_documents WHERE assistant_id = ? AND name = ?").text(1, assistant_id).text(2, name).step();
  return sqlite3_changes(db_) > 0;
}

json messages_to_json(const std::vector<ChatMessage>& messages) {
  json out = json::array();
  for (const auto& m : messages) {
    json j = {{"role", m.role}, {"content", m.content}, {"has_content", m.has_content}};
    if (!m.tool_calls.empty()) {
      j["tool_calls"] = json::array();
      for (const auto& c : m.tool_calls)
        j["tool_calls"].push_back({{"id", c.id}, {"type", c.type}, {"name", c.name}, {"arguments", c.arguments}});
    }
    out.push_back(j);
  }
  return out;
}

std::vector<ChatMessage> messages_from_json(const json& j) {
  std::vector<ChatMessage> out;
  for (const auto& m : j) {
    ChatMessage c;
    c.role = m.value("role", "");
    c.content = m.value("content", "");
    c.has_content = m.value("has_content", true);
    if (m.contains("tool_calls"))
      for (const auto& t : m["tool_calls"])
        c.tool_calls.push_back({t.value("id", ""), t.value("type", "function"), t.value("name", ""), t.value("arguments", "{}")});
    out.push_back(std::move(c));
  }
  return out;
}

ResponseStore::ResponseStore(const std::string& path) : db_(sqlite_open(path)) {
  sqlite_exec(db_, "CREATE TABLE IF NOT EXISTS responses(id TEXT PRIMARY KEY, previous_id TEXT NOT NULL, created_at INTEGER NOT NULL,"
                   " input TEXT NOT NULL, output TEXT NOT NULL, response TEXT NOT NULL)");
}

ResponseStore::~ResponseStore() { sqlite3_close(db_); }

std::string ResponseStore::save(StoredResponse r) {
  std::lock_guard lock(mu_);
  if (!r.previous_id.empty()) {
    Stmt s(db_, "SELECT 1 FROM responses WHERE id = ?");
    s.text(1, r.previous_id);
    BALEINE_CHECK(s.step(), "previous_response_id: no stored response '{}'", r.previous_id.substr(0, 64));
  }
  r.id = new_id("resp_");
  if (!r.created_at) r.created_at = now_seconds();
  Stmt(db_, "INSERT INTO responses(id, previous_id, created_at, input, output, response) VALUES(?, ?, ?, ?, ?, ?)")
      .text(1, r.id).text(2, r.previous_id).integer(3, r.created_at).text(4, messages_to_json(r.input).dump())
      .text(5, messages_to_json(r.output).dump()).text(6, r.response.dump()).step();
  return r.id;
}

std::optional<StoredResponse> ResponseStore::get(const std::string& id) const {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT id, previous_id, created_at, input, output, response FROM responses WHERE id = ?");
  s.text(1, id);
  if (!s.step()) return std::nullopt;
  StoredResponse r;
  r.id = s.col_text(0);
  r.previous_id = s.col_text(1);
  r.created_at = s.col_int(2);
  r.input = messages_from_json(json::parse(s.col_text(3)));
  r.output = messages_from_json(json::parse(s.col_text(4)));
  r.response = json::parse(s.col_text(5));
  return r;
}

bool ResponseStore::remove(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt(db_, "DELETE FROM responses WHERE id = ?").text(1, id).step();
  return sqlite3_changes(db_) > 0;
}

std::vector<ChatMessage> ResponseStore::conversation(const std::string& id, size_t max_chain) const {
  std::vector<StoredResponse> chain;
  std::string cur = id;
  while (!cur.empty()) {
    BALEINE_CHECK(chain.size() < max_chain, "previous_response_id: the chain is longer than {} responses", max_chain);
    auto r = get(cur);
    BALEINE_CHECK(r.has_value(), "previous_response_id: no stored response '{}'", cur.substr(0, 64));
    cur = r->previous_id;
    chain.push_back(std::move(*r));
  }
  std::vector<ChatMessage> out;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    out.insert(out.end(), it->input.begin(), it->input.end());
    out.insert(out.end(), it->output.begin(), it->output.end());
  }
  return out;
}

}  // namespace baleine::agent
