// server/conversations_api.cpp — the web chat's JSON endpoints over the Store: /api/conversations[/ID[/messages[/MID]]].
#include <fmt/format.h>
#include <httplib.h>

#include "server/server.h"

namespace baleine::server {

// ------------------------------------------------------------------------------------------------------------
// /api/conversations — the web chat's storage (JSON in, JSON out)
// ------------------------------------------------------------------------------------------------------------
namespace {
json conversation_json(const Conversation& c) {
  return {{"id", c.id}, {"title", c.title}, {"model", c.model}, {"system_prompt", c.system_prompt},
          {"temperature", c.temperature}, {"created", c.created}, {"updated", c.updated},
          {"assistant_id", c.assistant_id.empty() ? json() : json(c.assistant_id)}};
}
json message_json(const StoredMessage& m) {
  json j = {{"id", m.id}, {"role", m.role}, {"content", m.content}, {"reasoning", m.reasoning}, {"model", m.model},
          {"reasoning_seconds", m.reasoning_seconds}, {"prompt_tokens", m.prompt_tokens},
          {"completion_tokens", m.completion_tokens}, {"cost_usd", m.cost_usd}, {"status", m.status}, {"created", m.created}};
  const json agent = m.agent_json.empty() ? json::object() : json::parse(m.agent_json, nullptr, false);
  if (agent.is_object() && agent.contains("tool_steps")) j["tool_steps"] = agent["tool_steps"];
  if (agent.is_object() && agent.contains("citations")) j["citations"] = agent["citations"];
  return j;
}
// An assistant answer's agent record: {"tool_steps": [objects], "citations": [objects]}, both optional.
std::string agent_json_field(const json& b) {
  json out = json::object();
  for (const char* k : {"tool_steps", "citations"}) {
    if (!b.contains(k) || b[k].is_null()) continue;
    if (!b[k].is_array() || b[k].size() > 256)
      throw ApiError(400, fmt::format("'{}' must be an array of at most 256 objects", k), "invalid_request_error", k);
    for (const auto& x : b[k])
      if (!x.is_object()) throw ApiError(400, fmt::format("'{}' must hold objects", k), "invalid_request_error", k);
    out[k] = b[k];
  }
  return out.empty() ? "" : out.dump();
}
int64_t count_field(const json& b, const char* name) {
  if (!b.contains(name) || b[name].is_null()) return 0;
  if (!b[name].is_number_integer() || b[name].get<int64_t>() < 0)
    throw ApiError(400, fmt::format("'{}' must be a non-negative integer", name), "invalid_request_error", name);
  return b[name].get<int64_t>();
}
std::string str_field(const json& b, const char* name, const std::string& def, size_t max_len) {
  if (!b.contains(name) || b[name].is_null()) return def;
  if (!b[name].is_string()) throw ApiError(400, fmt::format("'{}' must be a string", name), "invalid_request_error", name);
  std::string s = b[name];
  if (s.size() > max_len) throw ApiError(400, fmt::format("'{}' is longer than {} bytes", name, max_len), "invalid_request_error", name);
  return s;
}
}  // namespace

void Server::conversations_api(const httplib::Request& req, httplib::Response& res) {
  const Auth auth = authenticate(req);
  // /api/conversations[/ID[/messages[/MID]]]
  std::vector<std::string> parts;
  for (size_t at = 1; at <= req.path.size();) {
    size_t next = req.path.find('/', at);
    if (next == std::string::npos) next = req.path.size();
    if (next > at) parts.push_back(req.path.substr(at, next - at));
    at = next + 1;
  }
  auto not_found = [] { return ApiError(404, "no such conversation or message", "invalid_request_error", "", "not_found"); };
  if (parts.size() < 2 || parts[0] != "api" || parts[1] != "conversations" || parts.size() > 5) throw not_found();
  const std::string& m = req.method;
  auto body = [&] { return parse_json_body(req.body.empty() ? "{}" : req.body, opt_.max_body_bytes); };
  // assistant_id binds the conversation to an assistant of /v1/assistants ("" or null: none).
  auto assistant_field = [&](const json& b, const std::string& def) {
    const std::string id = str_field(b, "assistant_id", def, 64);
    if (!id.empty() && id != def && !assistants_->get(id))
      throw ApiError(404, "no such assistant '" + id + "'", "invalid_request_error", "assistant_id", "not_found");
    return id;
  };
  if (parts.size() == 2) {
    if (m == "GET") {
      json a = json::array();
      for (const auto& c : store_->list_conversations(auth.key_id)) a.push_back(conversation_json(c));
      res.set_content(dump({{"data", a}}), "application/json");
      return;
    }
    if (m == "POST") {
      json b = body();
      Conversation c;
      c.key_id = auth.key_id;
      c.title = str_field(b, "title", "New chat", 200);
      c.model = str_field(b, "model", routes_.front().id, 200);
      c.system_prompt = str_field(b, "system_prompt", "", 100000);
      c.assistant_id = assistant_field(b, "");
      if (b.contains("temperature")) {
        if (!b["temperature"].is_number() || b["temperature"].get<double>() < 0 || b["temperature"].get<double>() > 2)
          throw ApiError(400, "'temperature' must be a number in [0, 2]", "invalid_request_error", "temperature");
        c.temperature = b["temperature"];
      }
      res.status = 201;
      res.set_content(dump(conversation_json(store_->create_conversation(c))), "application/json");
      return;
    }
    throw ApiError(405, "method not allowed");
  }
  auto conv = store_->get_conversation(parts[2]);
  if (!conv || conv->key_id != auth.key_id) throw not_found();  // another key's conversation does not exist for you
  if (parts.size() == 3) {
    if (m == "GET") {
      json msgs = json::array();
      for (const auto& x : store_->messages(conv->id)) msgs.push_back(message_json(x));
      json out = conversation_json(*conv);
      out["messages"] = msgs;
      res.set_content(dump(out), "application/json");
    } else if (m == "PATCH") {
      json b = body();
      conv->title = str_field(b, "title", conv->title, 200);
      conv->model = str_field(b, "model", conv->model, 200);
      conv->system_prompt = str_field(b, "system_prompt", conv->system_prompt, 100000);
      if (b.contains("assistant_id")) conv->assistant_id = b["assistant_id"].is_null() ? "" : assistant_field(b, conv->assistant_id);
      if (b.contains("temperature")) {
        if (!b["temperature"].is_number() || b["temperature"].get<double>() < 0 || b["temperature"].get<double>() > 2)
          throw ApiError(400, "'temperature' must be a number in [0, 2]", "invalid_request_error", "temperature");
        conv->temperature = b["temperature"];
      }
      store_->update_conversation(*conv);
      res.set_content(dump(conversation_json(*store_->get_conversation(conv->id))), "application/json");
    } else if (m == "DELETE") {
      store_->delete_conversation(conv->id);
      res.set_content(dump({{"deleted", true}, {"id", conv->id}}), "application/json");
    } else {
      throw ApiError(405, "method not allowed");
    }
    return;
  }
  if (parts[3] != "messages") throw not_found();
  if (parts.size() == 4 && m == "POST") {
    json b = body();
    StoredMessage msg;
    msg.conversation_id = conv->id;
    msg.role = str_field(b, "role", "user", 20);
    if (msg.role != "user" && msg.role != "assistant" && msg.role != "system")
      throw ApiError(400, "'role' must be user, assistant or system", "invalid_request_error", "role");
    msg.content = str_field(b, "content", "", opt_.max_body_bytes);
    msg.model = conv->model;
    if (msg.role == "assistant") {  // an answer the web chat got from /v1/responses (chat answers are saved by the server)
      msg.reasoning = str_field(b, "reasoning", "", opt_.max_body_bytes);
      msg.model = str_field(b, "model", conv->model, 200);
      msg.prompt_tokens = count_field(b, "prompt_tokens");
      msg.completion_tokens = count_field(b, "completion_tokens");
      if (b.contains("reasoning_seconds")) {
        if (!b["reasoning_seconds"].is_number() || b["reasoning_seconds"].get<double>() < 0)
          throw ApiError(400, "'reasoning_seconds' must be a non-negative number", "invalid_request_error", "reasoning_seconds");
        msg.reasoning_seconds = b["reasoning_seconds"];
      }
      msg.status = str_field(b, "status", "done", 20);
      if (msg.status != "done" && msg.status != "stopped" && msg.status != "error")
        throw ApiError(400, "'status' must be done, stopped or error", "invalid_request_error", "status");
      msg.agent_json = agent_json_field(b);
    }
    msg.id = store_->add_message(msg);
    res.status = 201;
    res.set_content(dump(message_json(msg)), "application/json");
    return;
  }
  if (parts.size() == 5 && m == "DELETE") {
    int64_t id = 0;
    try {
      id = std::stoll(parts[4]);
    } catch (const std::exception&) {
      throw not_found();
    }
    if (!store_->delete_message(conv->id, id)) throw not_found();
    res.set_content(dump({{"deleted", true}, {"id", id}}), "application/json");
    return;
  }
  throw ApiError(405, "method not allowed");
}

}  // namespace baleine::server
