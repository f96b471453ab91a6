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
  SamplerChain chain;
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
      : handle(std::move(h)), req(std::move(r)),
        chain(SamplerChain::standard(req.params.sampling, req.params.constraint)),
        decoder(tok, req.params.skip_special_tokens) {}
};

Engine::Engine(std::shared_ptr<CausalLM> model, std::shared_ptr<const Tokenizer> tokenizer, EngineOptions options)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), options_(options) {
  BALEINE_CHECK(model_ != nullptr && tokenizer_ != nullptr, "engine needs a model and a tokenizer");
  BALEINE_CHECK(options_.max_batch >= 1, "max_batch must be at least 1, got {}", options_.max_batch);
  BALEINE_CHECK(options_.max_queue >= 0, "max_queue must not be negative, got {}", options_.max_queue);
  BALEINE_CHECK(options_.kv_block_size >= 1, "kv_block_size must be at least 1, got {}", options_.kv_block_size);
  BALEINE_CHECK(options_.kv_cache_tokens >= 0, "kv_cache_tokens must not be negative");
  BALEINE_CHECK(options_.prefill_chunk >= 1, "prefill_chunk must be at least 1, got {}", options_.prefill_chunk);
  const int64_t model_ctx = model_->config().max_position_embeddings;
  context_ = options_.context > 0 ? std::min(options_.context, model_ctx) : std::min<int64_t>(model_ctx, 4096);
  const int64_t bs = options_.kv_block_size;
  const int64_t tokens = options_.kv_cache_tokens > 0 ? options_.kv_cache_tokens : options_.max_batch * context_;
  // At least one full-context sequence must fit.
  pool_ = model_->new_kv_pool(std::max((tokens + bs - 1) / bs, (context_ + bs - 1) / bs), bs);
  if (options_.prefix_cache) cache_ = std::make_unique<PrefixCache>(pool_);
  stats_.kv_blocks_total = pool_->max_blocks();
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

bool Engine::start(Active& a, bool alone) {
  const GenerationParams& p = a.req.params;
  const int64_t n = int64_t(a.req.prompt.size());
  a.budget = p.max_tokens;
  a.stop_tokens = p.stop_tokens;
  if (!p.ignore_eos && tokenizer_->eos_id() >= 0) a.stop_tokens.push_back(tokenizer_->eos_id());
  a.context = a.req.prompt;
  a.usage.prompt_tokens = n;
  a.seq = model_->new_sequence(pool_, n + a.budget);
  // Reuse cached blocks of the prompt, leaving at least its last token to compute (its logits start the
  // completion). Prompt logprobs need every prompt position's logits, so those requests compute everything.
  if (cache_ && !p.prompt_logprobs) {
    std::vector<int32_t> blocks = cache_->lookup(a.req.prompt, n - 1);
    a.seq->adopt_prefix(blocks);
    a.usage.cached_prompt_tokens = a.seq->length();
  }
  // All blocks the request can need are taken now, so a running request never runs out of cache.
  try {
    a.seq->reserve(n + a.budget);
  } catch (const Error&) {
    a.seq.reset();
    a.usage.cached_prompt_tokens = 0;
    if (alone) throw;
    return false;
  }
  return true;
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
    a.seq.reset();
    a.handle->push(std::move(e));
  };
  while (true) {
    std::vector<std::unique_ptr<Active>> admitted;
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
      while (!queue_.empty() && int64_t(active.size() + admitted.size()) < options_.max_batch) {
        auto [h, r] = std::move(queue_.front());
        queue_.pop_front();
        --stats_.queued;
        auto a = std::make_unique<Active>(std::move(h), std::move(r), *tokenizer_);
        a->started = Clock::now();
        admitted.push_back(std::move(a));
      }
    }
    // Admission needs KV blocks: a request that does not fit waits (back at the queue's head) until running
    // ones finish; one that does not fit an empty engine fails.
    for (size_t i = 0; i < admitted.size(); ++i) {
      Active& a = *admitted[i];
      bool ok = false;
      try {
        ok = start(a, active.empty());
      } catch (const std::exception& ex) {
        finish(a, FinishReason::Error, ex.what());
        continue;
      }
      if (ok) { active.push_back(std::move(admitted[i])); continue; }
      std::lock_guard lock(mu_);
      for (size_t j = admitted.size(); j-- > i;) {
        queue_.emplace_front(std::move(admitted[j]->handle), std::move(admitted[j]->req));
        ++stats_.queued;
      }
      break;
    }
    {
      std::lock_guard lock(mu_);
      stats_.running = int64_t(active.size());
    }
    if (active.empty()) continue;
    step(active);
    std::erase_if(active, [](const std::unique_ptr<Active>& a) { return a->done; });
  }
}

