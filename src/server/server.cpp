#include "server/server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <chrono>
#include <functional>
#include <thread>

#include "server/anthropic_api.h"
#include "server/chat_run.h"
#include "server/http_guard.h"
#include "server/web_assets.h"

namespace baleine::server {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  if (e.retry_after > 0) res.set_header("Retry-After", std::to_string(e.retry_after));
  res.set_content(error_body(e), "application/json");
}

const char* finish_name(FinishReason r, bool tool_calls) {
  if (tool_calls && r == FinishReason::Stop) return "tool_calls";
  switch (r) {
    case FinishReason::Length: return "length";
    case FinishReason::Error: return "error";
    default: return "stop";
  }
}

// with_index: streamed deltas carry each call's position among all calls of the choice (first_index + i).
json tool_calls_json(const std::vector<ToolCall>& calls, bool with_index, size_t first_index = 0) {
  json a = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json c = {{"id", calls[i].id}, {"type", "function"},
              {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}};
    if (with_index) c["index"] = first_index + i;
    a.push_back(std::move(c));
  }
  return a;
}

json bytes_json(const std::string& s) {
  json a = json::array();
  for (unsigned char c : s) a.push_back(int(c));
  return a;
}

}  // namespace

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string new_id(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  return fmt::format("{}-{:x}{:06x}", prefix, unix_now(), counter.fetch_add(1) & 0xFFFFFF);
}

namespace {

GuardOptions guard_options(const ServerOptions& o) {
  GuardOptions g;
  g.max_connections = o.http_threads;
  g.max_connections_per_client = o.max_connections_per_client;
  g.header_timeout_s = o.header_timeout_s;
  g.body_timeout_s = o.body_timeout_s;
  g.max_body_bytes = o.max_body_bytes;
  g.body_budget_bytes = std::max<size_t>(g.body_budget_bytes, o.max_body_bytes);
  g.allowed_hosts = o.allowed_hosts;
  // Bound to every address, the server is meant to be reached under any name; on loopback, only as localhost.
  g.loopback_bind = is_loopback_host(o.host);
  if (!o.cors_origin.empty()) g.allowed_origins.push_back(o.cors_origin);
  return g;
}

}  // namespace

Server::Server(std::shared_ptr<Engine> engine, ServerOptions options)
    : engine_(std::move(engine)), opt_(std::move(options)), http_(std::make_unique<GuardedHttpServer>(guard_options(opt_))) {
  store_ = std::make_unique<Store>(opt_.db_path);
  const std::string agent_db = opt_.db_path == ":memory:" ? ":memory:" : opt_.db_path + ".agent";
  assistants_ = std::make_unique<agent::AssistantStore>(agent_db);
  responses_ = std::make_unique<agent::ResponseStore>(agent_db);
  embed_cache_ = std::make_shared<agent::EmbeddingCache>(agent_db);
  if (!opt_.mcp_config.empty()) mcp_ = McpHub::from_file(opt_.mcp_config);
  const Tokenizer& tok = engine_->tokenizer();
  vocab_ = agent::VocabIndex::build(tok);
  for (int32_t id = 0; id < tok.vocab_size(); ++id) max_token_bytes_ = std::max(max_token_bytes_, tok.token_bytes(id).size());
  // The chat format (--chat-format, or tokenizer_config.json's baleine_chat_format) decides what thinking each
  // name can do: see make_routes.
  routes_ = make_routes(opt_.model_id, opt_.format);
  limits_.vocab_size = tok.vocab_size();
  for (const char* t : {"<｜User｜>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>"})
    if (auto id = tok.token_id(t)) stop_tokens_.push_back(*id);
  limits_.context = engine_->context();
  limits_.default_max_tokens = opt_.default_max_tokens;
  // A chat message or usage entry that was being written when the previous process died stays visible as such.
  store_->mark_interrupted();
  routes();
}

Server::~Server() = default;

void Server::bind() {
  if (opt_.port == 0) {
    port_ = http_->bind_to_any_port(opt_.host);
    BALEINE_CHECK(port_ > 0, "cannot bind {}:<any port>", opt_.host);
  } else {
    BALEINE_CHECK(http_->bind_to_port(opt_.host, opt_.port), "cannot bind {}:{} (in use? try --port)", opt_.host, opt_.port);
    port_ = opt_.port;
  }
  http_->widen_backlog();
}

void Server::run() { http_->listen_after_bind(); }

void Server::drain_and_stop() {
  draining_ = true;
  const auto t0 = Clock::now();
  while (metrics_.in_flight.load() > 0 && since(t0) < opt_.drain_timeout_s)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  http_->stop();
  engine_->shutdown(/*drain=*/metrics_.in_flight.load() == 0);
  if (images_) images_->shutdown();
}

Server::Auth Server::authenticate(const httplib::Request& req) {
  Auth a{0, opt_.default_rpm, opt_.default_tpm};
  const bool required = opt_.api_keys_required || store_->any_active_key();
  std::string header = req.get_header_value("Authorization");
  // Anthropic's clients send the key as x-api-key; it is the same key.
  if (header.empty() && req.has_header("x-api-key")) header = "Bearer " + req.get_header_value("x-api-key");
  if (header.empty() && !required) return a;
  if (header.rfind("Bearer ", 0) != 0) {
    if (!required) return a;
    throw ApiError(401, "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>' (create one with `baleine keys create`)",
                   "authentication_error", "", "invalid_api_key");
  }
  auto key = store_->find_key(header.substr(7));
  if (!key) {
    if (!required) return a;
    throw ApiError(401, "Incorrect API key provided", "authentication_error", "", "invalid_api_key");
  }
  a.key_id = key->id;
  if (key->rpm > 0) a.rpm = key->rpm;
  if (key->tpm > 0) a.tpm = key->tpm;
  return a;
}

