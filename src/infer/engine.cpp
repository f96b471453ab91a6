// infer/engine.cpp — the engine thread: admits queued requests into the running batch, advances every running
// sequence by one step, samples, applies stop conditions and pushes events to the handles.
//
// This first version advances each sequence with its own forward call (continuous batching at the scheduler
// level: requests join and leave between steps); the batched forward over a paged latent cache replaces the
// per-sequence loop in step() without changing this interface.
#include "infer/engine.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace baleine {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::None: return "none";
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------------------
// GenerationHandle
// ---------------------------------------------------------------------------------------------------------
std::optional<GenerationEvent> GenerationHandle::next(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (final_taken_) return std::nullopt;
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return std::nullopt;
  GenerationEvent e = std::move(events_.front());
  events_.pop_front();
  if (e.finished) final_taken_ = true;
  return e;
}

void GenerationHandle::cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
}

bool GenerationHandle::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

void GenerationHandle::push(GenerationEvent e) {
  {
    std::lock_guard lock(mu_);
    if (finished_) return;
    if (e.finished) finished_ = true;
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------------------
// Engine
// ---------------------------------------------------------------------------------------------------------
namespace {

using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// log-softmax of `logits` at `token`, and the `top` most likely entries.
GeneratedToken logprob_entry(std::span<const float> logits, int32_t token, int top) {
  const int64_t V = int64_t(logits.size());
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(double(l - mx));
  const float log_z = mx + float(std::log(sum));
  GeneratedToken g;
  g.token = token;
  g.logprob = logits[size_t(token)] - log_z;
  if (top > 0) {
    std::vector<int32_t> idx(static_cast<size_t>(V));
    for (int64_t i = 0; i < V; ++i) idx[size_t(i)] = int32_t(i);
    const int64_t k = std::min<int64_t>(top, V);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
      return logits[size_t(a)] != logits[size_t(b)] ? logits[size_t(a)] > logits[size_t(b)] : a < b;
    });
    for (int64_t i = 0; i < k; ++i) g.top.push_back({idx[size_t(i)], logits[size_t(idx[size_t(i)])] - log_z});
  }
  return g;
}

}  // namespace

struct Engine::Active {
  std::shared_ptr<GenerationHandle> handle;
  GenerationRequest req;
  std::unique_ptr<Sequence> seq;
  Sampler sampler;
  StreamDecoder decoder;
  std::vector<int32_t> context;    // prompt + generated
  std::vector<int32_t> generated;
  std::vector<int32_t> stop_tokens;
  std::string held;                // decoded text held back: it may be the start of a stop string
  int64_t budget = 0;
  bool prefilled = false, done = false;
  GenerationUsage usage;
  Clock::time_point started, first_token;

  Active(std::shared_ptr<GenerationHandle> h, GenerationRequest r, const Tokenizer& tok)
      : handle(std::move(h)), req(std::move(r)), sampler(req.params.sampling),
        decoder(tok, req.params.skip_special_tokens) {}
};

