// agent/mcp_client.h — a Model Context Protocol client over stdio: starts the server as a child process, speaks
// newline-delimited JSON-RPC 2.0 on its stdin/stdout (initialize, tools/list, tools/call), applies timeouts
// (a late request is cancelled with notifications/cancelled), and shuts the child down cleanly (close stdin,
// then SIGTERM, then SIGKILL). Its tools can be exposed to the agent loop as RegisteredTools.
// defines: McpServerConfig, McpTool, McpCallResult, McpClient, mcp_registered_tools
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/builtin_tools.h"

namespace baleine::agent {

struct McpServerConfig {
  std::string name;                      // used to prefix tool names ("<name>__<tool>")
  std::vector<std::string> command;      // argv; command[0] is looked up in PATH
  std::vector<std::pair<std::string, std::string>> env;  // added to the environment
  std::chrono::milliseconds startup_timeout{10000};      // initialize handshake
  std::chrono::milliseconds call_timeout{10000};         // tools/call
  std::chrono::milliseconds shutdown_grace{2000};         // after closing stdin, before SIGTERM (and again before SIGKILL)
  size_t max_message_bytes = 4 << 20;    // a longer line from the server is an error
};

struct McpTool {
  std::string name, description;
  nlohmann::json input_schema;
};

struct McpCallResult {
  std::string text;               // the text parts joined with newlines
  nlohmann::json content;         // the raw content array
  nlohmann::json structured;      // structuredContent, when given
  bool is_error = false;
};

class McpClient {
 public:
  // Starts the server and performs the initialize handshake; throws baleine::Error (with the server's stderr
  // tail) when it cannot start, answers garbage, or does not answer in time.
  explicit McpClient(McpServerConfig config);
  ~McpClient();  // shutdown()
  McpClient(const McpClient&) = delete;
  McpClient& operator=(const McpClient&) = delete;

  const nlohmann::json& server_info() const { return server_info_; }  // initialize result
  const McpServerConfig& config() const { return config_; }
  std::vector<McpTool> list_tools();                                   // all pages
  // Throws on timeout (after cancelling), a JSON-RPC error, or a dead server. A tool failure is is_error = true.
  McpCallResult call_tool(const std::string& name, const nlohmann::json& arguments,
                          std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  bool alive() const;
  void shutdown();
  std::string stderr_tail() const;  // last few KiB the server wrote on stderr

 private:
  nlohmann::json request(const std::string& method, nlohmann::json params, std::chrono::milliseconds timeout);
  void notify(const std::string& method, nlohmann::json params);
  void send(const nlohmann::json& msg);
  void read_loop();
  void err_loop();
  void handle(nlohmann::json msg);

  McpServerConfig config_;
  int pid_ = -1, in_fd_ = -1, out_fd_ = -1, err_fd_ = -1;
  std::thread reader_, err_reader_;
  mutable std::mutex mu_;
  std::mutex write_mu_;
  std::condition_variable cv_;
  std::map<int64_t, nlohmann::json> responses_;
  int64_t next_id_ = 1;
  bool closed_ = false;  // the server's stdout ended
  std::string closed_reason_, stderr_;
  nlohmann::json server_info_;
};

// The server's tools as agent tools named "<config.name>__<tool>" (cut to 64 characters; characters outside
// [A-Za-z0-9_-] become '_'); tools whose schema the decoder cannot take are skipped and named in `skipped`.
std::vector<RegisteredTool> mcp_registered_tools(std::shared_ptr<McpClient> client, const std::string& prefix,
                                                 std::vector<std::string>* skipped = nullptr);

}  // namespace baleine::agent
