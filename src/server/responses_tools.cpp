// server/responses_tools.cpp — the tools of a /v1/responses request and the items it reads and writes:
//   - built-in tools run by the server (calculator, current_datetime, file_search with optional hybrid ranking);
//   - client-executed function tools ({"type":"function","name",...}): the model's call comes back as a
//     function_call item and the response ends; the client answers with a function_call_output item (with
//     previous_response_id, or the whole history when it keeps state itself);
//   - MCP servers the operator configured ({"type":"mcp","server_label":...}): listed (mcp_list_tools item),
//     exposed to the model as "<label>__<tool>", called by the agent loop with the server's timeout (mcp_call
//     items).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "agent/builtin_tools.h"
#include "server/server.h"

namespace baleine::server {

namespace {

ApiError tools_error(const std::string& message) { return ApiError(400, message, "invalid_request_error", "tools"); }

// The name mcp_registered_tools gives a server's tool.
std::string mcp_tool_name(const std::string& label, const std::string& tool) {
  std::string name = label + "__" + tool;
  for (char& c : name)
    if (!(std::isalnum(uint8_t(c)) || c == '_' || c == '-')) c = '_';
  if (name.size() > 64) name.resize(64);
  return name;
}

std::string text_of_content(const json& c, const std::string& where) {
  if (c.is_string()) return c.get<std::string>();
  if (c.is_array()) {
    std::string out;
    for (const auto& p : c) {
      if (!p.is_object() || !p.contains("text") || !p["text"].is_string())
        throw ApiError(400, where + " parts must be text parts", "invalid_request_error", where);
      out += p["text"].get<std::string>();
    }
    return out;
  }
  throw ApiError(400, where + " must be a string or an array of text parts", "invalid_request_error", where);
}

// A function_call_output's output: a string, or anything else as its JSON text.
std::string output_text(const json& o) { return o.is_string() ? o.get<std::string>() : o.dump(); }

}  // namespace

void Server::check_mcp_labels(const json& body) const {
  if (!body.is_object()) return;
  auto check = [&](const json& m, const std::string& where) {
    if (!m.is_object() || !m.contains("server_label") || !m["server_label"].is_string()) return;  // the store explains
    if (!mcp_.has(m["server_label"]))
      throw ApiError(400, fmt::format("{}.server_label: no MCP server '{}' is configured on this server{}", where,
                                      m["server_label"].get<std::string>().substr(0, 64),
                                      mcp_.labels().empty() ? " (start it with --mcp-config)" : ""),
                     "invalid_request_error", where);
  };
  if (body.contains("mcp_servers") && body["mcp_servers"].is_array())
    for (size_t i = 0; i < body["mcp_servers"].size(); ++i) check(body["mcp_servers"][i], fmt::format("mcp_servers[{}]", i));
  if (body.contains("tools") && body["tools"].is_array())
    for (size_t i = 0; i < body["tools"].size(); ++i)
      if (body["tools"][i].is_object() && body["tools"][i].value("type", "") == "mcp") check(body["tools"][i], fmt::format("tools[{}]", i));
}

Server::ResponseTools Server::response_tools(const json& tool_list, const agent::Assistant* assistant,
                                             const std::string& fallback_query) {
  ResponseTools t;
  t.registry = std::make_shared<agent::ToolRegistry>();
  json functions = json::array();  // chat-completions shape, for agent::parse_tools (hostile definitions refused)
  std::vector<json> mcp_refs;
  bool hybrid = false, file_search = false;
  for (const auto& tool : tool_list) {
    const std::string type = tool.is_object() ? tool.value("type", "") : "";
    if (type == "function") {
      // Responses shape {"type":"function","name",...} or the chat shape {"type":"function","function":{...}}.
      if (tool.contains("function")) {
        functions.push_back(tool);
      } else {
        json f = json::object();
        for (const char* k : {"name", "description", "parameters", "strict"})
          if (tool.contains(k) && !tool[k].is_null()) f[k] = tool[k];
        functions.push_back({{"type", "function"}, {"function", f}});
      }
    } else if (type == "calculator") {
      if (!t.registry->find("calculator")) t.registry->add(agent::calculator_tool());
    } else if (type == "current_datetime") {
      if (!t.registry->find("current_datetime")) t.registry->add(agent::datetime_tool());
    } else if (type == "file_search") {
      file_search = true;
      // Extension: "ranking_options": {"ranker": "hybrid"} fuses BM25 with the model's embeddings.
      if (tool.contains("ranking_options") && tool["ranking_options"].is_object()) {
        const json& ro = tool["ranking_options"];
        if (ro.contains("ranker")) {
          if (!ro["ranker"].is_string()) throw tools_error("file_search.ranking_options.ranker must be a string");
          const std::string r = ro["ranker"];
          if (r == "hybrid") hybrid = true;
          else if (r != "auto" && r != "bm25" && r.rfind("default", 0) != 0)
            throw tools_error("file_search.ranking_options.ranker must be auto, bm25 or hybrid");
        }
      }
    } else if (type == "mcp") {
      if (!tool.contains("server_label") || !tool["server_label"].is_string())
        throw tools_error("an mcp tool needs a 'server_label' naming a server configured with --mcp-config");
      if (tool.contains("server_url") || tool.contains("command") || tool.contains("connector_id"))
        throw tools_error("remote MCP servers are not supported: name a server configured with --mcp-config by its server_label");
      mcp_refs.push_back(tool);
    } else {
      throw tools_error(fmt::format("tool type '{}' is not supported on /v1/responses (function, mcp, calculator, "
                                    "current_datetime, file_search)", type.substr(0, 64)));
    }
  }
  if (assistant)
    for (const auto& m : assistant->mcp_servers) mcp_refs.push_back(m);

  if (file_search) {
    if (!assistant) throw tools_error("the file_search tool needs an 'assistant_id' with documents");
    t.docs = std::make_shared<agent::DocumentStore>(":memory:");
    std::vector<std::string> chunks;
    for (const auto& [name, text] : assistants_->documents(assistant->id)) {
      t.docs->add_document(name, text);
      if (hybrid)
        for (auto [off, len] : agent::chunk_text(text)) chunks.push_back(text.substr(off, len));
    }
    if (hybrid) {
      warm_chunk_embeddings(chunks);  // one batched engine request for chunks not embedded at upload
      t.docs->set_embedder(retrieval_embedder());
    }
    t.registry->add(agent::retrieval_tool(t.docs, 3, fallback_query));
  }

  std::vector<agent::ToolFunction> defs;
  try {
    defs = agent::parse_tools(functions);
  } catch (const Error& e) {
    throw tools_error(e.what());
  }
  for (auto& d : defs) {
    if (t.registry->find(d.name)) throw tools_error(fmt::format("two tools are named '{}'", d.name));
    agent::RegisteredTool rt;
    rt.definition = std::move(d);  // no handler: executed by the client
    t.registry->add(std::move(rt));
  }

  std::set<std::string> seen;
  for (const auto& ref : mcp_refs) {
    const std::string label = ref.value("server_label", "");
    if (!seen.insert(label).second) continue;
    if (!mcp_.has(label))
      throw tools_error(fmt::format("no MCP server '{}' is configured on this server{}", label.substr(0, 64),
                                    mcp_.labels().empty() ? " (start it with --mcp-config)" : ""));
    std::set<std::string> allowed;
    if (ref.contains("allowed_tools")) {
      const json& a = ref["allowed_tools"].is_object() ? ref["allowed_tools"].value("tool_names", json::array()) : ref["allowed_tools"];
      if (!a.is_array()) throw tools_error("mcp.allowed_tools must be an array of tool names");
      for (const auto& n : a)
        if (n.is_string()) allowed.insert(n.get<std::string>());
    }
    McpHub::ServerTools st;
    try {
      st = mcp_.tools(label);
    } catch (const Error& e) {
      throw ApiError(424, fmt::format("MCP server '{}' failed: {}", label, e.what()), "server_error", "tools", "mcp_server_failed");
    }
    json listed = json::array();
    for (const auto& mt : st.listed) {
      if (!allowed.empty() && !allowed.count(mt.name)) continue;
      listed.push_back({{"name", mt.name}, {"description", mt.description}, {"input_schema", mt.input_schema}});
      t.mcp[mcp_tool_name(label, mt.name)] = {label, mt.name};
    }
    for (auto& rt : st.tools) {
      if (!t.mcp.count(rt.definition.name)) continue;  // not allowed
      if (t.registry->find(rt.definition.name)) throw tools_error(fmt::format("two tools are named '{}'", rt.definition.name));
      if (t.registry->size() >= 128) throw tools_error("more than 128 tools in all (with the MCP servers' tools)");
      t.registry->add(rt);
    }
    t.mcp_lists.push_back({{"type", "mcp_list_tools"}, {"id", "mcpl_" + agent::new_tool_call_id()}, {"server_label", label}, {"tools", listed}});
  }
  return t;
}

agent::ToolChoice Server::response_tool_choice(const json& requested, const ResponseTools& t) const {
  // Built-in types name their tool ({"type":"file_search"} -> search_documents), as for assistants.
  const json c = agent::loop_tool_choice(requested);
  json choice = c;
  if (c.is_object() && c.value("type", "") == "function" && c.contains("name") && !c.contains("function")) {
    choice = {{"type", "function"}, {"function", {{"name", c["name"]}}}};
  } else if (c.is_object() && c.value("type", "") == "mcp") {
    if (!c.contains("server_label") || !c["server_label"].is_string())
      throw ApiError(400, "an mcp tool_choice needs a 'server_label'", "invalid_request_error", "tool_choice");
    if (c.contains("name") && c["name"].is_string()) choice = {{"type", "function"}, {"function", {{"name", mcp_tool_name(c["server_label"], c["name"])}}}};
    else choice = "required";
  }
  try {
    return agent::parse_tool_choice(choice, t.registry->definitions());
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "invalid_request_error", "tool_choice");
  }
}