void Server::check_admission(const Auth& a) {
  if (draining_) {
    ApiError e(503, "The server is shutting down", "server_error", "", "server_shutting_down");
    e.retry_after = 5;
    throw e;
  }
  if (a.rpm > 0 || a.tpm > 0) {
    if (int wait = limiter_.admit(a.key_id, a.rpm, a.tpm); wait > 0) {
      ApiError e(429, fmt::format("Rate limit reached for this key ({} requests / {} tokens per minute); retry in {} s",
                                  a.rpm, a.tpm, wait),
                 "rate_limit_error", "", "rate_limit_exceeded");
      e.retry_after = wait;
      throw e;
    }
  }
}

std::vector<int32_t> Server::encode_prompt(const std::string& text) const {
  // A text longer than the context could hold even if every token were the vocabulary's longest is refused before
  // the tokenizer runs: learning that 2 MB do not fit cost ~45 MB of memory and ~0.3 s per request.
  if (max_token_bytes_ > 0 && text.size() / max_token_bytes_ >= size_t(limits_.context))
    throw ApiError(400, fmt::format("This model's maximum context length is {} tokens; the messages have {} bytes, "
                                    "at least {} tokens", limits_.context, text.size(), text.size() / max_token_bytes_),
                   "invalid_request_error", "messages", "context_length_exceeded");
  return engine_->tokenizer().encode(text, /*add_bos=*/false, /*allow_special=*/true);
}

std::vector<std::shared_ptr<GenerationHandle>> Server::submit_all(std::vector<GenerationRequest> reqs) {
  std::vector<std::shared_ptr<GenerationHandle>> handles;
  try {
    for (auto& r : reqs) handles.push_back(engine_->submit(std::move(r)));
  } catch (const QueueFullError& e) {
    for (auto& h : handles) h->cancel();
    ApiError err(503, "The server is overloaded (generation queue full); retry later", "server_error", "", "queue_full");
    err.retry_after = 1;
    throw err;
  } catch (const Error& e) {
    for (auto& h : handles) h->cancel();
    throw ApiError(400, e.what());
  }
  return handles;
}

