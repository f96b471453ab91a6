// The MCP client against a real MCP server written with the official @modelcontextprotocol/sdk
// (tests/js/mcp_test_server.mjs, run by node): handshake, tools/list, tools/call, errors, timeouts with the
// client still usable afterwards, clean shutdown, and the server's tool called by the tiny model in the agent loop.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "agent/agent_loop.h"
#include "agent/mcp_client.h"
#include "agent_test_util.h"

using namespace baleine;
using namespace baleine::agent;
using nlohmann::json;

namespace {

McpServerConfig test_server() {
  McpServerConfig c;
  c.name = "testsrv";
  c.command = {"node", std::string(BALEINE_TEST_DATA) + "/../js/mcp_test_server.mjs"};
  c.call_timeout = std::chrono::milliseconds(5000);
  c.shutdown_grace = std::chrono::milliseconds(300);
  return c;
}

bool have_sdk() {
  return std::filesystem::exists(std::string(BALEINE_TEST_DATA) + "/../js/node_modules/@modelcontextprotocol/sdk/package.json");
}

}  // namespace

TEST(AgentMcp, ListsAndCallsToolsOfARealServer) {
  ASSERT_TRUE(have_sdk()) << "run scripts/setup.sh (npm ci in tests/js)";
  McpClient c(test_server());
  EXPECT_EQ(c.server_info()["serverInfo"]["name"], "baleine-test-server");
  auto tools = c.list_tools();
  std::vector<std::string> names;
  for (auto& t : tools) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"add", "slow", "fail", "shout"}));
  EXPECT_EQ(tools[0].input_schema["properties"]["a"]["type"], "number");
  EXPECT_EQ(c.call_tool("add", {{"a", 2}, {"b", 40}}).text, "42");
  EXPECT_EQ(c.call_tool("add", {{"a", 0.5}, {"b", -3}}).text, "-2.5");
  McpCallResult f = c.call_tool("fail", json::object());
  EXPECT_TRUE(f.is_error);
  EXPECT_EQ(f.text, "this tool always fails");
  EXPECT_EQ(c.call_tool("shout", {{"text", "hi"}}).text, "HI");
  // stderr is a separate pipe: its bytes may arrive after the answer on stdout.
  for (int i = 0; i < 200 && c.stderr_tail().find("shouting on stderr") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_NE(c.stderr_tail().find("shouting on stderr"), std::string::npos);
  // Bad arguments: the SDK answers with an error result (or a JSON-RPC error); either way no crash and no hang.
  try {
    McpCallResult bad = c.call_tool("add", {{"a", "two"}});
    EXPECT_TRUE(bad.is_error);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tools/call failed"), std::string::npos);
  }
  EXPECT_TRUE(c.alive());
  c.shutdown();
  EXPECT_FALSE(c.alive());
  EXPECT_THROW(c.call_tool("add", {{"a", 1}, {"b", 1}}), Error);
}

TEST(AgentMcp, TimeoutCancelsAndClientStaysUsable) {
  ASSERT_TRUE(have_sdk());
  McpClient c(test_server());
  const auto t0 = std::chrono::steady_clock::now();
  try {
    c.call_tool("slow", {{"ms", 1500}}, std::chrono::milliseconds(200));
    ADD_FAILURE() << "no timeout";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no answer within 200 ms"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.5);
  EXPECT_EQ(c.call_tool("add", {{"a", 1}, {"b", 2}}).text, "3");
  EXPECT_EQ(c.call_tool("slow", {{"ms", 10}}).text, "slept 10");
}

TEST(AgentMcp, StartupFailuresAreClear) {
  McpServerConfig c;
  c.name = "missing";
  c.shutdown_grace = std::chrono::milliseconds(200);
  c.command = {"/nonexistent/mcp-server"};
  try {
    McpClient m(c);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot start"), std::string::npos) << e.what();
  }
  c.command = {"sh", "-c", "echo not json; echo oops >&2; exit 3"};
  try {
    McpClient m(c);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exited"), std::string::npos) << e.what();
  }
  c.command = {"sleep", "30"};  // never answers, ignores stdin
  c.startup_timeout = std::chrono::milliseconds(300);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(McpClient m(c), Error);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);  // SIGTERM ended it
}

TEST(AgentMcp, TinyModelCallsMcpToolInAgentLoop) {
  ASSERT_TRUE(have_sdk());
  auto client = std::make_shared<McpClient>(test_server());
  std::vector<std::string> skipped;
  ToolRegistry reg;
  for (auto& t : mcp_registered_tools(client, "testsrv", &skipped))
    if (t.definition.name == "testsrv__add") reg.add(std::move(t));
  EXPECT_TRUE(skipped.empty());
  ASSERT_EQ(reg.size(), 1u);
  auto tok = agent_test::tiny_tokenizer();
  Engine engine(agent_test::tiny_model(), tok);
  AgentOptions o;
  o.params.max_tokens = 120;
  o.params.sampling.temperature = 0.7f;
  o.first_choice = ToolChoice{ToolChoiceMode::Required, ""};
  o.parallel_tool_calls = false;
  o.max_steps = 2;
  AgentLoop loop(engine, VocabIndex::build(*tok), reg, o);
  ChatMessage user;
  user.role = "user";
  user.content = "add 2 and 3";
  std::vector<AgentEvent> events;
  AgentResult res = loop.run({user}, [&](const AgentEvent& e) { events.push_back(e); });
  const AgentEvent* call = nullptr;
  for (auto& e : events)
    if (e.kind == AgentEventKind::ToolResult) call = &e;
  ASSERT_TRUE(call);
  EXPECT_EQ(call->call.name, "testsrv__add");
  json args = json::parse(call->call.arguments);
  ASSERT_TRUE(args["a"].is_number() && args["b"].is_number()) << call->call.arguments;
  ASSERT_FALSE(call->tool_error) << call->result.dump();
  EXPECT_DOUBLE_EQ(std::stod(call->result["text"].get<std::string>()), args["a"].get<double>() + args["b"].get<double>())
      << call->call.arguments << " -> " << call->result.dump();
  EXPECT_EQ(res.messages.back().role, "assistant");
}
