#include "server/mcp_hub.h"

#include <fstream>
#include <sstream>

#include "core/check.h"

namespace baleine::server {

using nlohmann::json;

McpHub McpHub::from_file(const std::string& path) {
  std::ifstream f(path);
  BALEINE_CHECK(f.good(), "--mcp-config {}: cannot read", path);
  std::stringstream ss;
  ss << f.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  BALEINE_CHECK(!j.is_discarded() && j.is_object(), "--mcp-config {}: not a JSON object", path);
  BALEINE_CHECK(j.contains("mcpServers") && j["mcpServers"].is_object(), "--mcp-config {}: 'mcpServers' must be an object", path);
  std::vector<agent::McpServerConfig> servers;
  for (auto& item : j["mcpServers"].items()) {
    const std::string label = item.key();  // not structured bindings: clang 14 cannot capture those in lambdas
    const nlohmann::json& s = item.value();
    const std::string where = fmt::format("--mcp-config {}: mcpServers.{}", path, label.substr(0, 64));
    BALEINE_CHECK(!label.empty() && label.size() <= 32 &&
                      label.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == std::string::npos,
                  "{}: labels are 1..32 characters of [A-Za-z0-9_-]", where);
    BALEINE_CHECK(s.is_object() && s.contains("command") && s["command"].is_string() && !s["command"].get<std::string>().empty(),
                  "{}.command: must be a non-empty string", where);
    agent::McpServerConfig c;
    c.name = label;
    c.command.push_back(s["command"]);
    if (s.contains("args")) {
      BALEINE_CHECK(s["args"].is_array(), "{}.args: must be an array of strings", where);
      for (const auto& a : s["args"]) {
        BALEINE_CHECK(a.is_string(), "{}.args: must be an array of strings", where);
        c.command.push_back(a);
      }
    }
    if (s.contains("env")) {
      BALEINE_CHECK(s["env"].is_object(), "{}.env: must be an object of strings", where);
      for (auto& [k, v] : s["env"].items()) {
        BALEINE_CHECK(v.is_string(), "{}.env.{}: must be a string", where, k);
        c.env.push_back({k, v});
      }
    }
    auto ms = [&](const char* key, std::chrono::milliseconds& out) {
      if (!s.contains(key)) return;
      BALEINE_CHECK(s[key].is_number_integer() && s[key].get<int64_t>() >= 1 && s[key].get<int64_t>() <= 600000,
                    "{}.{}: must be an integer in [1, 600000]", where, key);
      out = std::chrono::milliseconds(s[key].get<int64_t>());
    };
    ms("timeout_ms", c.call_timeout);
    ms("startup_timeout_ms", c.startup_timeout);
    servers.push_back(std::move(c));
  }
  return McpHub(std::move(servers));
}

McpHub::McpHub(std::vector<agent::McpServerConfig> servers) {
  for (auto& c : servers) {
    const std::string label = c.name;
    servers_[label].config = std::move(c);
  }
}

bool McpHub::has(const std::string& label) const { return servers_.count(label) > 0; }

std::vector<std::string> McpHub::labels() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : servers_) out.push_back(k);
  return out;
}

McpHub::ServerTools McpHub::tools(const std::string& label) {
  std::lock_guard lock(*mu_);
  auto it = servers_.find(label);
  BALEINE_CHECK(it != servers_.end(), "no MCP server labelled '{}' is configured", label.substr(0, 64));
  Entry& e = it->second;
  if (!e.client || !e.client->alive()) {
    e.client.reset();
    auto client = std::make_shared<agent::McpClient>(e.config);
    ServerTools st;
    st.listed = client->list_tools();
    st.tools = agent::mcp_registered_tools(client, label);
    e.client = client;
    e.cached = std::move(st);
  }
  return e.cached;
}

}  // namespace baleine::server