// Input items: a string (one user message) or an array of messages ({role, content} or {"type":"message"}),
// function_call items (the client's copy of the model's calls) and function_call_output items. With `pending`
// (the calls the previous response stopped at), the outputs answer those calls and become the tool messages, in
// the calls' order (the template is positional); without, calls and outputs are taken as history.
std::vector<ChatMessage> Server::response_input(const json& input, const json& pending) {
  std::vector<ChatMessage> out;
  auto message = [](std::string role, std::string content) {
    ChatMessage m;
    m.role = std::move(role);
    m.content = std::move(content);
    return m;
  };
  if (input.is_string()) {
    if (!pending.empty())
      throw ApiError(400, fmt::format("the previous response ended with {} function call(s): 'input' must hold a "
                                      "function_call_output for each (call_id {})", pending.size(), pending[0].value("call_id", "")),
                     "invalid_request_error", "input");
    out.push_back(message("user", input.get<std::string>()));
    return out;
  }
  if (!input.is_array() || input.empty())
    throw ApiError(400, "'input' must be a string or a non-empty array of input items", "invalid_request_error", "input");
  std::map<std::string, std::string> answers;  // call_id -> output, for pending calls
  std::set<std::string> pending_ids;
  for (const auto& p : pending) pending_ids.insert(p.value("call_id", ""));
  for (size_t i = 0; i < input.size(); ++i) {
    const json& m = input[i];
    const std::string where = fmt::format("input[{}]", i);
    if (!m.is_object()) throw ApiError(400, where + " must be an object", "invalid_request_error", where);
    const std::string type = m.value("type", m.contains("role") ? "message" : "");
    if (type == "message") {
      if (!m.contains("role") || !m["role"].is_string())
        throw ApiError(400, where + " must have a string 'role'", "invalid_request_error", where);
      std::string role = m["role"];
      if (role == "developer") role = "system";
      if (role != "system" && role != "user" && role != "assistant")
        throw ApiError(400, where + ".role must be system, developer, user or assistant", "invalid_request_error", where + ".role");
      out.push_back(message(role, text_of_content(m.value("content", json()), where + ".content")));
    } else if (type == "function_call") {
      for (const char* k : {"call_id", "name", "arguments"})
        if (!m.contains(k) || !m[k].is_string())
          throw ApiError(400, fmt::format("{}.{} must be a string", where, k), "invalid_request_error", where);
      if (pending_ids.count(m["call_id"])) continue;  // the client echoing the calls it answers
      if (out.empty() || out.back().role != "assistant" || out.back().has_content) {
        ChatMessage a;
        a.role = "assistant";
        a.has_content = false;
        out.push_back(a);
      }
      out.back().tool_calls.push_back({m["call_id"], "function", m["name"], m["arguments"]});
    } else if (type == "function_call_output") {
      if (!m.contains("call_id") || !m["call_id"].is_string() || !m.contains("output"))
        throw ApiError(400, where + " needs a string 'call_id' and an 'output'", "invalid_request_error", where);
      const std::string id = m["call_id"];
      if (pending_ids.count(id)) {
        answers[id] = output_text(m["output"]);
      } else if (!pending.empty()) {
        throw ApiError(400, fmt::format("{}.call_id '{}' is not a call of the previous response", where, id.substr(0, 64)),
                       "invalid_request_error", where + ".call_id");
      } else {
        out.push_back(message("tool", output_text(m["output"])));
      }
    } else {
      throw ApiError(400, fmt::format("{}.type '{}' is not supported (message, function_call, function_call_output)", where,
                                      type.substr(0, 40)), "invalid_request_error", where + ".type");
    }
  }
  // The answers to the previous response's calls come first, in call order.
  std::vector<ChatMessage> tools;
  for (const auto& p : pending) {
    const std::string id = p.value("call_id", "");
    if (p.value("client", false)) {
      auto it = answers.find(id);
      if (it == answers.end())
        throw ApiError(400, fmt::format("'input' has no function_call_output for call_id '{}' (function '{}') of the previous response",
                                        id, p.value("name", "")), "invalid_request_error", "input");
      tools.push_back(message("tool", it->second));
    } else {
      tools.push_back(message("tool", p.value("output", "")));
    }
  }
  out.insert(out.begin(), tools.begin(), tools.end());
  return out;
}