void Server::routes() {
  auto& s = *http_;
  if (!opt_.cors_origin.empty()) {
    s.set_default_headers({{"Access-Control-Allow-Origin", opt_.cors_origin},
                           {"Access-Control-Allow-Headers", "Authorization, Content-Type, x-api-key, anthropic-version, anthropic-beta"},
                           {"Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS"}});
    s.Options(R"(.*)", [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
  }
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string msg = res.status == 404   ? fmt::format("Unknown endpoint {} {}", req.method, req.path.substr(0, 200))
                      : res.status == 413 ? "The request body is too large"
                      : res.status == 405 ? "Method not allowed"
                                          : fmt::format("HTTP {}", res.status);
    const ApiError e(res.status, msg, res.status >= 500 ? "server_error" : "invalid_request_error");
    // Under /anthropic the client is an Anthropic SDK: answer in its error shape.
    res.set_content(req.path.rfind("/anthropic/", 0) == 0 ? anthropic_error_body(e) : error_body(e), "application/json");
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    ApiError e(500, "internal error", "server_error");
    try {
      std::rethrow_exception(ep);
    } catch (const ApiError& a) {
      e = a;
    } catch (const std::exception& x) {
      e = ApiError(500, x.what(), "server_error");
    }
    send_error(res, e);
  });
  // Every handler: errors become OpenAI error bodies; every answer is counted.
  auto wrap = [this](const char* name, std::function<void(const httplib::Request&, httplib::Response&)> f) {
    return [this, name, f](const httplib::Request& req, httplib::Response& res) {
      try {
        f(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const json::exception& e) {
        send_error(res, ApiError(400, fmt::format("invalid request: {}", e.what())));
      } catch (const Error& e) {
        send_error(res, ApiError(400, e.what()));
      } catch (const std::exception& e) {
        send_error(res, ApiError(500, e.what(), "server_error"));
      }
      metrics_.request(name, res.status < 0 ? 200 : res.status);  // -1: a content provider answers 200 later
    };
  };
  for (const std::string prefix : {"", "/v1"}) {
    s.Post(prefix + "/chat/completions", wrap("chat", [this](auto& q, auto& r) { chat(q, r); }));
    s.Post(prefix + "/completions", wrap("completions", [this](auto& q, auto& r) { completions(q, r); }));
    s.Post(prefix + "/responses", wrap("responses", [this](auto& q, auto& r) { responses(q, r); }));
    s.Post(prefix + "/embeddings", wrap("embeddings", [this](auto& q, auto& r) { embeddings(q, r); }));
    s.Post(prefix + "/images/generations", wrap("images", [this](auto& q, auto& r) { images(q, r); }));
    const std::string assistants_path = prefix + R"(/assistants(/[^/]+(/documents(/[^/]+)?)?)?)";
    auto assistants = wrap("assistants", [this](auto& q, auto& r) { assistants_api(q, r); });
    s.Get(assistants_path, assistants);
    s.Post(assistants_path, assistants);
    s.Delete(assistants_path, assistants);
    s.Post(prefix + "/beta/completions", wrap("completions", [this](auto& q, auto& r) { completions(q, r); }));
    s.Get(prefix + "/models", wrap("models", [this](const httplib::Request& q, httplib::Response& r) {
      authenticate(q);
      json data = json::array();
      for (const auto& m : routes_) {
        json e = {{"id", m.id}, {"object", "model"}, {"created", 0}, {"owned_by", "baleine"}, {"context_length", limits_.context}};
        e.update(model_capabilities(m));
        data.push_back(std::move(e));
      }
      r.set_content(dump({{"object", "list"}, {"data", data}}), "application/json");
    }));
  }
  // Anthropic's Messages API (DeepSeek's base URL for Anthropic clients is <server>/anthropic); its handlers
  // answer errors in Anthropic's shape themselves.
  s.Post("/anthropic/v1/messages", wrap("anthropic", [this](auto& q, auto& r) { anthropic_messages(q, r); }));
  s.Post("/anthropic/v1/messages/count_tokens", wrap("anthropic", [this](auto& q, auto& r) { anthropic_count_tokens(q, r); }));
  // Tokenizer endpoints as vLLM has them (lm-evaluation-harness uses them as its "remote" tokenizer).
  s.Get("/tokenizer_info", wrap("tokenizer", [this](const httplib::Request& q, httplib::Response& r) {
    authenticate(q);
    const Tokenizer& tok = engine_->tokenizer();
    auto text_of = [&](int32_t id) { return id >= 0 ? json(tok.token_bytes(id)) : json(); };
    auto pad = tok.token_id("<｜▁pad▁｜>");
    r.set_content(dump({{"eos_token", text_of(tok.eos_id())}, {"bos_token", text_of(tok.bos_id())},
                        {"pad_token", pad ? json(tok.token_bytes(*pad)) : json()}, {"model_max_length", limits_.context},
                        {"vocab_size", tok.vocab_size()}}),
                  "application/json");
  }));
  s.Post("/tokenize", wrap("tokenizer", [this](const httplib::Request& q, httplib::Response& r) {
    authenticate(q);
    const json b = parse_json_body(q.body, opt_.max_body_bytes);
    if (!b.contains("prompt") || !b["prompt"].is_string()) throw ApiError(400, "'prompt' must be a string", "invalid_request_error", "prompt");
    const bool special = b.value("add_special_tokens", false);
    const Tokenizer& tok = engine_->tokenizer();
    std::vector<int32_t> ids = tok.encode(b["prompt"].get<std::string>(), special && tok.bos_id() >= 0, true);
    r.set_content(dump({{"tokens", ids}, {"count", ids.size()}, {"max_model_len", limits_.context}}), "application/json");
  }));
  s.Post("/detokenize", wrap("tokenizer", [this](const httplib::Request& q, httplib::Response& r) {
    authenticate(q);
    const json b = parse_json_body(q.body, opt_.max_body_bytes);
    const Tokenizer& tok = engine_->tokenizer();
    std::vector<int32_t> ids;
    if (!b.contains("tokens") || !b["tokens"].is_array()) throw ApiError(400, "'tokens' must be an array of token ids", "invalid_request_error", "tokens");
    for (const auto& x : b["tokens"]) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= tok.vocab_size())
        throw ApiError(400, fmt::format("token ids must be integers in [0, {})", tok.vocab_size()), "invalid_request_error", "tokens");
      ids.push_back(x.get<int32_t>());
    }
    r.set_content(dump({{"prompt", tok.decode(ids)}}), "application/json");
  }));
  s.Get("/health", wrap("health", [this](const httplib::Request&, httplib::Response& r) {
    const EngineStats st = engine_->stats();
    r.status = draining_ ? 503 : 200;
    r.set_content(dump({{"status", draining_ ? "draining" : "ok"}, {"model", opt_.model_id}, {"queued", st.queued},
                        {"running", st.running}, {"in_flight", metrics_.in_flight.load()},
                        {"context", limits_.context}}),
                  "application/json");
  }));
  s.Get("/metrics", wrap("metrics", [this](const httplib::Request& q, httplib::Response& r) {
    authenticate(q);  // behind the keys when keys are in use: it names models, traffic and limits
    r.set_content(metrics_.render(engine_->stats()), "text/plain; version=0.0.4");
  }));
  s.Get(R"(/api/conversations.*)", wrap("conversations", [this](auto& q, auto& r) { conversations_api(q, r); }));
  s.Post(R"(/api/conversations.*)", wrap("conversations", [this](auto& q, auto& r) { conversations_api(q, r); }));
  s.Patch(R"(/api/conversations.*)", wrap("conversations", [this](auto& q, auto& r) { conversations_api(q, r); }));
  s.Delete(R"(/api/conversations.*)", wrap("conversations", [this](auto& q, auto& r) { conversations_api(q, r); }));
  s.Get("/api/config", wrap("config", [this](const httplib::Request&, httplib::Response& r) {
    json models = json::array();
    for (const auto& m : routes_) {
      json e = {{"id", m.id}, {"prices", {{"input_cache_hit", opt_.prices.get(m.id).input_cache_hit},
                                          {"input_cache_miss", opt_.prices.get(m.id).input_cache_miss},
                                          {"output", opt_.prices.get(m.id).output}}}};
      e.update(model_capabilities(m));
      models.push_back(std::move(e));
    }
    r.set_content(dump({{"models", models}, {"model", opt_.model_id}, {"context", limits_.context},
                        {"keys_required", opt_.api_keys_required || store_->any_active_key()}}),
                  "application/json");
  }));
  if (opt_.web) {
    s.Get(R"(/|/index\.html|/app\.js|/agent\.js|/style\.css|/markdown\.js)", [](const httplib::Request& q, httplib::Response& r) {
      const WebAsset* a = find_web_asset(q.path == "/" ? "/index.html" : q.path);
      if (!a) { r.status = 404; return; }
      r.set_content(std::string(reinterpret_cast<const char*>(a->data), a->size), a->mime);
      r.set_header("Cache-Control", "no-cache");
      // The page runs only its own scripts and may not be framed (clickjacking) or leak its address onwards.
      r.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
                   "form-action 'self'; frame-ancestors 'none'");
      r.set_header("X-Frame-Options", "DENY");
      r.set_header("X-Content-Type-Options", "nosniff");
      r.set_header("Referrer-Policy", "no-referrer");
    });
  }
}

