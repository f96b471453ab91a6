// server/mcp_hub.h — the MCP servers an operator configured for `baleine serve --mcp-config FILE` (stdio commands
// come only from that file, never from an HTTP request). Requests name a server by its label ({"type":"mcp",
// "server_label":...} on /v1/responses, or an assistant's mcp_servers); each server is started on first use,
// kept running for later requests, and restarted when it died.
// File format (the common "mcpServers" shape):
//   {"mcpServers": {"files": {"command": "node", "args": ["server.mjs"], "env": {"K": "V"},
//                             "timeout_ms": 10000, "startup_timeout_ms": 10000}}}
// defines: McpHub
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/mcp_client.h"

namespace baleine::server {

class McpHub {
 public:
  McpHub() = default;
  // Reads and validates the file; throws baleine::Error naming the file and field.
  static McpHub from_file(const std::string& path);
  explicit McpHub(std::vector<agent::McpServerConfig> servers);
  McpHub(McpHub&&) = default;
  McpHub& operator=(McpHub&&) = default;

  bool has(const std::string& label) const;
  std::vector<std::string> labels() const;
  struct ServerTools {
    std::vector<agent::McpTool> listed;          // as the server listed them (for mcp_list_tools items)
    std::vector<agent::RegisteredTool> tools;    // as agent tools "<label>__<tool>", calls with the server's timeout
  };
  // Starts the server when needed (throws baleine::Error with its stderr when it cannot start); thread-safe.
  ServerTools tools(const std::string& label);

 private:
  struct Entry {
    agent::McpServerConfig config;
    std::shared_ptr<agent::McpClient> client;
    ServerTools cached;
  };
  std::map<std::string, Entry> servers_;
  std::unique_ptr<std::mutex> mu_ = std::make_unique<std::mutex>();
};

}  // namespace baleine::server