Engine::Engine(std::shared_ptr<CausalLM> model, std::shared_ptr<const Tokenizer> tokenizer, EngineOptions options)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), options_(options) {
  BALEINE_CHECK(model_ != nullptr && tokenizer_ != nullptr, "engine needs a model and a tokenizer");
  BALEINE_CHECK(options_.max_batch >= 1, "max_batch must be at least 1, got {}", options_.max_batch);
  BALEINE_CHECK(options_.max_queue >= 0, "max_queue must not be negative, got {}", options_.max_queue);
  const int64_t model_ctx = model_->config().max_position_embeddings;
  context_ = options_.context > 0 ? std::min(options_.context, model_ctx) : std::min<int64_t>(model_ctx, 4096);
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { shutdown(false); }

std::shared_ptr<GenerationHandle> Engine::submit(GenerationRequest r) {
  const GenerationParams& p = r.params;
  const int64_t vocab = model_->config().vocab_size, n = int64_t(r.prompt.size());
  BALEINE_CHECK(n > 0, "the prompt is empty");
  for (int32_t t : r.prompt) BALEINE_CHECK(t >= 0 && t < vocab, "prompt token {} is outside the vocabulary [0, {})", t, vocab);
  BALEINE_CHECK(n < context_, "the prompt has {} tokens; the context holds {}", n, context_);
  BALEINE_CHECK(p.max_tokens >= 1, "max_tokens must be at least 1, got {}", p.max_tokens);
  BALEINE_CHECK(n + p.max_tokens <= context_,
                "the prompt ({} tokens) plus max_tokens ({}) exceeds the context of {} tokens", n, p.max_tokens, context_);
  BALEINE_CHECK(p.top_logprobs >= 0 && p.top_logprobs <= 20, "top_logprobs must be in 0..20, got {}", p.top_logprobs);
  for (int32_t t : p.stop_tokens) BALEINE_CHECK(t >= 0 && t < vocab, "stop token {} is outside the vocabulary", t);
  for (const auto& s : p.stop_strings) BALEINE_CHECK(!s.empty(), "stop strings must not be empty");
  std::shared_ptr<GenerationHandle> h;
  {
    std::lock_guard lock(mu_);
    if (stopping_) throw Error("[Engine::submit] the engine is shutting down");
    if (int64_t(queue_.size()) >= options_.max_queue + options_.max_batch)
      throw QueueFullError(fmt::format("[Engine::submit] the queue is full ({} waiting)", queue_.size()));
    h = std::make_shared<GenerationHandle>(next_id_++);
    queue_.emplace_back(h, std::move(r));
    ++stats_.queued;
  }
  cv_.notify_all();
  return h;
}

void Engine::shutdown(bool drain) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) drain_ = drain;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

EngineStats Engine::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Engine::loop() {
  std::vector<std::unique_ptr<Active>> active;
  auto finish = [&](Active& a, FinishReason reason, const std::string& error) {
    GenerationEvent e;
    e.finished = true;
    e.finish_reason = reason;
    e.error = error;
    if (reason != FinishReason::Error && reason != FinishReason::Cancelled) {
      e.text = a.held + a.decoder.flush();
      a.held.clear();
    }
    a.usage.completion_tokens = int64_t(a.generated.size());
    e.usage = a.usage;
    a.done = true;
    a.handle->push(std::move(e));
  };
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !active.empty(); });
      if (stopping_ && !drain_) {
        for (auto& [h, r] : queue_) {
          GenerationEvent e;
          e.finished = true;
          e.finish_reason = FinishReason::Cancelled;
          h->push(std::move(e));
        }
        queue_.clear();
        stats_.queued = 0;
        lock.unlock();
        for (auto& a : active) finish(*a, FinishReason::Cancelled, "");
        return;
      }
      if (stopping_ && queue_.empty() && active.empty()) return;
      while (!queue_.empty() && int64_t(active.size()) < options_.max_batch) {
        auto [h, r] = std::move(queue_.front());
        queue_.pop_front();
        --stats_.queued;
        auto a = std::make_unique<Active>(std::move(h), std::move(r), *tokenizer_);
        a->started = Clock::now();
        active.push_back(std::move(a));
      }
      stats_.running = int64_t(active.size());
    }
    for (auto& a : active) {
      if (a->seq) continue;
      const GenerationParams& p = a->req.params;
      a->budget = p.max_tokens;
      a->stop_tokens = p.stop_tokens;
      if (!p.ignore_eos && tokenizer_->eos_id() >= 0) a->stop_tokens.push_back(tokenizer_->eos_id());
      a->context = a->req.prompt;
      a->usage.prompt_tokens = int64_t(a->req.prompt.size());
      try {
        a->seq = model_->new_sequence(int64_t(a->req.prompt.size()) + a->budget);
      } catch (const std::exception& ex) {
        finish(*a, FinishReason::Error, ex.what());
      }
    }
    step(active);
    std::erase_if(active, [](const std::unique_ptr<Active>& a) { return a->done; });
  }
}