// ------------------------------------------------------------------------------------------------------------
// Generation plumbing
// ------------------------------------------------------------------------------------------------------------
bool pump(Choices& choices, const std::function<bool(size_t, const GenerationEvent&, const OutputParser::Delta&)>& on_event,
          const std::function<bool()>& keepalive, bool events_write) {
  auto last_write = Clock::now();
  bool alive = true;
  while (true) {
    bool all_done = true, got = false;
    for (size_t i = 0; i < choices.size(); ++i) {
      Server::Choice& c = *choices[i];
      if (c.done) continue;
      all_done = false;
      auto ev = c.handle->next(std::chrono::milliseconds(got ? 0 : 100));
      if (!ev) continue;
      got = true;
      const bool was_reasoning = c.parser.in_reasoning();
      OutputParser::Delta d = c.parser.push(ev->text);
      if (ev->finished) {
        OutputParser::Delta tail = c.parser.finish();
        d.reasoning += tail.reasoning;
        d.content += tail.content;
        for (auto& t : tail.tool_calls) d.tool_calls.push_back(std::move(t));
      }
      if (was_reasoning) c.reasoning_tokens += int64_t(ev->tokens.size());
      c.text += ev->text;
      c.reasoning += d.reasoning;
      c.content += d.content;
      for (auto& t : d.tool_calls) {
        t.id = agent::new_tool_call_id();  // the parser numbers calls; clients expect OpenAI-style unique ids
        c.calls.push_back(t);
      }
      for (const auto& t : ev->tokens) c.tokens.push_back(t);
      if (!ev->prompt_logprobs.empty()) c.prompt_logprobs = ev->prompt_logprobs;
      if (ev->finished) {
        c.done = true;
        c.finish = ev->finish_reason;
        c.error = ev->error;
        c.usage = ev->usage;
      }
      if (alive) {
        if (!on_event(i, *ev, d)) alive = false;
        else if (events_write) last_write = Clock::now();
      }
    }
    if (all_done) return alive;
    if (alive && since(last_write) > 1.0) {
      if (!keepalive()) alive = false;
      last_write = Clock::now();
    }
    if (!alive) {
      for (auto& c : choices) c->handle->cancel();
    }
  }
}

UsageCount count_usage(const Choices& choices) {
  UsageCount u;
  for (size_t i = 0; i < choices.size(); ++i) {
    const auto& c = *choices[i];
    if (i == 0) {  // n choices share one prompt (the engine prefills each; we bill it once, as OpenAI does)
      u.prompt_tokens = c.usage.prompt_tokens;
      u.cached_tokens = c.usage.cached_prompt_tokens;
    }
    u.completion_tokens += c.usage.completion_tokens;
    u.reasoning_tokens += c.reasoning_tokens;
  }
  return u;
}

