// POST /anthropic/v1/messages and /anthropic/v1/messages/count_tokens: Anthropic's Messages API over the chat
// generation path (Server::chat_prompt / start_chat), answered as Anthropic messages, SSE events and errors.
#include <fmt/format.h>
#include <httplib.h>

#include "server/anthropic_api.h"
#include "server/chat_run.h"

namespace baleine::server {

namespace {

void send_anthropic_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  if (e.retry_after > 0) res.set_header("Retry-After", std::to_string(e.retry_after));
  res.set_content(anthropic_error_body(e), "application/json");
}

// Every failure of these handlers, in Anthropic's error shape (the SDK maps the status to its error classes).
template <class F>
void anthropic_errors(httplib::Response& res, F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    send_anthropic_error(res, e);
  } catch (const json::exception& e) {
    send_anthropic_error(res, ApiError(400, fmt::format("invalid request: {}", e.what())));
  } catch (const Error& e) {
    send_anthropic_error(res, ApiError(400, e.what()));
  } catch (const std::exception& e) {
    send_anthropic_error(res, ApiError(500, e.what(), "server_error"));
  }
}

json anthropic_usage(const UsageCount& u) {
  // Anthropic counts cache reads apart from input_tokens; this server writes cache entries without a charge.
  return {{"input_tokens", u.prompt_tokens - u.cached_tokens}, {"output_tokens", u.completion_tokens},
          {"cache_read_input_tokens", u.cached_tokens}, {"cache_creation_input_tokens", 0}};
}

json tool_input(const std::string& arguments) {
  // The tool constraint makes the arguments a JSON object; anything else (an unconstrained model) is kept as text
  // rather than lost.
  json j = json::parse(arguments, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) return j;
  return {{"arguments", arguments}};
}

// Which stop sequence ended a choice: the engine cuts the text right before the first one it saw.
json stop_sequence_of(const Tokenizer& tok, const Server::Choice& c, const std::vector<std::string>& stops) {
  if (stops.empty() || c.finish != FinishReason::Stop) return nullptr;
  std::vector<int32_t> ids;
  for (const auto& t : c.tokens) ids.push_back(t.token);
  const std::string full = tok.decode(ids);
  const size_t from = std::min(c.text.size(), full.size());
  size_t best = std::string::npos;
  json found;
  for (const auto& s : stops)
    if (size_t p = full.find(s, from); p < best) best = p, found = s;
  return found;
}

const char* stop_reason(const Server::Choice& c, const json& stop_sequence) {
  if (c.finish == FinishReason::Length) return "max_tokens";
  if (!c.calls.empty()) return "tool_use";
  if (!stop_sequence.is_null()) return "stop_sequence";
  return "end_turn";
}

}  // namespace

void Server::anthropic_count_tokens(const httplib::Request& req, httplib::Response& res) {
  anthropic_errors(res, [&] {
    authenticate(req);
    const json body = parse_json_body(req.body, opt_.max_body_bytes);
    AnthropicTask task = parse_anthropic_request(body, routes_, limits_, /*count_tokens=*/true);
    const std::vector<int32_t> prompt = chat_prompt(task.chat);
    res.set_content(dump({{"input_tokens", prompt.size()}}), "application/json");
  });
}