void Engine::step(std::vector<std::unique_ptr<Active>>& active) {
  const int64_t V = model_->config().vocab_size;
  uint64_t prompt_tokens = 0, generated = 0, finished = 0, stepped = 0;
  for (auto& ap : active) {
    Active& a = *ap;
    if (a.done) continue;
    const GenerationParams& p = a.req.params;
    auto finish = [&](FinishReason reason, const std::string& error, GenerationEvent e = {}) {
      e.finished = true;
      e.finish_reason = reason;
      e.error = error;
      if (reason != FinishReason::Error && reason != FinishReason::Cancelled) {
        e.text += a.held + a.decoder.flush();
        a.held.clear();
      }
      a.usage.completion_tokens = int64_t(a.generated.size());
      a.usage.decode_seconds = a.prefilled ? seconds_between(a.first_token, Clock::now()) : 0;
      e.usage = a.usage;
      a.done = true;
      ++finished;
      a.handle->push(std::move(e));
    };
    if (a.handle->cancelled()) { finish(FinishReason::Cancelled, ""); continue; }
    GenerationEvent ev;
    std::vector<float> row;
    try {
      if (!a.prefilled) {
        a.usage.queue_seconds = seconds_between(a.handle->created(), a.started);
        Tensor logits = model_->forward(*a.seq, a.req.prompt);  // [T, V]
        const float* l = logits.f32();
        const int64_t T = logits.dim(0);
        if (p.prompt_logprobs) {
          ev.prompt_logprobs.push_back({a.req.prompt[0], 0.0f, {}});
          for (int64_t t = 1; t < T; ++t)
            ev.prompt_logprobs.push_back(
                logprob_entry({l + (t - 1) * V, size_t(V)}, a.req.prompt[size_t(t)], p.top_logprobs));
        }
        row.assign(l + (T - 1) * V, l + T * V);
        a.prefilled = true;
        a.first_token = Clock::now();
        a.usage.prefill_seconds = seconds_between(a.started, a.first_token);
        prompt_tokens += uint64_t(T);
      } else {
        const int32_t last = a.generated.back();
        Tensor logits = model_->forward(*a.seq, std::span<const int32_t>(&last, 1));
        row.assign(logits.f32(), logits.f32() + V);
      }
    } catch (const std::exception& ex) {
      finish(FinishReason::Error, ex.what());
      continue;
    }
    ++stepped;
    std::vector<float> raw;
    if (p.logprobs) raw = row;
    apply_penalties(row, p.sampling, a.generated, a.context);
    if (p.constraint) p.constraint->mask(row);
    const int32_t tok = a.sampler.sample(row);
    if (p.constraint) p.constraint->accept(tok);
    a.generated.push_back(tok);
    a.context.push_back(tok);
    ++generated;
    GeneratedToken g = p.logprobs ? logprob_entry(raw, tok, p.top_logprobs) : GeneratedToken{tok, 0.0f, {}};
    ev.tokens.push_back(std::move(g));
    if (std::find(a.stop_tokens.begin(), a.stop_tokens.end(), tok) != a.stop_tokens.end()) {
      finish(FinishReason::Stop, "", std::move(ev));
      continue;
    }
    a.held += a.decoder.push(tok);
    // Stop strings: cut at the first match; otherwise hold back the longest tail that could still start one.
    size_t cut = std::string::npos;
    for (const auto& s : p.stop_strings) cut = std::min(cut, a.held.find(s));
    if (cut != std::string::npos) {
      ev.text = a.held.substr(0, cut);
      a.held.clear();
      a.decoder.flush();
      finish(FinishReason::Stop, "", std::move(ev));
      continue;
    }
    size_t keep = 0;
    for (const auto& s : p.stop_strings)
      for (size_t k = std::min(s.size() - 1, a.held.size()); k > keep; --k)
        if (a.held.compare(a.held.size() - k, k, s, 0, k) == 0) { keep = k; break; }
    ev.text = a.held.substr(0, a.held.size() - keep);
    a.held.erase(0, a.held.size() - keep);
    if (p.constraint && p.constraint->complete()) { finish(FinishReason::Stop, "", std::move(ev)); continue; }
    if (int64_t(a.generated.size()) >= a.budget) { finish(FinishReason::Length, "", std::move(ev)); continue; }
    a.handle->push(std::move(ev));
  }
  std::lock_guard lock(mu_);
  stats_.prompt_tokens += prompt_tokens;
  stats_.generated_tokens += generated;
  stats_.requests_finished += finished;
  stats_.steps += stepped > 0 ? 1 : 0;
  stats_.batched_sequences += stepped;
}

}  // namespace baleine