namespace {

json chat_logprobs(const Tokenizer& tok, const std::vector<GeneratedToken>& tokens) {
  json content = json::array();
  for (const auto& t : tokens) {
    const std::string s = tok.token_bytes(t.token);
    json top = json::array();
    for (const auto& a : t.top) {
      const std::string as = tok.token_bytes(a.token);
      top.push_back({{"token", as}, {"logprob", a.logprob}, {"bytes", bytes_json(as)}});
    }
    content.push_back({{"token", s}, {"logprob", t.logprob}, {"bytes", bytes_json(s)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

}  // namespace

// The decoding constraint of one choice (each choice needs its own state): tools (tool_choice none / auto /
// required / named) or response_format. Thinking requests reason freely first: the grammar starts after </think>,
// and the reasoning_effort's budget (reasoning_budget) forces </think> once spent.
std::shared_ptr<TokenConstraint> Server::make_constraint(const ChatTask& task, const ModelRoute& route) const {
  const int64_t max_tokens = task.params.max_tokens;
  std::shared_ptr<TokenConstraint> c;
  try {
    if (!task.tools.empty()) {
      agent::ToolConstraintOptions o;
      o.parallel_tool_calls = task.parallel_tool_calls;
      o.max_tokens = max_tokens;
      c = agent::make_tool_constraint(task.tools, task.tool_choice, vocab_, o);
    } else if (task.response_grammar) {
      agent::GrammarConstraintOptions go;
      go.max_tokens = max_tokens;
      c = std::make_shared<agent::GrammarConstraint>(task.response_grammar, vocab_, go);
    }
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "invalid_request_error", "max_tokens");
  }
  if (generation_starts_in_reasoning(route.format, task.thinking)) {
    if (auto g = std::dynamic_pointer_cast<agent::GrammarConstraint>(c)) {
      // A grammar answer (json_schema, a forced call) after the reasoning: the deferred constraint forces
      // </think> just early enough for it to fit; an effort budget on top could leave it too little room.
      agent::DeferredOptions d;
      d.max_tokens = max_tokens;
      d.force = true;
      // The value must come: no stop token may end the output while it is still reasoning (found by the
      // LangChain test, where a forced tool call in thinking mode ended at <｜User｜> inside the reasoning).
      d.forbidden_before = stop_tokens_;
      return std::make_shared<agent::DeferredConstraint>("</think>", g, vocab_, d);
    }
    const int64_t budget = task.reasoning_budget_tokens > 0 ? std::min(task.reasoning_budget_tokens, max_tokens)
                                                            : reasoning_budget(task.reasoning_effort, max_tokens);
    if (budget < max_tokens) c = std::make_shared<agent::ReasoningBudgetConstraint>(budget, c, vocab_);
  }
  return c;
}

std::vector<int32_t> Server::chat_prompt(ChatTask& task) const {
  const ModelRoute& route = *task.route;
  const bool use_tools = !task.tools.empty() && task.tool_choice.mode != agent::ToolChoiceMode::None;
  if (use_tools) task.messages = agent::add_tools_to_messages(std::move(task.messages), task.tools, task.tool_choice);
  std::string prompt_text;
  ChatTemplateOptions topt;
  topt.thinking = task.thinking;
  try {
    if (task.prefix) {  // DeepSeek's chat prefix completion: continue the last assistant message as written
      std::vector<ChatMessage> history(task.messages.begin(), task.messages.end() - 1);
      prompt_text = apply_chat_template(route.format, history, topt) + task.messages.back().content;
    } else {
      prompt_text = apply_chat_template(route.format, task.messages, topt);
    }
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "invalid_request_error", "messages");
  }
  std::vector<int32_t> prompt = encode_prompt(prompt_text);
  const int64_t n_prompt = int64_t(prompt.size());
  if (n_prompt >= limits_.context)
    throw ApiError(400, fmt::format("This model's maximum context length is {} tokens; the messages have {} tokens",
                                    limits_.context, n_prompt),
                   "invalid_request_error", "messages", "context_length_exceeded");
  if (task.max_tokens_given && n_prompt + task.params.max_tokens > limits_.context)
    throw ApiError(400, fmt::format("This model's maximum context length is {} tokens; the messages ({} tokens) plus "
                                    "max_tokens ({}) exceed it", limits_.context, n_prompt, task.params.max_tokens),
                   "invalid_request_error", "max_tokens", "context_length_exceeded");
  if (!task.max_tokens_given) task.params.max_tokens = std::min(task.params.max_tokens, limits_.context - n_prompt);
  if (!task.params.ignore_eos)
    for (int32_t t : stop_tokens_) task.params.stop_tokens.push_back(t);
  return prompt;
}

std::shared_ptr<Server::ChatRun> Server::start_chat(const Auth& auth, ChatTask& task, std::vector<int32_t> prompt,
                                                    const char* endpoint, const char* id_prefix) {
  const ModelRoute& route = *task.route;
  const int64_t n_prompt = int64_t(prompt.size());
  check_admission(auth);
  if (!task.conversation_id.empty()) {
    auto conv = store_->get_conversation(task.conversation_id);
    if (!conv || conv->key_id != auth.key_id)
      throw ApiError(404, "no such conversation", "invalid_request_error", "conversation_id");
  }

  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < task.n; ++i) {
    GenerationRequest r{prompt, task.params};
    r.params.sampling.seed += uint64_t(i);
    r.params.constraint = make_constraint(task, route);
    reqs.push_back(std::move(r));
  }
  auto handles = submit_all(std::move(reqs));
  auto session = std::make_shared<Session>();
  session->id = new_id(id_prefix);
  session->model = route.id;
  session->endpoint = endpoint;
  session->created = unix_now();
  session->prices = opt_.prices.get(route.id);
  session->key_id = auth.key_id;
  session->stream = task.stream;
  session->include_usage = task.include_usage;
  session->ledger_id = store_->ledger_begin(auth.key_id, endpoint, route.id, n_prompt * task.n);
  if (auth.tpm > 0) limiter_.add_tokens(auth.key_id, n_prompt);
  if (!task.conversation_id.empty()) {
    StoredMessage m;
    m.conversation_id = task.conversation_id;
    m.role = "assistant";
    m.model = route.id;
    m.status = "streaming";
    session->conversation_id = task.conversation_id;
    session->message_id = store_->add_message(m);
  }
  auto choices = std::make_shared<std::vector<std::unique_ptr<Choice>>>();
  const bool in_reasoning = generation_starts_in_reasoning(route.format, task.thinking);
  // Thinking turned off on a hybrid model: nothing it writes is reasoning (see OutputParser).
  const bool reasoning_allowed = !(route.thinking == ThinkingSupport::Toggle && !task.thinking);
  for (auto& h : handles) choices->push_back(std::make_unique<Choice>(h, in_reasoning, reasoning_allowed));
  ++metrics_.in_flight;
  // Finishes the accounting exactly once (provider end or connection teardown).
  auto finish_accounting = [this, session, choices](const std::string& status) {
    if (session->finished_accounting) return;
    session->finished_accounting = true;
    UsageCount u = count_usage(*choices);
    LedgerEntry e;
    e.status = status;
    e.prompt_tokens = u.prompt_tokens;
    e.cached_tokens = u.cached_tokens;
    e.completion_tokens = u.completion_tokens;
    e.reasoning_tokens = u.reasoning_tokens;
    e.cost_usd = cost_usd(u, session->prices);
    store_->ledger_end(session->ledger_id, e);
    metrics_.tokens(u.prompt_tokens, u.cached_tokens, u.completion_tokens);
    metrics_.duration.observe(since(session->t0));
    for (const auto& c : *choices) metrics_.queue_wait.observe(c->usage.queue_seconds);
    limiter_.add_tokens(session->key_id, u.completion_tokens);
    if (session->message_id) {
      const Choice& c = *choices->front();
      StoredMessage m;
      m.id = session->message_id;
      m.content = c.content;
      m.reasoning = c.reasoning;
      m.reasoning_seconds = c.reasoning_seconds;
      m.prompt_tokens = u.prompt_tokens;
      m.completion_tokens = c.usage.completion_tokens;
      m.cost_usd = e.cost_usd;
      m.status = status == "done" ? "done" : "stopped";
      store_->update_message(m);
    }
    --metrics_.in_flight;
  };

  // Progress of the web chat's message, saved every half second so a crash loses at most that.
  auto save_progress = [this, session, choices, last = std::make_shared<Clock::time_point>(Clock::now())]() {
    if (!session->message_id || since(*last) < 0.5) return;
    *last = Clock::now();
    const Choice& c = *choices->front();
    StoredMessage m;
    m.id = session->message_id;
    m.content = c.content;
    m.reasoning = c.reasoning;
    m.reasoning_seconds = c.reasoning_started >= 0 ? since(session->t0) - c.reasoning_started : 0;
    m.completion_tokens = int64_t(c.tokens.size());
    m.status = "streaming";
    store_->update_message(m);
  };
  auto track_first = [this, session](Choice& c, const OutputParser::Delta& d) {
    if (!c.got_first) {
      c.got_first = true;
      metrics_.ttft.observe(since(session->t0));
    }
    const double t = since(session->t0);
    if (!d.reasoning.empty() && c.reasoning_started < 0) c.reasoning_started = t;
    if (c.reasoning_started >= 0 && c.reasoning_seconds == 0 && (!d.content.empty() || c.done))
      c.reasoning_seconds = t - c.reasoning_started;
  };

  auto run = std::make_shared<ChatRun>();
  run->session = session;
  run->choices = choices;
  run->n_prompt = n_prompt;
  run->finish_accounting = finish_accounting;
  run->save_progress = save_progress;
  run->track_first = track_first;
  return run;
}

void Server::chat(const httplib::Request& req, httplib::Response& res) {
  const Auth auth = authenticate(req);
  const json body = parse_json_body(req.body, opt_.max_body_bytes);
  if (is_vision_chat(body)) return vision_chat(auth, body, res);  // the Janus image model reads pictures
  if (has_server_tools(body)) return chat_with_server_tools(auth, body, res);
  ChatTask task = parse_chat_request(body, routes_, limits_);
  std::vector<int32_t> prompt = chat_prompt(task);
  const auto run = start_chat(auth, task, std::move(prompt), "chat", "chatcmpl");
  const auto session = run->session;
  const auto choices = run->choices;
  const auto finish_accounting = run->finish_accounting;
  const auto save_progress = run->save_progress;
  const auto track_first = run->track_first;
  const bool want_logprobs = task.params.logprobs, thinking = task.thinking;
  const Tokenizer* tok = &engine_->tokenizer();
  if (task.stream) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, session, choices, finish_accounting, save_progress, track_first, want_logprobs, thinking, tok](size_t, httplib::DataSink& sink) {
          auto send = [&](const json& chunk) {
            const std::string line = "data: " + dump(chunk) + "\n\n";
            return sink.write(line.data(), line.size());
          };
          auto chunk = [&](json choices_json) {
            json c = {{"id", session->id}, {"object", "chat.completion.chunk"}, {"created", session->created},
                      {"model", session->model}, {"system_fingerprint", "baleine"}, {"choices", std::move(choices_json)}};
            if (session->include_usage) c["usage"] = nullptr;
            return c;
          };
          bool ok = true;
          for (size_t i = 0; i < choices->size() && ok; ++i)
            ok = send(chunk(json::array({{{"index", i}, {"delta", thinking ? json{{"role", "assistant"}, {"content", ""}, {"reasoning_content", ""}}
                                                                            : json{{"role", "assistant"}, {"content", ""}}},
                                          {"logprobs", nullptr}, {"finish_reason", nullptr}}})));
          if (ok)
            ok = pump(*choices,
                      [&](size_t i, const GenerationEvent& ev, const OutputParser::Delta& d) {
                        Choice& c = *(*choices)[i];
                        track_first(c, d);
                        save_progress();
                        bool w = true;
                        json delta = json::object();
                        if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
                        if (!d.content.empty()) delta["content"] = d.content;
                        if (!d.tool_calls.empty()) delta["tool_calls"] = tool_calls_json(d.tool_calls, true, c.calls.size() - d.tool_calls.size());
                        if (!delta.empty() || (want_logprobs && !ev.tokens.empty())) {
                          json ch = {{"index", i}, {"delta", delta}, {"finish_reason", nullptr},
                                     {"logprobs", want_logprobs ? chat_logprobs(*tok, ev.tokens) : json()}};
                          w = send(chunk(json::array({ch})));
                        }
                        if (w && ev.finished) {
                          if (ev.finish_reason == FinishReason::Error) {
                            w = send({{"error", {{"message", ev.error}, {"type", "server_error"}, {"param", nullptr}, {"code", nullptr}}}});
                          } else {
                            w = send(chunk(json::array({{{"index", i}, {"delta", json::object()}, {"logprobs", nullptr},
                                                         {"finish_reason", finish_name(ev.finish_reason, !c.calls.empty())}}})));
                          }
                        }
                        return w;
                      },
                      [&] { return sink.write(": keep-alive\n\n", 14); });
          if (ok && session->include_usage) {
            json c = chunk(json::array());
            c["usage"] = usage_json(count_usage(*choices), session->prices);
            ok = send(c);
          }
          if (ok) ok = sink.write("data: [DONE]\n\n", 14);
          finish_accounting(ok ? "done" : "cancelled");
          if (ok) sink.done();
          return ok;
        },
        [choices, finish_accounting](bool) {  // connection finished or dropped: never leave a generation running
          for (auto& c : *choices) c->handle->cancel();
          finish_accounting("cancelled");
        });
    return;
  }
  // Non-streaming: the body is written once at the end; spaces (valid leading JSON whitespace) are sent while
  // waiting so that a client that went away is noticed and its generation cancelled.
  res.set_chunked_content_provider(
      "application/json",
      [this, session, choices, finish_accounting, save_progress, track_first, want_logprobs, thinking, tok](size_t, httplib::DataSink& sink) {
        bool ok = pump(*choices,
                       [&](size_t i, const GenerationEvent&, const OutputParser::Delta& d) {
                         track_first(*(*choices)[i], d);
                         save_progress();
                         return true;
                       },
                       [&] { return sink.write(" ", 1); }, /*events_write=*/false);
        if (!ok) {
          finish_accounting("cancelled");
          return false;
        }
        json out_choices = json::array();
        std::string error;
        for (size_t i = 0; i < choices->size(); ++i) {
          const Choice& c = *(*choices)[i];
          if (c.finish == FinishReason::Error) error = c.error;
          json msg = {{"role", "assistant"}, {"content", c.content}};
          // Thinking replies always carry reasoning_content (possibly empty), so a client that sends the message
          // back as returned satisfies the tool-loop rule in parse_chat_request.
          if (!c.reasoning.empty() || thinking) msg["reasoning_content"] = c.reasoning;
          if (!c.calls.empty()) msg["tool_calls"] = tool_calls_json(c.calls, false);
          out_choices.push_back({{"index", i}, {"message", msg},
                                 {"logprobs", want_logprobs ? chat_logprobs(*tok, c.tokens) : json()},
                                 {"finish_reason", finish_name(c.finish, !c.calls.empty())}});
        }
        std::string body;
        if (!error.empty()) {
          body = error_body(ApiError(500, "generation failed: " + error, "server_error"));
        } else {
          body = dump({{"id", session->id}, {"object", "chat.completion"}, {"created", session->created},
                       {"model", session->model}, {"system_fingerprint", "baleine"}, {"choices", out_choices},
                       {"usage", usage_json(count_usage(*choices), session->prices)}});
        }
        ok = sink.write(body.data(), body.size());
        finish_accounting(error.empty() ? "done" : "error");
        if (ok) sink.done();
        return ok;
      },
      [choices, finish_accounting](bool) {
        for (auto& c : *choices) c->handle->cancel();
        finish_accounting("cancelled");
      });
}

