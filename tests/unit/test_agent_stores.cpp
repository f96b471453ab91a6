// Assistants and Responses-API state in SQLite: create/update/list/delete with validation, attached documents,
// persistence across reopening the file, and previous_response_id chains.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <unistd.h>

#include "agent/stores.h"
#include "core/check.h"

using namespace baleine;
using namespace baleine::agent;
using nlohmann::json;

namespace {
std::string temp_db(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("baleine_" + name + "_" + std::to_string(::getpid()) + ".db");
  for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(p.string() + ext);
  return p.string();
}
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
ChatMessage msg(const std::string& role, const std::string& content) {
  ChatMessage m;
  m.role = role;
  m.content = content;
  return m;
}
}  // namespace

// tool_choice of the first agent step, stored with the assistant and checked against its tools.
TEST(AgentStores, AssistantToolChoice) {
  AssistantStore s(":memory:");
  Assistant a = s.create(json::parse(R"({"name":"Docs","tools":[{"type":"file_search"}],"tool_choice":{"type":"file_search"}})"));
  EXPECT_EQ(a.to_openai()["tool_choice"], json::parse(R"({"type":"file_search"})"));
  EXPECT_EQ(s.get(a.id)->tool_choice, json::parse(R"({"type":"file_search"})"));
  EXPECT_EQ(loop_tool_choice(a.tool_choice), json::parse(R"({"type":"function","function":{"name":"search_documents"}})"));
  EXPECT_EQ(loop_tool_choice(json::parse(R"({"type":"function","name":"f"})")), json::parse(R"({"type":"function","function":{"name":"f"}})"));
  EXPECT_EQ(loop_tool_choice("required"), "required");
  EXPECT_TRUE(s.update(a.id, json::parse(R"({"tool_choice":"required"})")));
  EXPECT_EQ(s.get(a.id)->tool_choice, "required");
  EXPECT_TRUE(s.update(a.id, json::parse(R"({"tool_choice":null})")));
  EXPECT_TRUE(s.get(a.id)->tool_choice.is_null());
  // Removing the forced tool while it is forced, an unknown mode, a tool it does not have, required without tools.
  s.update(a.id, json::parse(R"({"tool_choice":{"type":"file_search"}})"));
  EXPECT_NE(error_of([&] { s.update(a.id, json::parse(R"({"tools":[{"type":"calculator"}]})")); }).find("not among the assistant's tools"),
            std::string::npos);
  EXPECT_NE(error_of([&] { s.create(json::parse(R"({"tool_choice":"always"})")); }).find("tool_choice"), std::string::npos);
  EXPECT_NE(error_of([&] { s.create(json::parse(R"({"tools":[{"type":"calculator"}],"tool_choice":{"type":"current_datetime"}})")); })
                .find("current_datetime"), std::string::npos);
  EXPECT_NE(error_of([&] { s.create(json::parse(R"({"tool_choice":"required"})")); }).find("needs tools"), std::string::npos);
  EXPECT_NE(error_of([&] { s.create(json::parse(R"({"tool_choice":{"type":"shell"}})")); }).find("tool_choice"), std::string::npos);
  EXPECT_NE(error_of([&] { s.create(json::parse(R"({"tool_choice":7})")); }).find("tool_choice"), std::string::npos);
}

