// server/chat_run.h — internal to the server: one chat generation in flight (its choices, the accounting of the
// request), shared by the endpoints that turn a ChatTask into text — /v1/chat/completions (server.cpp) and
// /anthropic/v1/messages (anthropic_api.cpp) — so that both wire formats run exactly the same generation.
// defines: Server::Choice, Session, Server::ChatRun, pump, count_usage, new_id, unix_now
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/server.h"

namespace baleine::server {

// One generated choice: its handle and what has come out of it so far.
struct Server::Choice {
  std::shared_ptr<GenerationHandle> handle;
  OutputParser parser;
  std::string content, reasoning, text;
  std::vector<ToolCall> calls;
  std::vector<GeneratedToken> tokens, prompt_logprobs;
  FinishReason finish = FinishReason::None;
  std::string error;
  GenerationUsage usage;
  int64_t reasoning_tokens = 0;
  bool done = false, got_first = false;
  double reasoning_started = -1, reasoning_seconds = 0;
  Choice(std::shared_ptr<GenerationHandle> h, bool starts_in_reasoning, bool reasoning_allowed = true)
      : handle(std::move(h)), parser(starts_in_reasoning, reasoning_allowed) {}
};

// What one HTTP request generates: its choices plus accounting. Shared by the handler and the content provider.
struct Session {
  std::string id, model, endpoint;
  int64_t created = 0, ledger_id = 0, key_id = 0;
  Prices prices;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  bool stream = false, include_usage = false, finished_accounting = false;
  // Web chat: the assistant message being written into a conversation.
  int64_t message_id = 0;
  std::string conversation_id;
};

using Choices = std::vector<std::unique_ptr<Server::Choice>>;

// A submitted chat generation (Server::start_chat). The three callbacks capture the session and the choices, so
// content providers may copy them and outlive the handler.
struct Server::ChatRun {
  std::shared_ptr<Session> session;
  std::shared_ptr<Choices> choices;
  int64_t n_prompt = 0;
  // Ledger, metrics, rate limiter and the web chat's stored message, exactly once (provider end or teardown).
  std::function<void(const std::string& status)> finish_accounting;
  // Web chat: the message's progress, saved at most every half second so a crash loses at most that.
  std::function<void()> save_progress;
  // First-token and reasoning-duration timings of a choice, called with every delta.
  std::function<void(Choice&, const OutputParser::Delta&)> track_first;
};

// Pumps events from every choice until all are finished. on_event(choice index, event, parser delta) for each
// event; keepalive() is called when nothing was written for a while and returns false once the client is gone,
// which cancels every choice.
// events_write: on_event writes to the client (streaming); otherwise keepalive() runs every second regardless.
bool pump(Choices& choices, const std::function<bool(size_t, const GenerationEvent&, const OutputParser::Delta&)>& on_event,
          const std::function<bool()>& keepalive, bool events_write = true);
UsageCount count_usage(const Choices& choices);
std::string new_id(const char* prefix);
int64_t unix_now();

}  // namespace baleine::server
