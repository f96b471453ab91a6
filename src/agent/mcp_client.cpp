#include "agent/mcp_client.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/check.h"

extern char** environ;

namespace baleine::agent {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {
constexpr const char* kProtocolVersion = "2025-06-18";
constexpr size_t kStderrKeep = 8192;

bool wait_exit(int pid, std::chrono::milliseconds within) {
  const auto end = Clock::now() + within;
  for (;;) {
    int status = 0;
    const int r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    if (Clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}
}  // namespace

McpClient::McpClient(McpServerConfig config) : config_(std::move(config)) {
  BALEINE_CHECK(!config_.command.empty(), "MCP server '{}': no command", config_.name);
  int in[2], out[2], err[2];
  BALEINE_CHECK(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0, "pipe: {}", std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);  // its own group: signals reach its children too
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) envs.push_back(*e);
  for (const auto& [k, v] : config_.env) envs.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (auto& a : config_.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : envs) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const int rc = posix_spawnp(&pid_, argv[0], &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  in_fd_ = in[1];
  out_fd_ = out[0];
  err_fd_ = err[0];
  if (rc != 0) {
    close(in_fd_), close(out_fd_), close(err_fd_);
    pid_ = -1;
    BALEINE_FAIL("MCP server '{}': cannot start '{}': {}", config_.name, config_.command[0], std::strerror(rc));
  }
  signal(SIGPIPE, SIG_IGN);  // a dead server must give EPIPE, not kill us
  reader_ = std::thread([this] { read_loop(); });
  err_reader_ = std::thread([this] { err_loop(); });
  try {
    server_info_ = request("initialize",
                           {{"protocolVersion", kProtocolVersion},
                            {"capabilities", json::object()},
                            {"clientInfo", {{"name", "baleine"}, {"version", "0.1.0"}}}},
                           config_.startup_timeout);
    BALEINE_CHECK(server_info_.is_object() && server_info_.contains("protocolVersion"),
                  "MCP server '{}': initialize answered without a protocolVersion", config_.name);
    notify("notifications/initialized", json::object());
  } catch (...) {
    shutdown();
    throw;
  }
}

McpClient::~McpClient() { shutdown(); }

void McpClient::send(const json& msg) {
  std::string line = msg.dump() + "\n";
  std::lock_guard lock(write_mu_);
  BALEINE_CHECK(in_fd_ >= 0, "MCP server '{}' is shut down", config_.name);
  for (size_t off = 0; off < line.size();) {
    const ssize_t n = write(in_fd_, line.data() + off, line.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      std::string tail = stderr_tail();
      if (tail.size() > 400) tail = tail.substr(tail.size() - 400);
      BALEINE_FAIL("MCP server '{}': {}{}", config_.name,
                   e == EPIPE ? std::string("the server exited (its input is closed)") : std::string("write failed: ") + std::strerror(e),
                   tail.empty() ? "" : "; its stderr: " + tail);
    }
    off += size_t(n);
  }
}

void McpClient::notify(const std::string& method, json params) {
  send({{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}});
}

json McpClient::request(const std::string& method, json params, std::chrono::milliseconds timeout) {
  int64_t id;
  {
    std::lock_guard lock(mu_);
    id = next_id_++;
  }
  send({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}});
  std::unique_lock lock(mu_);
  const bool got = cv_.wait_for(lock, timeout, [&] { return responses_.count(id) || closed_; });
  if (!responses_.count(id)) {
    const std::string why = got ? "the server exited (" + closed_reason_ + ")" : "no answer within " + std::to_string(timeout.count()) + " ms";
    const std::string tail = stderr_.size() > 400 ? stderr_.substr(stderr_.size() - 400) : stderr_;
    lock.unlock();
    if (!got) {
      try {
        notify("notifications/cancelled", {{"requestId", id}, {"reason", "timeout"}});
      } catch (const Error&) {
      }
    }
    BALEINE_FAIL("MCP server '{}': {} to {}{}", config_.name, why, method, tail.empty() ? "" : "; its stderr: " + tail);
  }
  json r = std::move(responses_[id]);
  responses_.erase(id);
  lock.unlock();
  if (r.contains("error")) {
    const json& e = r["error"];
    BALEINE_FAIL("MCP server '{}': {} failed: {} (code {})", config_.name, method,
                 e.is_object() ? e.value("message", std::string("?")) : e.dump(), e.is_object() ? e.value("code", 0) : 0);
  }
  return r.value("result", json::object());
}

void McpClient::handle(json msg) {
  if (!msg.is_object()) return;
  if (msg.contains("method")) {
    // A request from the server: we offer no client features; answer ping, refuse the rest.
    if (!msg.contains("id")) return;  // a notification (progress, log, list_changed)
    const std::string m = msg["method"].is_string() ? msg["method"].get<std::string>() : "";
    if (m == "ping") send({{"jsonrpc", "2.0"}, {"id", msg["id"]}, {"result", json::object()}});
    else send({{"jsonrpc", "2.0"}, {"id", msg["id"]}, {"error", {{"code", -32601}, {"message", "method not supported by baleine"}}}});
    return;
  }
  if (!msg.contains("id") || !msg["id"].is_number_integer()) return;
  const int64_t id = msg["id"].get<int64_t>();  // first: json's operator= takes its argument by value
  std::lock_guard lock(mu_);
  responses_[id] = std::move(msg);
  cv_.notify_all();
}

void McpClient::read_loop() {
  std::string buf;
  char chunk[65536];
  std::string reason = "end of output";
  for (;;) {
    const ssize_t n = read(out_fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(chunk, size_t(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (line.empty() || line == "\r") continue;
      json msg = json::parse(line, nullptr, false);
      if (msg.is_discarded()) continue;  // not JSON-RPC: ignore (servers must not, but some print banners)
      try {
        handle(std::move(msg));
      } catch (const std::exception&) {
      }
    }
    if (buf.size() > config_.max_message_bytes) {
      reason = "a message longer than " + std::to_string(config_.max_message_bytes) + " bytes";
      break;
    }
  }
  std::lock_guard lock(mu_);
  closed_ = true;
  closed_reason_ = reason;
  cv_.notify_all();
}

void McpClient::err_loop() {
  char chunk[4096];
  for (;;) {
    const ssize_t n = read(err_fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::lock_guard lock(mu_);
    stderr_.append(chunk, size_t(n));
    if (stderr_.size() > 2 * kStderrKeep) stderr_.erase(0, stderr_.size() - kStderrKeep);
  }
}

std::vector<McpTool> McpClient::list_tools() {
  std::vector<McpTool> out;
  json cursor;
  for (int page = 0; page < 100; ++page) {
    json params = json::object();
    if (!cursor.is_null()) params["cursor"] = cursor;
    json r = request("tools/list", params, config_.call_timeout);
    BALEINE_CHECK(r.contains("tools") && r["tools"].is_array(), "MCP server '{}': tools/list without a tools array", config_.name);
    for (const auto& t : r["tools"]) {
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string()) continue;
      McpTool tool;
      tool.name = t["name"].get<std::string>();
      tool.description = t.contains("description") && t["description"].is_string() ? t["description"].get<std::string>() : "";
      tool.input_schema = t.contains("inputSchema") && t["inputSchema"].is_object() ? t["inputSchema"] : json{{"type", "object"}};
      out.push_back(std::move(tool));
    }
    if (!r.contains("nextCursor") || r["nextCursor"].is_null()) break;
    cursor = r["nextCursor"];
  }
  return out;
}

McpCallResult McpClient::call_tool(const std::string& name, const json& arguments, std::optional<std::chrono::milliseconds> timeout) {
  json r = request("tools/call", {{"name", name}, {"arguments", arguments}}, timeout.value_or(config_.call_timeout));
  McpCallResult out;
  out.content = r.contains("content") ? r["content"] : json::array();
  out.is_error = r.value("isError", false);
  if (r.contains("structuredContent")) out.structured = r["structuredContent"];
  if (out.content.is_array())
    for (const auto& c : out.content)
      if (c.is_object() && c.value("type", "") == "text" && c.contains("text") && c["text"].is_string())
        out.text += (out.text.empty() ? "" : "\n") + c["text"].get<std::string>();
  return out;
}

bool McpClient::alive() const {
  std::lock_guard lock(mu_);
  return pid_ > 0 && !closed_;
}

std::string McpClient::stderr_tail() const {
  std::lock_guard lock(mu_);
  return stderr_.size() > kStderrKeep ? stderr_.substr(stderr_.size() - kStderrKeep) : stderr_;
}

void McpClient::shutdown() {
  {
    std::lock_guard lock(write_mu_);
    if (in_fd_ >= 0) close(in_fd_), in_fd_ = -1;  // the stdio transport's shutdown: end of input
  }
  if (pid_ > 0) {
    if (!wait_exit(pid_, config_.shutdown_grace)) {
      kill(-pid_, SIGTERM);
      if (!wait_exit(pid_, config_.shutdown_grace)) {
        kill(-pid_, SIGKILL);
        wait_exit(pid_, std::chrono::milliseconds(5000));
      }
    }
    pid_ = -1;
  }
  if (reader_.joinable()) reader_.join();
  if (err_reader_.joinable()) err_reader_.join();
  if (out_fd_ >= 0) close(out_fd_), out_fd_ = -1;
  if (err_fd_ >= 0) close(err_fd_), err_fd_ = -1;
}

std::vector<RegisteredTool> mcp_registered_tools(std::shared_ptr<McpClient> client, const std::string& prefix,
                                                 std::vector<std::string>* skipped) {
  std::vector<RegisteredTool> out;
  for (const McpTool& t : client->list_tools()) {
    std::string name = prefix.empty() ? t.name : prefix + "__" + t.name;
    for (char& c : name)
      if (!(std::isalnum(uint8_t(c)) || c == '_' || c == '-')) c = '_';
    if (name.size() > 64) name.resize(64);
    SchemaOptions lenient;
    lenient.strict = false;
    json schema = t.input_schema;
    schema.erase("$schema");
    if (!validate_json_schema(schema, lenient).empty() || schema.value("type", "object") != "object") {
      if (skipped) skipped->push_back(t.name);
      continue;
    }
    RegisteredTool rt;
    rt.definition.name = name;
    rt.definition.description = t.description.substr(0, 8192);
    rt.definition.parameters = schema;
    rt.definition.strict = false;
    rt.timeout = client->config().call_timeout + std::chrono::milliseconds(500);  // the client's own timeout fires first
    const std::string remote = t.name;
    rt.run = [client, remote](const json& args) {
      McpCallResult r = client->call_tool(remote, args);
      ToolResult tr;
      tr.error = r.is_error;
      tr.content = r.structured.is_null() ? json{{"text", r.text}} : json{{"text", r.text}, {"structured", r.structured}};
      return tr;
    };
    out.push_back(std::move(rt));
  }
  return out;
}

}  // namespace baleine::agent