void Server::anthropic_messages(const httplib::Request& req, httplib::Response& res) {
  anthropic_errors(res, [&] {
    const Auth auth = authenticate(req);
    const json body = parse_json_body(req.body, opt_.max_body_bytes);
    auto task = std::make_shared<AnthropicTask>(parse_anthropic_request(body, routes_, limits_));
    ChatTask& chat = task->chat;
    std::vector<int32_t> prompt = chat_prompt(chat);
    const auto run = start_chat(auth, chat, std::move(prompt), "anthropic", "msg");
    const auto session = run->session;
    const auto choices = run->choices;
    const auto finish_accounting = run->finish_accounting;
    const auto track_first = run->track_first;
    const int64_t n_prompt = run->n_prompt;
    const bool thinking = chat.thinking;
    const Tokenizer* tok = &engine_->tokenizer();
    auto message = [session](json content) {
      return json{{"id", session->id}, {"type", "message"}, {"role", "assistant"}, {"model", session->model},
                  {"content", std::move(content)}, {"stop_reason", nullptr}, {"stop_sequence", nullptr}};
    };
    auto cancel_all = [choices, finish_accounting](bool) {  // connection finished or dropped: stop generating
      for (auto& c : *choices) c->handle->cancel();
      finish_accounting("cancelled");
    };

    if (chat.stream) {
      res.set_header("Cache-Control", "no-cache");
      res.set_header("X-Accel-Buffering", "no");
      res.set_chunked_content_provider(
          "text/event-stream",
          [session, choices, finish_accounting, track_first, message, task, thinking, tok, n_prompt](size_t, httplib::DataSink& sink) {
            auto send = [&](const char* event, const json& data) {
              const std::string s = fmt::format("event: {}\ndata: {}\n\n", event, dump(data));
              return sink.write(s.data(), s.size());
            };
            // Content blocks are opened as the parser switches between reasoning, text and tool calls; each
            // thinking block ends with its signature, as Anthropic's streams do.
            int index = -1;
            std::string open;  // "", "thinking", "text"
            std::string block_thinking;
            auto close = [&]() {
              if (open.empty()) return true;
              bool w = true;
              if (open == "thinking")
                w = send("content_block_delta", {{"type", "content_block_delta"}, {"index", index},
                                                 {"delta", {{"type", "signature_delta"}, {"signature", thinking_signature(block_thinking)}}}});
              open.clear();
              return w && send("content_block_stop", {{"type", "content_block_stop"}, {"index", index}});
            };
            auto start = [&](const std::string& type) {
              if (open == type) return true;
              if (!close()) return false;
              open = type;
              block_thinking.clear();
              json block = type == "thinking" ? json{{"type", "thinking"}, {"thinking", ""}, {"signature", ""}}
                                              : json{{"type", "text"}, {"text", ""}};
              return send("content_block_start", {{"type", "content_block_start"}, {"index", ++index}, {"content_block", block}});
            };
            json start_msg = message(json::array());
            start_msg["usage"] = {{"input_tokens", n_prompt}, {"output_tokens", 0}, {"cache_read_input_tokens", 0},
                                  {"cache_creation_input_tokens", 0}};
            bool ok = send("message_start", {{"type", "message_start"}, {"message", start_msg}}) &&
                      send("ping", {{"type", "ping"}});
            // A thinking answer always has its thinking block, even empty, so sending the message back as
            // returned satisfies the reasoning rule of tool turns.
            if (ok && thinking) ok = start("thinking");
            bool failed = false;
            if (ok)
              ok = pump(*choices,
                        [&](size_t, const GenerationEvent& ev, const OutputParser::Delta& d) {
                          Server::Choice& c = *(*choices)[0];
                          track_first(c, d);
                          bool w = true;
                          if (!d.reasoning.empty()) {
                            w = start("thinking");
                            block_thinking += d.reasoning;
                            w = w && send("content_block_delta", {{"type", "content_block_delta"}, {"index", index},
                                                                  {"delta", {{"type", "thinking_delta"}, {"thinking", d.reasoning}}}});
                          }
                          if (w && !d.content.empty())
                            w = start("text") && send("content_block_delta", {{"type", "content_block_delta"}, {"index", index},
                                                                              {"delta", {{"type", "text_delta"}, {"text", d.content}}}});
                          for (const auto& call : d.tool_calls) {
                            if (!w) break;
                            w = close() &&
                                send("content_block_start", {{"type", "content_block_start"}, {"index", ++index},
                                                             {"content_block", {{"type", "tool_use"}, {"id", call.id}, {"name", call.name}, {"input", json::object()}}}}) &&
                                send("content_block_delta", {{"type", "content_block_delta"}, {"index", index},
                                                             {"delta", {{"type", "input_json_delta"}, {"partial_json", dump(tool_input(call.arguments))}}}}) &&
                                send("content_block_stop", {{"type", "content_block_stop"}, {"index", index}});
                          }
                          if (w && ev.finished && ev.finish_reason == FinishReason::Error) {
                            failed = true;
                            w = send("error", {{"type", "error"}, {"error", {{"type", "api_error"}, {"message", "generation failed: " + ev.error}}}});
                          }
                          return w;
                        },
                        [&] { return send("ping", {{"type", "ping"}}); });
            if (ok && !failed) {
              const Server::Choice& c = *(*choices)[0];
              const json seq = stop_sequence_of(*tok, c, task->stop_sequences);
              ok = close() &&
                   send("message_delta", {{"type", "message_delta"}, {"delta", {{"stop_reason", stop_reason(c, seq)}, {"stop_sequence", seq}}},
                                          {"usage", anthropic_usage(count_usage(*choices))}}) &&
                   send("message_stop", {{"type", "message_stop"}});
            }
            finish_accounting(ok && !failed ? "done" : failed ? "error" : "cancelled");
            if (ok) sink.done();
            return ok;
          },
          cancel_all);
      return;
    }
    // Non-streaming: spaces (valid leading JSON whitespace) while waiting notice a client that went away.
    res.set_chunked_content_provider(
        "application/json",
        [session, choices, finish_accounting, track_first, message, task, thinking, tok](size_t, httplib::DataSink& sink) {
          bool ok = pump(*choices,
                         [&](size_t i, const GenerationEvent&, const OutputParser::Delta& d) {
                           track_first(*(*choices)[i], d);
                           return true;
                         },
                         [&] { return sink.write(" ", 1); }, /*events_write=*/false);
          if (!ok) {
            finish_accounting("cancelled");
            return false;
          }
          const Server::Choice& c = *(*choices)[0];
          std::string out;
          if (c.finish == FinishReason::Error) {
            out = anthropic_error_body(ApiError(500, "generation failed: " + c.error, "server_error"));
          } else {
            json content = json::array();
            if (thinking) content.push_back({{"type", "thinking"}, {"thinking", c.reasoning}, {"signature", thinking_signature(c.reasoning)}});
            if (!c.content.empty()) content.push_back({{"type", "text"}, {"text", c.content}});
            for (const auto& call : c.calls)
              content.push_back({{"type", "tool_use"}, {"id", call.id}, {"name", call.name}, {"input", tool_input(call.arguments)}});
            json m = message(std::move(content));
            const json seq = stop_sequence_of(*tok, c, task->stop_sequences);
            m["stop_reason"] = stop_reason(c, seq);
            m["stop_sequence"] = seq;
            m["usage"] = anthropic_usage(count_usage(*choices));
            out = dump(m);
          }
          ok = sink.write(out.data(), out.size());
          finish_accounting(c.finish == FinishReason::Error ? "error" : "done");
          if (ok) sink.done();
          return ok;
        },
        cancel_all);
  });
}

}  // namespace baleine::server