json Server::pending_calls_json(const std::vector<agent::PendingCall>& calls) {
  json a = json::array();
  for (const auto& p : calls)
    a.push_back({{"call_id", p.call.id}, {"name", p.call.name}, {"client", p.client}, {"output", p.output}});
  return a;
}

json Server::response_output_items(const agent::AgentResult& r, const std::vector<ChatMessage>& added, const ResponseTools& t) const {
  json output = t.mcp_lists;
  auto mcp_item = [&](const ToolCall& c, const std::string& out) {
    const auto& [label, name] = t.mcp.at(c.name);
    json res = json::parse(out, nullptr, false);
    json item = {{"type", "mcp_call"}, {"id", c.id}, {"server_label", label}, {"name", name}, {"arguments", c.arguments},
                 {"output", nullptr}, {"error", nullptr}, {"status", "completed"}};
    const bool failed = std::find(r.failed_calls.begin(), r.failed_calls.end(), c.id) != r.failed_calls.end();
    std::string text = out;
    if (res.is_object() && res.contains("error")) text = output_text(res["error"]);
    else if (res.is_object() && res.contains("text")) text = output_text(res["text"]);
    item[failed ? "error" : "output"] = text;
    return item;
  };
  auto call_item = [](const ToolCall& c) {
    return json{{"type", "function_call"}, {"id", "fc_" + c.id}, {"call_id", c.id}, {"name", c.name},
                {"arguments", c.arguments}, {"status", "completed"}};
  };
  auto output_item = [](const ToolCall& c, const std::string& out) {
    return json{{"type", "function_call_output"}, {"call_id", c.id}, {"output", out}};
  };
  std::vector<ToolCall> waiting;  // calls answered by the next tool messages, in order
  size_t answered = 0;
  for (const auto& msg : added) {
    if (msg.role == "assistant")
      for (const auto& c : msg.tool_calls) {
        waiting.push_back(c);
        if (!t.mcp.count(c.name)) output.push_back(call_item(c));
      }
    if (msg.role == "tool" && answered < waiting.size()) {
      const ToolCall& c = waiting[answered++];
      output.push_back(t.mcp.count(c.name) ? mcp_item(c, msg.content) : output_item(c, msg.content));
    }
  }
  // The turn that stopped for the client: its function_call items came with the assistant message above; the
  // server tools of that turn already ran.
  for (const auto& p : r.pending_calls) {
    if (p.client) continue;
    output.push_back(t.mcp.count(p.call.name) ? mcp_item(p.call, p.output) : output_item(p.call, p.output));
  }
  if (r.finish_reason != "tool_calls" || !r.content.empty())
    output.push_back({{"type", "message"}, {"id", "msg_" + agent::new_tool_call_id()}, {"role", "assistant"}, {"status", "completed"},
                      {"content", json::array({{{"type", "output_text"}, {"text", r.content}, {"annotations", r.citations}}})}});
  return output;
}