// ------------------------------------------------------------------------------------------------------------
// POST /completions: text or token prompts, FIM through suffix, echo, logprobs (lm-evaluation-harness style)
// ------------------------------------------------------------------------------------------------------------
void Server::completions(const httplib::Request& req, httplib::Response& res) {
  const Auth auth = authenticate(req);
  const json body = parse_json_body(req.body, opt_.max_body_bytes);
  CompletionTask task = parse_completion_request(body, routes_, limits_);
  const Tokenizer& tok = engine_->tokenizer();
  std::vector<std::vector<int32_t>> prompts = task.token_prompts;
  for (const auto& text : task.text_prompts) {
    std::string full = text;
    if (task.has_suffix) {
      auto begin = tok.token_id("<｜fim▁begin｜>"), hole = tok.token_id("<｜fim▁hole｜>"), end = tok.token_id("<｜fim▁end｜>");
      if (!begin || !hole || !end)
        throw ApiError(400, "this model's tokenizer has no fill-in-the-middle tokens; 'suffix' is not supported", "invalid_request_error", "suffix");
      full = "<｜fim▁begin｜>" + text + "<｜fim▁hole｜>" + task.suffix + "<｜fim▁end｜>";
    }
    std::vector<int32_t> ids;
    if (tok.bos_id() >= 0) ids.push_back(tok.bos_id());
    auto enc = tok.encode(full, false, /*allow_special=*/true);
    ids.insert(ids.end(), enc.begin(), enc.end());
    prompts.push_back(std::move(ids));
  }
  for (const auto& p : prompts) {
    for (int32_t t : p)
      if (t >= tok.vocab_size()) throw ApiError(400, fmt::format("prompt token {} is outside the vocabulary [0, {})", t, tok.vocab_size()), "invalid_request_error", "prompt");
    const int64_t n = int64_t(p.size());
    if (n >= limits_.context)
      throw ApiError(400, fmt::format("This model's maximum context length is {} tokens; the prompt has {} tokens", limits_.context, n),
                     "invalid_request_error", "prompt", "context_length_exceeded");
    if (task.max_tokens_given && n + task.params.max_tokens > limits_.context)
      throw ApiError(400, fmt::format("This model's maximum context length is {} tokens; the prompt ({} tokens) plus max_tokens ({}) exceed it",
                                      limits_.context, n, task.params.max_tokens),
                     "invalid_request_error", "max_tokens", "context_length_exceeded");
  }
  if (!task.params.ignore_eos)
    for (int32_t t : stop_tokens_) task.params.stop_tokens.push_back(t);
  check_admission(auth);
  std::vector<GenerationRequest> reqs;
  for (const auto& p : prompts)
    for (int i = 0; i < task.n; ++i) {
      GenerationRequest r{p, task.params};
      r.params.max_tokens = std::min<int64_t>(r.params.max_tokens, limits_.context - int64_t(p.size()));
      r.params.sampling.seed += uint64_t(i);
      reqs.push_back(std::move(r));
    }
  auto handles = submit_all(std::move(reqs));
  auto session = std::make_shared<Session>();
  session->id = new_id("cmpl");
  session->model = task.route->id;
  session->created = unix_now();
  session->prices = opt_.prices.get(task.route->id);
  session->key_id = auth.key_id;
  int64_t total_prompt = 0;
  for (const auto& p : prompts) total_prompt += int64_t(p.size()) * task.n;
  session->ledger_id = store_->ledger_begin(auth.key_id, "completions", task.route->id, total_prompt);
  if (auth.tpm > 0) limiter_.add_tokens(auth.key_id, total_prompt);
  auto choices = std::make_shared<std::vector<std::unique_ptr<Choice>>>();
  for (auto& h : handles) choices->push_back(std::make_unique<Choice>(h, false));
  ++metrics_.in_flight;
  const bool zero = task.zero_max_tokens;
  auto usage_of = [choices, zero] {
    UsageCount u;
    for (const auto& c : *choices) {  // every prompt is its own sequence here
      u.prompt_tokens += c->usage.prompt_tokens;
      u.cached_tokens += c->usage.cached_prompt_tokens;
      u.completion_tokens += zero ? 0 : c->usage.completion_tokens;
    }
    return u;
  };
  auto finish_accounting = [this, session, choices, usage_of](const std::string& status) {
    if (session->finished_accounting) return;
    session->finished_accounting = true;
    UsageCount u = usage_of();
    LedgerEntry e;
    e.status = status;
    e.prompt_tokens = u.prompt_tokens;
    e.cached_tokens = u.cached_tokens;
    e.completion_tokens = u.completion_tokens;
    e.cost_usd = cost_usd(u, session->prices);
    store_->ledger_end(session->ledger_id, e);
    metrics_.tokens(u.prompt_tokens, u.cached_tokens, u.completion_tokens);
    metrics_.duration.observe(since(session->t0));
    for (const auto& c : *choices) metrics_.queue_wait.observe(c->usage.queue_seconds);
    limiter_.add_tokens(session->key_id, u.completion_tokens);
    --metrics_.in_flight;
  };
  // The OpenAI completions logprobs object over prompt (echo) and generated tokens.
  const int top = task.logprobs;
  auto logprobs_of = [&tok, top](const std::vector<GeneratedToken>& prompt_lp, const std::vector<GeneratedToken>& gen) {
    json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
    int64_t offset = 0;
    auto add = [&](const GeneratedToken& g, bool first_prompt) {
      const std::string s = tok.token_bytes(g.token);
      tokens.push_back(s);
      offsets.push_back(offset);
      offset += int64_t(s.size());
      if (first_prompt) {
        lps.push_back(nullptr);
        tops.push_back(nullptr);
        return;
      }
      lps.push_back(g.logprob);
      json t = json::object();
      for (int k = 0; k < top && k < int(g.top.size()); ++k) t[tok.token_bytes(g.top[size_t(k)].token)] = g.top[size_t(k)].logprob;
      tops.push_back(top > 0 ? t : json());
    };
    for (size_t i = 0; i < prompt_lp.size(); ++i) add(prompt_lp[i], i == 0);
    for (const auto& g : gen) add(g, false);
    return json{{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
  };
  auto prompt_texts = std::make_shared<std::vector<std::string>>();
  for (const auto& p : prompts) {
    // Echo returns the prompt as given; for text prompts that is the text (without the BOS we added).
    std::vector<int32_t> shown = p;
    if (!task.token_prompts.empty() || shown.empty() || shown[0] != tok.bos_id()) prompt_texts->push_back(tok.decode(shown));
    else prompt_texts->push_back(tok.decode(std::span<const int32_t>(shown).subspan(1)));
  }
  const bool echo = task.echo, want_lp = task.logprobs >= 0, include_usage = task.include_usage;
  const int n = task.n;
  if (task.stream) {
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [session, choices, finish_accounting, usage_of, logprobs_of, prompt_texts, echo, want_lp, include_usage, zero](size_t, httplib::DataSink& sink) {
          auto send = [&](json c) {
            const std::string line = "data: " + dump(c) + "\n\n";
            return sink.write(line.data(), line.size());
          };
          auto chunk = [&](const std::string& text, const char* finish, json lp) {
            return json{{"id", session->id}, {"object", "text_completion"}, {"created", session->created}, {"model", session->model},
                        {"choices", json::array({{{"index", 0}, {"text", text}, {"logprobs", lp},
                                                  {"finish_reason", finish ? json(finish) : json()}}})}};
          };
          bool ok = true;
          if (echo) ok = send(chunk((*prompt_texts)[0], nullptr, nullptr));
          if (ok)
            ok = pump(*choices,
                      [&](size_t, const GenerationEvent& ev, const OutputParser::Delta&) {
                        bool w = true;
                        if (!zero && (!ev.text.empty() || !ev.tokens.empty()))
                          w = send(chunk(ev.text, nullptr, want_lp ? logprobs_of({}, ev.tokens) : json()));
                        if (w && ev.finished) w = send(chunk("", finish_name(ev.finish_reason, false), nullptr));
                        return w;
                      },
                      [&] { return sink.write(": keep-alive\n\n", 14); });
          if (ok && include_usage) {
            json c = chunk("", nullptr, nullptr);
            c["choices"] = json::array();
            c["usage"] = usage_json(usage_of(), session->prices);
            ok = send(c);
          }
          if (ok) ok = sink.write("data: [DONE]\n\n", 14);
          finish_accounting(ok ? "done" : "cancelled");
          if (ok) sink.done();
          return ok;
        },
        [choices, finish_accounting](bool) {
          for (auto& c : *choices) c->handle->cancel();
          finish_accounting("cancelled");
        });
    return;
  }
  res.set_chunked_content_provider(
      "application/json",
      [session, choices, finish_accounting, usage_of, logprobs_of, prompt_texts, echo, want_lp, zero, n](size_t, httplib::DataSink& sink) {
        bool ok = pump(*choices, [](size_t, const GenerationEvent&, const OutputParser::Delta&) { return true; },
                       [&] { return sink.write(" ", 1); }, /*events_write=*/false);
        if (!ok) {
          finish_accounting("cancelled");
          return false;
        }
        json out = json::array();
        std::string error;
        for (size_t i = 0; i < choices->size(); ++i) {
          const Choice& c = *(*choices)[i];
          if (c.finish == FinishReason::Error) error = c.error;
          const std::string& ptext = (*prompt_texts)[i / size_t(n)];
          std::string text = (echo ? ptext : "") + (zero ? "" : c.text);
          json lp;
          if (want_lp) lp = logprobs_of(echo ? c.prompt_logprobs : std::vector<GeneratedToken>{}, zero ? std::vector<GeneratedToken>{} : c.tokens);
          out.push_back({{"index", i}, {"text", text}, {"logprobs", lp}, {"finish_reason", zero ? "length" : finish_name(c.finish, false)}});
        }
        std::string body = !error.empty()
                               ? error_body(ApiError(500, "generation failed: " + error, "server_error"))
                               : dump({{"id", session->id}, {"object", "text_completion"}, {"created", session->created},
                                       {"model", session->model}, {"system_fingerprint", "baleine"}, {"choices", out},
                                       {"usage", usage_json(usage_of(), session->prices)}});
        ok = sink.write(body.data(), body.size());
        finish_accounting(error.empty() ? "done" : "error");
        if (ok) sink.done();
        return ok;
      },
      [choices, finish_accounting](bool) {
        for (auto& c : *choices) c->handle->cancel();
        finish_accounting("cancelled");
      });
}

}  // namespace baleine::server