void Engine::step(std::vector<std::unique_ptr<Active>>& active) {
  const int64_t V = model_->config().vocab_size;
  uint64_t prompt_tokens = 0, cached_tokens = 0, generated = 0, finished = 0, stepped = 0;
  auto finish = [&](Active& a, FinishReason reason, const std::string& error, GenerationEvent e = {}) {
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
    // Offer the sequence's full blocks (prompt and completion) to the prefix cache before releasing them.
    if (cache_ && a.seq) cache_->insert(std::span(a.context).first(size_t(a.seq->length())), a.seq->blocks());
    a.seq.reset();
    a.handle->push(std::move(e));
  };

  // One batch: a prompt chunk for sequences still prefilling, the last sampled token for the others.
  std::vector<BatchItem> items;
  std::vector<Active*> owners;
  std::vector<int32_t> last_tokens(active.size());
  for (size_t i = 0; i < active.size(); ++i) {
    Active& a = *active[i];
    if (a.done) continue;
    if (a.handle->cancelled()) { finish(a, FinishReason::Cancelled, ""); continue; }
    BatchItem it;
    it.seq = a.seq.get();
    if (!a.prefilled) {
      const int64_t n = int64_t(a.req.prompt.size()), p0 = a.seq->length();
      // Prompt logprobs are computed in one pass (every position's logits at once).
      const int64_t len = a.req.params.prompt_logprobs ? n - p0 : std::min(options_.prefill_chunk, n - p0);
      if (p0 == a.usage.cached_prompt_tokens) a.usage.queue_seconds = seconds_between(a.handle->created(), a.started);
      it.tokens = std::span(a.req.prompt).subspan(size_t(p0), size_t(len));
      it.all_logits = a.req.params.prompt_logprobs;
    } else {
      last_tokens[i] = a.generated.back();
      it.tokens = std::span<const int32_t>(&last_tokens[i], 1);
    }
    items.push_back(it);
    owners.push_back(&a);
  }
  if (!items.empty()) {
    Tensor logits;
    try {
      logits = model_->forward_batch(items, options_.mla_mode);
    } catch (const std::exception& ex) {
      for (Active* a : owners) finish(*a, FinishReason::Error, ex.what());
      owners.clear();
    }
    int64_t row0 = 0;
    for (size_t i = 0; i < owners.size(); ++i) {
      Active& a = *owners[i];
      const BatchItem& it = items[i];
      const GenerationParams& p = a.req.params;
      const int64_t T = int64_t(it.tokens.size()), rows = it.all_logits ? T : 1;
      const float* l = logits.f32() + row0 * V;
      row0 += rows;
      ++stepped;
      GenerationEvent ev;
      if (!a.prefilled) {
        prompt_tokens += uint64_t(T);
        if (a.seq->length() < int64_t(a.req.prompt.size())) continue;  // more prompt chunks to go
        if (p.prompt_logprobs) {
          ev.prompt_logprobs.push_back({a.req.prompt[0], 0.0f, {}});
          for (int64_t t = 1; t < T; ++t)
            ev.prompt_logprobs.push_back(
                logprob_entry({l + (t - 1) * V, size_t(V)}, a.req.prompt[size_t(t)], p.top_logprobs));
        }
        l += (rows - 1) * V;
        a.prefilled = true;
        a.first_token = Clock::now();
        a.usage.prefill_seconds = seconds_between(a.started, a.first_token);
        cached_tokens += uint64_t(a.usage.cached_prompt_tokens);
        // The prompt's full blocks are shareable from now on.
        if (cache_) cache_->insert(a.req.prompt, a.seq->blocks());
      }
      std::span<const float> row(l, size_t(V));
      const SamplerContext ctx{a.generated, a.context};
      Candidates cand = a.chain.filter(row, ctx);  // penalties, constraint mask, temperature, top-k/p, min-p
      const int32_t tok = a.chain.draw(cand);
      if (p.constraint) p.constraint->accept(tok);
      a.generated.push_back(tok);
      a.context.push_back(tok);
      ++generated;
      GeneratedToken g = p.logprobs ? logprob_entry(row, tok, p.top_logprobs) : GeneratedToken{tok, 0.0f, {}};
      ev.tokens.push_back(std::move(g));
      if (std::find(a.stop_tokens.begin(), a.stop_tokens.end(), tok) != a.stop_tokens.end()) {
        finish(a, FinishReason::Stop, "", std::move(ev));
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
        finish(a, FinishReason::Stop, "", std::move(ev));
        continue;
      }
      size_t keep = 0;
      for (const auto& s : p.stop_strings)
        for (size_t k = std::min(s.size() - 1, a.held.size()); k > keep; --k)
          if (a.held.compare(a.held.size() - k, k, s, 0, k) == 0) { keep = k; break; }
      ev.text = a.held.substr(0, a.held.size() - keep);
      a.held.erase(0, a.held.size() - keep);
      if (p.constraint && p.constraint->complete()) { finish(a, FinishReason::Stop, "", std::move(ev)); continue; }
      if (int64_t(a.generated.size()) >= a.budget) { finish(a, FinishReason::Length, "", std::move(ev)); continue; }
      a.handle->push(std::move(ev));
    }
  }
  std::lock_guard lock(mu_);
  stats_.prompt_tokens += prompt_tokens;
  stats_.cached_prompt_tokens += cached_tokens;
  stats_.generated_tokens += generated;
  stats_.requests_finished += finished;
  stats_.steps += stepped > 0 ? 1 : 0;
  stats_.batched_sequences += stepped;
  stats_.kv_blocks_used = pool_->used_blocks();
  stats_.prefix_cache_blocks = cache_ ? cache_->blocks() : 0;
}

}  // namespace baleine