TEST(AgentStores, AssistantsCrudAndValidation) {
  const std::string path = temp_db("assistants");
  std::string id;
  {
    AssistantStore s(path);
    Assistant a = s.create(json::parse(R"({"name":"Math helper","instructions":"Use the calculator.","model":"baleine-tiny",
        "tools":[{"type":"calculator"},{"type":"file_search"},{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}],
        "temperature":0.3,"max_tokens":200,"metadata":{"team":"docs"},"mcp_servers":[{"server_label":"calc"}]})"));
    id = a.id;
    EXPECT_EQ(id.rfind("asst_", 0), 0u);
    EXPECT_EQ(id.size(), 29u);
    json o = a.to_openai();
    EXPECT_EQ(o["object"], "assistant");
    EXPECT_EQ(o["temperature"], 0.3);
    EXPECT_EQ(o["tools"].size(), 3u);
    s.put_document(id, "notes.txt", "The answer is 42.");
    auto u = s.update(id, json::parse(R"({"instructions":"Be exact.","temperature":null})"));
    ASSERT_TRUE(u);
    EXPECT_EQ(u->instructions, "Be exact.");
    EXPECT_EQ(u->name, "Math helper");
    EXPECT_FALSE(u->sampling.contains("temperature"));
    EXPECT_FALSE(s.update("asst_missing", json::object()));
    EXPECT_NE(error_of([&] { s.create(json::parse(R"({"temperature":5})")); }).find("temperature"), std::string::npos);
    EXPECT_NE(error_of([&] { s.create(json::parse(R"({"tools":[{"type":"shell"}]})")); }).find("'shell' is not"), std::string::npos);
    EXPECT_NE(error_of([&] { s.create(json::parse(R"({"tools":[{"type":"function","function":{"name":"bad name"}}]})")); })
                  .find("tools[0].function.name"), std::string::npos);
    EXPECT_NE(error_of([&] { s.create(json::parse(R"({"name":7})")); }).find("name: must be a string"), std::string::npos);
    // MCP commands come from the server's configuration, never from a request.
    EXPECT_NE(error_of([&] { s.create(json::parse(R"({"mcp_servers":[{"server_label":"x","command":["sh"]}]})")); })
                  .find("not accepted from requests"), std::string::npos);
    EXPECT_NE(error_of([&] { s.create(json::parse(R"({"tools":[{"type":"mcp","server_url":"http://x"}]})")); })
                  .find("server_label"), std::string::npos);
    EXPECT_NE(error_of([&] { s.put_document("asst_missing", "a", "b"); }).find("no assistant"), std::string::npos);
  }
  {
    AssistantStore s(path);  // reopened: everything is still there
    auto a = s.get(id);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->instructions, "Be exact.");
    EXPECT_EQ(a->metadata["team"], "docs");
    auto docs = s.documents(id);
    ASSERT_EQ(docs.size(), 1u);
    EXPECT_EQ(docs[0].second, "The answer is 42.");
    for (int i = 0; i < 5; ++i) s.create(json{{"name", "n" + std::to_string(i)}});
    auto page1 = s.list(3);
    ASSERT_EQ(page1.size(), 3u);
    auto page2 = s.list(3, page1.back().id);
    ASSERT_EQ(page2.size(), 3u);
    // Per-key ownership: a key lists only its own assistants.
    Assistant mine = s.create(json{{"name", "owned"}}, 7);
    EXPECT_EQ(s.get(mine.id)->owner, 7);
    auto owned = s.list(100, "", 7);
    ASSERT_EQ(owned.size(), 1u);
    EXPECT_EQ(owned[0].id, mine.id);
    EXPECT_EQ(s.list(100, "", 0).size(), 6u);
    EXPECT_EQ(s.list(100).size(), 7u);
    for (auto& x : page2)
      for (auto& y : page1) EXPECT_NE(x.id, y.id);
    EXPECT_TRUE(s.remove(id));
    EXPECT_FALSE(s.get(id));
    EXPECT_TRUE(s.documents(id).empty());  // documents went with it
    EXPECT_FALSE(s.remove(id));
  }
  for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(path + ext);
}

TEST(AgentStores, ResponseChains) {
  ResponseStore s(":memory:");
  StoredResponse r1;
  r1.input = {msg("user", "My name is Ada.")};
  r1.output = {msg("assistant", "Hello Ada.")};
  r1.response = {{"object", "response"}};
  const std::string id1 = s.save(r1);
  EXPECT_EQ(id1.rfind("resp_", 0), 0u);
  StoredResponse r2;
  r2.previous_id = id1;
  r2.input = {msg("user", "What is 2+2?")};
  ChatMessage call = msg("assistant", "");
  call.has_content = false;
  call.tool_calls.push_back({"call_1", "function", "calculator", "{\"expression\":\"2+2\"}"});
  r2.output = {call, msg("tool", "{\"result\":\"4\"}"), msg("assistant", "4")};
  const std::string id2 = s.save(r2);
  StoredResponse r3;
  r3.previous_id = id2;
  r3.input = {msg("user", "And my name?")};
  r3.output = {msg("assistant", "Ada.")};
  const std::string id3 = s.save(r3);
  auto conv = s.conversation(id3);
  ASSERT_EQ(conv.size(), 8u);
  EXPECT_EQ(conv[0].content, "My name is Ada.");
  EXPECT_EQ(conv[3].tool_calls.at(0).name, "calculator");
  EXPECT_FALSE(conv[3].has_content);
  EXPECT_EQ(conv[4].role, "tool");
  EXPECT_EQ(conv[7].content, "Ada.");
  EXPECT_EQ(s.conversation(id1).size(), 2u);  // branching from an earlier point sees only its prefix
  EXPECT_EQ(s.get(id2)->previous_id, id1);
  StoredResponse bad;
  bad.previous_id = "resp_nope";
  EXPECT_NE(error_of([&] { s.save(bad); }).find("no stored response"), std::string::npos);
  EXPECT_NE(error_of([&] { s.conversation("resp_nope"); }).find("no stored response"), std::string::npos);
  EXPECT_NE(error_of([&] { s.conversation(id3, 2); }).find("longer than 2"), std::string::npos);
  EXPECT_TRUE(s.remove(id2));
  EXPECT_NE(error_of([&] { s.conversation(id3); }).find("no stored response"), std::string::npos);
}