// ------------------------------------------------------------------------------------------------------------
// Dense retrieval
// ------------------------------------------------------------------------------------------------------------
agent::Embedder Server::retrieval_embedder() {
  return agent::cached_embedder(embed_cache_, opt_.model_id, agent::engine_embedder(*engine_));
}

void Server::warm_chunk_embeddings(const std::vector<std::string>& chunks) {
  std::vector<std::string> missing;
  std::vector<float> v;
  for (const auto& c : chunks)
    if (!embed_cache_->get(opt_.model_id, c, v)) missing.push_back(c);
  if (missing.empty()) return;
  auto vecs = agent::engine_embeddings(*engine_, missing);
  for (size_t i = 0; i < missing.size(); ++i) embed_cache_->put(opt_.model_id, missing[i], vecs[i]);
}

void Server::embed_document_if_hybrid(const agent::Assistant& a, const std::string& text) {
  bool hybrid = false;
  for (const auto& t : a.tools)
    if (t.is_object() && t.value("type", "") == "file_search" && t.contains("ranking_options") && t["ranking_options"].is_object() &&
        t["ranking_options"].value("ranker", "") == "hybrid")
      hybrid = true;
  if (!hybrid) return;
  std::vector<std::string> chunks;
  for (auto [off, len] : agent::chunk_text(text)) chunks.push_back(text.substr(off, len));
  warm_chunk_embeddings(chunks);
}

}  // namespace baleine::server
