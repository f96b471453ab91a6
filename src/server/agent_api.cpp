// server/agent_api.cpp — /v1/assistants (CRUD + documents over agent::AssistantStore) and /v1/responses
// (previous_response_id chains in agent::ResponseStore, built-in tools run by the bounded agent::AgentLoop, every
// step streamed as an SSE event). The loop talks to the engine only through Engine::submit, like /chat.
#include <atomic>

#include <fmt/format.h>
#include <httplib.h>

#include "agent/agent_loop.h"
#include "agent/builtin_tools.h"
#include "agent/retrieval.h"
#include "server/server.h"

namespace baleine::server {

namespace {

ChatMessage text_message(std::string role, std::string content) {
  ChatMessage m;
  m.role = std::move(role);
  m.content = std::move(content);
  return m;
}

std::vector<std::string> path_parts(const std::string& path) {
  std::vector<std::string> parts;
  for (size_t at = 1; at <= path.size();) {
    size_t next = path.find('/', at);
    if (next == std::string::npos) next = path.size();
    if (next > at) parts.push_back(path.substr(at, next - at));
    at = next + 1;
  }
  if (!parts.empty() && parts[0] == "v1") parts.erase(parts.begin());
  return parts;
}

// Model output may hold invalid UTF-8 (a tiny model, a cut multi-byte character): replaced by U+FFFD before it
// is stored or put into a JSON object.
std::string clean_utf8(const std::string& s) { return json::parse(dump(json(s))).get<std::string>(); }
void clean_message(ChatMessage& m) {
  m.content = clean_utf8(m.content);
  for (auto& c : m.tool_calls) {
    c.name = clean_utf8(c.name);
    c.arguments = clean_utf8(c.arguments);
  }
}

ApiError not_found(const std::string& what) { return ApiError(404, "no such " + what, "invalid_request_error", "", "not_found"); }

json event_json(const agent::AgentEvent& e) {
  json j = {{"type", std::string("agent.") + agent::agent_event_kind_name(e.kind)}, {"step", e.step}};
  switch (e.kind) {
    case agent::AgentEventKind::ModelDelta: j["delta"] = e.text; break;
    case agent::AgentEventKind::ModelTurn:
    case agent::AgentEventKind::Final:
      j["content"] = e.text;
      j["reasoning"] = e.reasoning;
      j["finish_reason"] = e.finish_reason;
      j["seconds"] = e.seconds;
      break;
    case agent::AgentEventKind::ToolCall:
      j["call"] = {{"id", e.call.id}, {"name", e.call.name}, {"arguments", e.call.arguments}};
      break;
    case agent::AgentEventKind::ToolResult:
      j["call"] = {{"id", e.call.id}, {"name", e.call.name}, {"arguments", e.call.arguments}};
      j["result"] = e.result;
      j["tool_error"] = e.tool_error;
      j["citations"] = e.citations;
      j["seconds"] = e.seconds;
      break;
    case agent::AgentEventKind::Error: j["message"] = e.text; break;
  }
  return j;
}

}  // namespace

// ------------------------------------------------------------------------------------------------------------
// /v1/assistants[/ID[/documents[/NAME]]]
// ------------------------------------------------------------------------------------------------------------
void Server::assistants_api(const httplib::Request& req, httplib::Response& res) {
  const Auth auth = authenticate(req);
  const auto parts = path_parts(req.path);
  const std::string& m = req.method;
  // Assistant bodies: MCP servers must be labels this server was configured with.
  auto body = [&] {
    json b = parse_json_body(req.body.empty() ? "{}" : req.body, opt_.max_body_bytes);
    check_mcp_labels(b);
    return b;
  };
  auto reply = [&](const json& j) { res.set_content(dump(j), "application/json"); };
  // Each key sees only its own assistants (404 for the others', as for a missing one).
  auto owned = [&](const std::string& id) {
    auto a = assistants_->get(id);
    if (!a || a->owner != auth.key_id) throw not_found("assistant");
    return *a;
  };
  if (parts.size() == 1) {
    if (m == "POST") return reply(assistants_->create(body(), auth.key_id).to_openai());
    int limit = 20;
    if (req.has_param("limit")) {
      try {
        limit = std::stoi(req.get_param_value("limit"));
      } catch (const std::exception&) {
        throw ApiError(400, "'limit' must be an integer", "invalid_request_error", "limit");
      }
      if (limit < 1 || limit > 100) throw ApiError(400, "'limit' must be in [1, 100]", "invalid_request_error", "limit");
    }
    const std::string after = req.has_param("after") ? req.get_param_value("after") : "";
    json data = json::array();
    for (const auto& a : assistants_->list(limit + 1, after, auth.key_id)) data.push_back(a.to_openai());
    const bool more = int(data.size()) > limit;
    if (more) data.erase(data.end() - 1);
    return reply({{"object", "list"}, {"data", data}, {"has_more", more},
                  {"first_id", data.empty() ? json() : data.front()["id"]}, {"last_id", data.empty() ? json() : data.back()["id"]}});
  }
  const std::string& id = parts[1];
  if (parts.size() == 2) {
    owned(id);
    if (m == "GET") return reply(owned(id).to_openai());
    if (m == "POST") {
      auto a = assistants_->update(id, body());
      if (!a) throw not_found("assistant");
      return reply(a->to_openai());
    }
    if (!assistants_->remove(id)) throw not_found("assistant");
    return reply({{"id", id}, {"object", "assistant.deleted"}, {"deleted", true}});
  }
  if (parts[2] != "documents" || parts.size() > 4) throw not_found("endpoint");
  const agent::Assistant owner = owned(id);
  if (parts.size() == 3 && m == "POST") {  // {"name": "...", "text": "..."}
    json b = body();
    if (!b.contains("name") || !b["name"].is_string()) throw ApiError(400, "'name' must be a string", "invalid_request_error", "name");
    if (!b.contains("text") || !b["text"].is_string()) throw ApiError(400, "'text' must be a string", "invalid_request_error", "text");
    assistants_->put_document(id, b["name"], b["text"]);
    embed_document_if_hybrid(owner, b["text"]);  // dense retrieval: chunk vectors computed now, by the engine
    return reply({{"object", "assistant.document"}, {"assistant_id", id}, {"name", b["name"]},
                  {"bytes", b["text"].get<std::string>().size()}, {"chunks", agent::chunk_text(b["text"]).size()}});
  }
  if (parts.size() == 3) {
    json data = json::array();
    for (const auto& [name, text] : assistants_->documents(id))
      data.push_back({{"object", "assistant.document"}, {"name", name}, {"bytes", text.size()}, {"chunks", agent::chunk_text(text).size()}});
    return reply({{"object", "list"}, {"data", data}});
  }
  if (m != "DELETE") throw not_found("endpoint");
  if (!assistants_->remove_document(id, parts[3])) throw not_found("document");
  return reply({{"name", parts[3]}, {"object", "assistant.document.deleted"}, {"deleted", true}});
}

// ------------------------------------------------------------------------------------------------------------
// POST /v1/responses: {model, input, instructions?, previous_response_id?, assistant_id? (extension), tools?
// (built-in: calculator, current_datetime, file_search), max_output_tokens?, temperature?, top_p?, stream?}
// ------------------------------------------------------------------------------------------------------------
void Server::responses(const httplib::Request& req, httplib::Response& res) {
  const Auth auth = authenticate(req);
  const json b = parse_json_body(req.body, opt_.max_body_bytes);
  if (!b.contains("input")) throw ApiError(400, "'input' is required", "invalid_request_error", "input");
  std::optional<agent::Assistant> assistant;
  if (b.contains("assistant_id")) {
    if (!b["assistant_id"].is_string()) throw ApiError(400, "'assistant_id' must be a string", "invalid_request_error", "assistant_id");
    assistant = assistants_->get(b["assistant_id"]);
    if (!assistant || assistant->owner != auth.key_id) throw ApiError(404, "no such assistant", "invalid_request_error", "assistant_id", "not_found");
  }
  // Model: the request's, else the assistant's, else the default route.
  json route_body = json::object();
  if (b.contains("model")) route_body["model"] = b["model"];
  else if (assistant && !assistant->model.empty()) route_body["model"] = assistant->model;
  else route_body["model"] = routes_.front().id;
  json sampling_body = assistant ? assistant->sampling : json::object();
  for (const char* k : {"temperature", "top_p"})
    if (b.contains(k)) sampling_body[k] = b[k];
  if (b.contains("max_output_tokens")) sampling_body["max_tokens"] = b["max_output_tokens"];
  // reasoning: {"effort": "none" | "low" | "high" | "max"} (DeepSeek's Responses API; none = thinking off; OpenAI's
  // minimal / medium / xhigh map as on /chat). Translated into chat's thinking + reasoning_effort, validated there.
  if (b.contains("reasoning") && !b["reasoning"].is_null()) {
    const json& r = b["reasoning"];
    if (!r.is_object()) throw ApiError(400, "'reasoning' must be an object: {\"effort\": ...}", "invalid_request_error", "reasoning");
    for (const auto& [k, v] : r.items())
      if (k != "effort" && k != "summary")
        throw ApiError(400, fmt::format("'reasoning' has an unknown field '{}' (effort, summary)", k.substr(0, 64)),
                       "invalid_request_error", "reasoning");
    if (r.contains("effort") && !r["effort"].is_null()) {
      if (!r["effort"].is_string())
        throw ApiError(400, "'reasoning.effort' must be one of none, low, high, max", "invalid_request_error", "reasoning.effort");
      const std::string effort = r["effort"];
      sampling_body["thinking"] = {{"type", effort == "none" ? "disabled" : "enabled"}};
      if (effort != "none") sampling_body["reasoning_effort"] = effort;
    }
  }
  sampling_body["model"] = route_body["model"];
  sampling_body["messages"] = json::array({{{"role", "user"}, {"content", "x"}}});
  ChatTask shape;  // model route + sampling, validated
  try {
    shape = parse_chat_request(sampling_body, routes_, limits_);
  } catch (ApiError& e) {  // the Responses field names
    if (e.param == "reasoning_effort") e.param = "reasoning.effort";
    if (e.param == "thinking") e.param = "reasoning.effort";
    if (e.param == "max_tokens") e.param = "max_output_tokens";
    throw;
  }
  const ModelRoute& route = *shape.route;

  std::vector<ChatMessage> conversation;
  std::string previous;
  if (b.contains("previous_response_id") && !b["previous_response_id"].is_null()) {
    if (!b["previous_response_id"].is_string())
      throw ApiError(400, "'previous_response_id' must be a string", "invalid_request_error", "previous_response_id");
    previous = b["previous_response_id"];
    // A key continues only its own responses (another key's id reads as unknown).
    if (auto prev = responses_->get(previous); prev && prev->response.value("owner_key", int64_t(0)) != auth.key_id)
      throw ApiError(400, fmt::format("no response '{}'", previous.substr(0, 64)), "invalid_request_error", "previous_response_id");
    try {
      conversation = responses_->conversation(previous);
    } catch (const Error& e) {
      throw ApiError(400, e.what(), "invalid_request_error", "previous_response_id");
    }
  }
  std::string instructions = assistant ? assistant->instructions : "";
  if (b.contains("instructions") && b["instructions"].is_string()) instructions = b["instructions"];
  // Client-executed function calls the previous response stopped at: this input must answer them.
  json pending = json::array();
  if (!previous.empty())
    if (auto prev = responses_->get(previous)) pending = prev->response.value("pending_calls", json::array());
  const std::vector<ChatMessage> input = response_input(b["input"], pending);
  std::vector<ChatMessage> full;
  if (!instructions.empty()) full.push_back(text_message("system", instructions));
  for (const auto& msg : conversation) full.push_back(msg);
  for (const auto& msg : input) full.push_back(msg);

  // Tools: the assistant's plus the request's (built-in, client functions, configured MCP servers).
  json tool_list = assistant ? assistant->tools : json::array();
  if (b.contains("tools")) {
    if (!b["tools"].is_array()) throw ApiError(400, "'tools' must be an array", "invalid_request_error", "tools");
    for (const auto& t : b["tools"]) tool_list.push_back(t);
  }
  // A forced file_search call's unusable query falls back to the user's last message (see retrieval_tool).
  std::string last_user;
  for (const auto& msg : full)
    if (msg.role == "user") last_user = msg.content;
  auto toolset = std::make_shared<ResponseTools>(response_tools(tool_list, assistant ? &*assistant : nullptr, last_user));
  std::shared_ptr<agent::ToolRegistry> registry = toolset->registry;

  agent::AgentOptions ao;
  ao.format = route.format;
  ao.thinking = shape.thinking;
  ao.params = shape.params;
  if (!shape.max_tokens_given) ao.params.max_tokens = std::min<int64_t>(512, limits_.context / 2);
  for (int32_t t : stop_tokens_) ao.params.stop_tokens.push_back(t);
  if (registry->size() == 0) ao.max_steps = 1;
  // The request's tool_choice, else the assistant's (built-in types name the tool: {"type":"file_search"}).
  const json choice = b.contains("tool_choice") ? b["tool_choice"] : assistant ? assistant->tool_choice : json();
  if (!choice.is_null()) {
    try {
      ao.first_choice = response_tool_choice(choice, *toolset);
    } catch (const Error& e) {
      throw ApiError(400, e.what(), "invalid_request_error", "tool_choice");
    }
  }
  if (b.contains("max_steps")) {  // extension: model turns at most (1..8)
    if (!b["max_steps"].is_number_integer() || b["max_steps"].get<int>() < 1 || b["max_steps"].get<int>() > 8)
      throw ApiError(400, "'max_steps' must be an integer in [1, 8]", "invalid_request_error", "max_steps");
    ao.max_steps = b["max_steps"].get<int>();
  }
  // Grounding: the request's choice, else the assistant's, else the server's.
  ao.grounded_quotes = opt_.grounded_quotes;
  ao.quote_search = opt_.quote_search;
  if (assistant && assistant->grounded_quotes.is_boolean()) ao.grounded_quotes = assistant->grounded_quotes.get<bool>();
  if (assistant && assistant->quote_search.is_boolean()) ao.quote_search = assistant->quote_search.get<bool>();
  if (b.contains("grounded_quotes")) {  // extension: override serve --grounded-quotes for this request
    if (!b["grounded_quotes"].is_boolean())
      throw ApiError(400, "'grounded_quotes' must be a boolean", "invalid_request_error", "grounded_quotes");
    ao.grounded_quotes = b["grounded_quotes"].get<bool>();
  }
  if (b.contains("quote_search")) {  // extension: override serve --quote-search for this request
    if (!b["quote_search"].is_boolean())
      throw ApiError(400, "'quote_search' must be a boolean", "invalid_request_error", "quote_search");
    ao.quote_search = b["quote_search"].get<bool>();
  }
  check_admission(auth);

  struct Run {
    std::string id_hint;
    std::atomic<bool> cancel{false};
  };
  auto run = std::make_shared<Run>();
  const bool stream = b.value("stream", false);
  const std::string model_id = route.id;
  const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  // Runs the loop, stores the response and returns it. on_event may write SSE.
  const int64_t key_id = auth.key_id;
  auto execute = [this, registry, toolset, ao, full, input, previous, instructions, model_id, created, run, key_id](
                     const std::function<void(const agent::AgentEvent&)>& on_event) {
    agent::AgentLoop loop(*engine_, vocab_, *registry, ao);
    agent::AgentResult r = loop.run(full, on_event, &run->cancel);
    std::vector<ChatMessage> added(r.messages.begin() + std::ptrdiff_t(full.size()), r.messages.end());
    for (auto& msg : added) clean_message(msg);
    r.content = clean_utf8(r.content);
    for (auto& p : r.pending_calls) {
      p.call.name = clean_utf8(p.call.name);
      p.call.arguments = clean_utf8(p.call.arguments);
      p.output = clean_utf8(p.output);
    }
    json output = response_output_items(r, added, *toolset);
    // The final turn's reasoning as OpenAI's Responses API shows it: a "reasoning" item before the answer.
    if (!r.reasoning.empty()) {
      json items = json::array({{{"type", "reasoning"}, {"id", "rs_" + agent::new_tool_call_id().substr(5)}, {"summary", json::array()},
                                 {"content", json::array({{{"type", "reasoning_text"}, {"text", clean_utf8(r.reasoning)}}})}}});
      for (auto& o : output) items.push_back(std::move(o));
      output = std::move(items);
    }
    json resp = {{"object", "response"}, {"created_at", created}, {"model", model_id},
                 {"status", r.finish_reason == "error" || r.finish_reason == "cancelled" ? "failed" : "completed"},
                 {"previous_response_id", previous.empty() ? json() : json(previous)},
                 {"instructions", instructions.empty() ? json() : json(instructions)}, {"output", output},
                 {"output_text", r.content}, {"agent_steps", r.steps}, {"finish_reason", r.finish_reason},
                 {"usage", {{"input_tokens", r.usage.prompt_tokens}, {"output_tokens", r.usage.completion_tokens},
                            {"total_tokens", r.usage.prompt_tokens + r.usage.completion_tokens}}}};
    agent::StoredResponse sr;
    sr.previous_id = previous;
    sr.created_at = created;
    sr.input = input;
    sr.output = added;
    sr.response = resp;
    sr.response["pending_calls"] = pending_calls_json(r.pending_calls);  // kept server-side only
    sr.response["owner_key"] = key_id;
    resp["id"] = responses_->save(sr);
    return resp;
  };
  if (!stream) {
    res.set_content(dump(execute({})), "application/json");
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [execute, run](size_t, httplib::DataSink& sink) {
        bool ok = true;
        auto send = [&](const json& j) {
          if (!ok) return;
          const std::string line = "event: " + j["type"].get<std::string>() + "\ndata: " + dump(j) + "\n\n";
          ok = sink.write(line.data(), line.size());
          if (!ok) run->cancel = true;
        };
        send({{"type", "response.created"}});
        try {
          json resp = execute([&](const agent::AgentEvent& e) { send(event_json(e)); });
          send({{"type", "response.completed"}, {"response", resp}});
        } catch (const std::exception& e) {  // never let an exception escape the provider (it would end the process)
          send({{"type", "error"}, {"message", e.what()}});
        }
        if (ok) ok = sink.write("data: [DONE]\n\n", 14);
        if (ok) sink.done();
        return ok;
      },
      [run](bool) { run->cancel = true; });
}

// ------------------------------------------------------------------------------------------------------------
// POST /v1/chat/completions whose tools include server-side ones (extension): {"type": "mcp", "server_label"} for a
// server configured with --mcp-config, or the built-ins (calculator, current_datetime). The server runs the tool
// loop as /v1/responses does and answers with one chat completion: the final content, the client function calls
// it stopped at as tool_calls, and the server-side calls it made as message.mcp_calls / message.server_tool_calls.
// ------------------------------------------------------------------------------------------------------------
bool Server::has_server_tools(const json& body) {
  if (!body.is_object() || !body.contains("tools") || !body["tools"].is_array()) return false;
  for (const auto& t : body["tools"])
    if (t.is_object() && t.contains("type") && t["type"].is_string() && t["type"] != "function") return true;
  return false;
}

void Server::chat_with_server_tools(const Auth& auth, const json& body, httplib::Response& res) {
  if (body.contains("n") && body["n"] != 1)
    throw ApiError(400, "'n' must be 1 with mcp or built-in tools", "invalid_request_error", "n");
  json plain = body;  // everything but the tools goes through the chat parser (messages, sampling, thinking)
  for (const char* k : {"tools", "tool_choice", "parallel_tool_calls", "max_steps"}) plain.erase(k);
  ChatTask task = parse_chat_request(plain, routes_, limits_);
  std::string last_user;
  for (const auto& msg : task.messages)
    if (msg.role == "user") last_user = msg.content;
  auto toolset = std::make_shared<ResponseTools>(response_tools(body["tools"], nullptr, last_user));
  agent::AgentOptions ao;
  ao.format = task.route->format;
  ao.thinking = task.thinking;
  ao.params = task.params;
  if (!task.max_tokens_given) ao.params.max_tokens = std::min<int64_t>(512, limits_.context / 2);
  for (int32_t t : stop_tokens_) ao.params.stop_tokens.push_back(t);
  if (body.contains("tool_choice") && !body["tool_choice"].is_null()) ao.first_choice = response_tool_choice(body["tool_choice"], *toolset);
  if (body.contains("max_steps")) {  // model turns at most (1..8), as on /v1/responses
    if (!body["max_steps"].is_number_integer() || body["max_steps"].get<int>() < 1 || body["max_steps"].get<int>() > 8)
      throw ApiError(400, "'max_steps' must be an integer in [1, 8]", "invalid_request_error", "max_steps");
    ao.max_steps = body["max_steps"].get<int>();
  }
  check_admission(auth);
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  auto execute = [this, toolset, ao, task, cancel] {
  agent::AgentLoop loop(*engine_, vocab_, *toolset->registry, ao);
  agent::AgentResult r = loop.run(task.messages, {}, cancel.get());
  std::vector<ChatMessage> added(r.messages.begin() + std::ptrdiff_t(task.messages.size()), r.messages.end());
  for (auto& msg : added) clean_message(msg);
  r.content = clean_utf8(r.content);
  const json items = response_output_items(r, added, *toolset);
  json message = {{"role", "assistant"}, {"content", r.content}};
  if (task.thinking) message["reasoning_content"] = clean_utf8(r.reasoning);
  json mcp_calls = json::array(), server_calls = json::array();
  for (const auto& it : items) {
    if (it.value("type", "") == "mcp_call") mcp_calls.push_back(it);
    if (it.value("type", "") == "function_call_output") server_calls.push_back(it);  // built-ins (calculator, ...)
  }
  if (!mcp_calls.empty()) message["mcp_calls"] = mcp_calls;
  if (!server_calls.empty()) message["server_tool_calls"] = server_calls;
  std::vector<ToolCall> client;
  for (const auto& p : r.pending_calls)
    if (p.client) client.push_back(p.call);
  if (!client.empty()) message["tool_calls"] = agent::tool_calls_to_openai(client);
  const std::string finish = !client.empty() ? "tool_calls" : r.finish_reason == "length" ? "length" : "stop";
  const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  json resp = {{"id", "chatcmpl-" + agent::new_tool_call_id().substr(5)}, {"object", "chat.completion"}, {"created", created},
               {"model", task.route->id}, {"system_fingerprint", "baleine"},
               {"choices", json::array({{{"index", 0}, {"message", message}, {"logprobs", nullptr}, {"finish_reason", finish}}})},
               {"agent_steps", r.steps},
               {"usage", {{"prompt_tokens", r.usage.prompt_tokens}, {"completion_tokens", r.usage.completion_tokens},
                          {"total_tokens", r.usage.prompt_tokens + r.usage.completion_tokens}}}};
  return resp;
  };
  if (!task.stream) {
    res.set_content(dump(execute()), "application/json");
    return;
  }
  // Streamed: the tool loop runs first (its steps are not chat deltas), then the answer goes out as chunks in the
  // usual order: role (+ reasoning), content with the calls made, the finish reason, usage when asked for.
  const bool include_usage = task.include_usage;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [execute, include_usage, cancel](size_t, httplib::DataSink& sink) {
        bool ok = true;
        auto send = [&](const json& j) {
          if (!ok) return;
          const std::string line = "data: " + dump(j) + "\n\n";
          ok = sink.write(line.data(), line.size());
          if (!ok) *cancel = true;
        };
        try {
          json resp = execute();
          const json& choice = resp["choices"][0];
          const json& m = choice["message"];
          auto chunk = [&](json delta, json finish) {
            json c = {{"id", resp["id"]}, {"object", "chat.completion.chunk"}, {"created", resp["created"]}, {"model", resp["model"]},
                      {"system_fingerprint", "baleine"},
                      {"choices", json::array({{{"index", 0}, {"delta", std::move(delta)}, {"logprobs", nullptr}, {"finish_reason", std::move(finish)}}})}};
            if (include_usage) c["usage"] = nullptr;
            return c;
          };
          json first = {{"role", "assistant"}, {"content", ""}};
          if (m.contains("reasoning_content")) first["reasoning_content"] = m["reasoning_content"];
          send(chunk(first, nullptr));
          json rest = {{"content", m["content"]}};
          for (const char* k : {"mcp_calls", "server_tool_calls"})
            if (m.contains(k)) rest[k] = m[k];
          if (m.contains("tool_calls")) {
            json calls = m["tool_calls"];
            for (size_t i = 0; i < calls.size(); ++i) calls[i]["index"] = i;
            rest["tool_calls"] = calls;
          }
          send(chunk(rest, nullptr));
          send(chunk(json::object(), choice["finish_reason"]));
          if (include_usage)
            send({{"id", resp["id"]}, {"object", "chat.completion.chunk"}, {"created", resp["created"]}, {"model", resp["model"]},
                  {"choices", json::array()}, {"usage", resp["usage"]}});
        } catch (const std::exception& e) {  // never let an exception escape the provider
          send({{"error", {{"message", e.what()}, {"type", "server_error"}, {"param", nullptr}, {"code", nullptr}}}});
        }
        if (ok) ok = sink.write("data: [DONE]\n\n", 14);
        if (ok) sink.done();
        return ok;
      },
      [cancel](bool) { *cancel = true; });
}

}  // namespace baleine::server
