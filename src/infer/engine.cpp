// infer/engine.cpp — the engine thread: admits queued requests into the running batch, advances every running
// sequence by one step, samples, applies stop conditions and pushes events to the handles.
//
// Each step is one CausalLM::forward_batch over every running request (prompt chunks of those still
// prefilling, one token — or a token and its MTP draft — for the others) in one shared paged KV pool; requests
// join and leave between steps (continuous batching). Design notes: docs/inference.md.
#include "infer/engine.h"

#include <algorithm>
#include <array>
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
// EmbeddingHandle
// ---------------------------------------------------------------------------------------------------------
std::optional<EmbeddingResult> EmbeddingHandle::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return result_.has_value(); })) return std::nullopt;
  return result_;
}

void EmbeddingHandle::cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
}

bool EmbeddingHandle::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

void EmbeddingHandle::finish(EmbeddingResult r) {
  {
    std::lock_guard lock(mu_);
    if (result_) return;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - created_).count();
    result_ = std::move(r);
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

// Probabilities of the candidates scattered over the vocabulary (0 for tokens the chain removed).
std::vector<double> dense_probabilities(const Candidates& c, int64_t V) {
  std::vector<double> p(static_cast<size_t>(V), 0.0);
  const std::vector<double> q = c.probabilities();
  for (int64_t i = 0; i < c.size(); ++i) p[size_t(c.id(i))] = q[size_t(i)];
  return p;
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
  // Speculative decoding with the model's MTP module: its own latent cache (positions aligned with the
  // main sequence's computed positions) and the drafted token that follows the last sampled one.
  bool speculate = false;
  std::unique_ptr<Sequence> mtp_seq;
  int32_t draft = -1;
  std::vector<double> draft_q;     // sampling: the draft distribution over the vocabulary
  GenerationUsage usage;
  Clock::time_point started, first_token;

  Active(std::shared_ptr<GenerationHandle> h, GenerationRequest r, const Tokenizer& tok)
      : handle(std::move(h)), req(std::move(r)),
        chain(SamplerChain::standard(req.params.sampling, req.params.constraint)),
        decoder(tok, req.params.skip_special_tokens) {}
};

// One embedding request: its inputs are admitted one by one (next_input) and finish in any order.
struct Engine::EmbedJob {
  std::shared_ptr<EmbeddingHandle> handle;
  EmbeddingRequest req;
  size_t next_input = 0, remaining = 0;
  bool failed = false;  // finished early (error or cancel): its remaining inputs are dropped
  EmbeddingResult result;
};

// One input of an EmbedJob in the running batch: a sequence that only ever prefills, and the sum of its final
// hidden states so far.
struct Engine::EmbedActive {
  std::shared_ptr<EmbedJob> job;
  size_t index = 0;
  std::unique_ptr<Sequence> seq;  // null until start_embedding found room
  std::vector<double> sum;        // [hidden_size]
  bool done = false;
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
  pool_ = model_->new_kv_pool(std::max((tokens + bs - 1) / bs, (context_ + bs - 1) / bs), bs, options_.kv_dtype);
  BALEINE_CHECK(options_.disk_cache.dir.empty() || options_.prefix_cache, "the disk cache needs the prefix cache");
  if (options_.prefix_cache) cache_ = std::make_unique<PrefixCache>(pool_, options_.disk_cache);
  if (options_.speculative_mtp && model_->has_mtp()) mtp_pool_ = model_->new_mtp_kv_pool(pool_->max_blocks(), bs, options_.kv_dtype);
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

std::shared_ptr<EmbeddingHandle> Engine::submit_embedding(EmbeddingRequest r) {
  const int64_t vocab = model_->config().vocab_size;
  BALEINE_CHECK(!r.inputs.empty(), "the embedding request has no inputs");
  BALEINE_CHECK(r.inputs.size() <= 4096, "the embedding request has {} inputs; at most 4096", r.inputs.size());
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    const auto& in = r.inputs[i];
    BALEINE_CHECK(!in.empty(), "embedding input {} is empty", i);
    BALEINE_CHECK(int64_t(in.size()) <= context_, "embedding input {} has {} tokens; the context holds {}", i, in.size(), context_);
    for (int32_t t : in) BALEINE_CHECK(t >= 0 && t < vocab, "embedding input {}: token {} is outside the vocabulary [0, {})", i, t, vocab);
  }
  auto job = std::make_shared<EmbedJob>();
  job->remaining = r.inputs.size();
  job->result.vectors.resize(r.inputs.size());
  for (const auto& in : r.inputs) job->result.tokens.push_back(int64_t(in.size()));
  job->req = std::move(r);
  {
    std::lock_guard lock(mu_);
    if (stopping_) throw Error("[Engine::submit_embedding] the engine is shutting down");
    if (int64_t(queue_.size() + embed_queue_.size()) >= options_.max_queue + options_.max_batch)
      throw QueueFullError(fmt::format("[Engine::submit_embedding] the queue is full ({} waiting)", queue_.size() + embed_queue_.size()));
    job->handle = std::make_shared<EmbeddingHandle>(next_id_++);
    embed_queue_.push_back(job);
    ++stats_.queued;
  }
  cv_.notify_all();
  return job->handle;
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
  // Constrained requests do not speculate (the constraint must see each token before the next is masked).
  if (mtp_pool_ && !p.constraint) {
    a.speculate = true;
    a.mtp_seq = model_->new_sequence(mtp_pool_, n + a.budget);
  }
  // All blocks the request can need are taken now, so a running request never runs out of cache.
  try {
    a.seq->reserve(n + a.budget);
    if (a.mtp_seq) a.mtp_seq->reserve(n + a.budget);
  } catch (const Error&) {
    a.seq.reset();
    a.mtp_seq.reset();
    a.usage.cached_prompt_tokens = 0;
    if (alone) throw;
    return false;
  }
  return true;
}

bool Engine::start_embedding(EmbedActive& e, bool alone) {
  const int64_t n = int64_t(e.job->req.inputs[e.index].size());
  auto seq = model_->new_sequence(pool_, n);
  try {
    seq->reserve(n);
  } catch (const Error&) {
    if (alone) throw;
    return false;
  }
  e.seq = std::move(seq);
  e.sum.assign(size_t(model_->config().hidden_size), 0.0);
  return true;
}

void Engine::loop() {
  std::vector<std::unique_ptr<Active>> active;
  std::vector<std::unique_ptr<EmbedActive>> embedding;
  // Ends an embedding job early (error or cancel); its inputs still running are dropped at the next step.
  auto fail_job = [](EmbedJob& job, FinishReason reason, const std::string& error) {
    if (job.failed) return;
    job.failed = true;
    EmbeddingResult r;
    r.finish_reason = reason;
    r.error = error;
    r.tokens = job.result.tokens;
    job.handle->finish(std::move(r));
  };
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
      cv_.wait(lock, [&] {
        return stopping_ || !queue_.empty() || !embed_queue_.empty() || !active.empty() || !embedding.empty();
      });
      if (stopping_ && !drain_) {
        for (auto& [h, r] : queue_) {
          GenerationEvent e;
          e.finished = true;
          e.finish_reason = FinishReason::Cancelled;
          h->push(std::move(e));
        }
        queue_.clear();
        for (auto& job : embed_queue_) fail_job(*job, FinishReason::Cancelled, "");
        embed_queue_.clear();
        stats_.queued = 0;
        lock.unlock();
        for (auto& a : active) finish(*a, FinishReason::Cancelled, "");
        for (auto& e : embedding) fail_job(*e->job, FinishReason::Cancelled, "");
        return;
      }
      if (stopping_ && queue_.empty() && embed_queue_.empty() && active.empty() && embedding.empty()) return;
      // Arrival order across both queues (handle ids share one counter); each embedding input takes a slot.
      while (int64_t(active.size() + admitted.size() + embedding.size()) < options_.max_batch) {
        const bool gen = !queue_.empty(), emb = !embed_queue_.empty();
        if (!gen && !emb) break;
        if (emb && (!gen || embed_queue_.front()->handle->id() < queue_.front().first->id())) {
          std::shared_ptr<EmbedJob> job = embed_queue_.front();
          if (job->next_input == 0) job->result.queue_seconds = seconds_between(job->handle->created(), Clock::now());
          auto e = std::make_unique<EmbedActive>();
          e->job = job;
          e->index = job->next_input++;
          embedding.push_back(std::move(e));
          if (job->next_input == job->req.inputs.size()) {
            embed_queue_.pop_front();
            --stats_.queued;
          }
          continue;
        }
        auto [h, r] = std::move(queue_.front());
        queue_.pop_front();
        --stats_.queued;
        auto a = std::make_unique<Active>(std::move(h), std::move(r), *tokenizer_);
        a->started = Clock::now();
        admitted.push_back(std::move(a));
      }
    }
    // Embedding inputs without a sequence yet take their blocks now (or wait for running ones to finish); one
    // that does not fit an otherwise empty engine fails.
    auto holding = [&] {
      return !active.empty() || std::any_of(embedding.begin(), embedding.end(), [](const auto& e) { return e->seq != nullptr; });
    };
    for (auto& e : embedding) {
      if (e->seq || e->job->failed) continue;
      try {
        if (!start_embedding(*e, !holding())) break;
      } catch (const std::exception& ex) {
        fail_job(*e->job, FinishReason::Error, ex.what());
      }
    }
    // Admission needs KV blocks: a request that does not fit waits (back at the queue's head) until running
    // ones finish; one that does not fit an empty engine fails.
    for (size_t i = 0; i < admitted.size(); ++i) {
      Active& a = *admitted[i];
      bool ok = false;
      try {
        ok = start(a, !holding());
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
    for (auto& e : embedding)
      if (e->job->failed || e->job->handle->cancelled()) {
        fail_job(*e->job, FinishReason::Cancelled, "");
        e->done = true;
      }
    std::erase_if(embedding, [](const std::unique_ptr<EmbedActive>& e) { return e->done; });
    {
      std::lock_guard lock(mu_);
      stats_.running = int64_t(active.size() + embedding.size());
    }
    const bool embedding_ready = std::any_of(embedding.begin(), embedding.end(), [](const auto& e) { return e->seq != nullptr; });
    if (active.empty() && !embedding_ready) continue;
    step(active, embedding);
    std::erase_if(active, [](const std::unique_ptr<Active>& a) { return a->done; });
    std::erase_if(embedding, [](const std::unique_ptr<EmbedActive>& e) { return e->done; });
    std::lock_guard lock(mu_);  // "running" stays true to its name while the engine waits for work
    stats_.running = int64_t(active.size() + embedding.size());
  }
}

void Engine::step(std::vector<std::unique_ptr<Active>>& active, std::vector<std::unique_ptr<EmbedActive>>& embedding) {
  const int64_t V = model_->config().vocab_size;
  uint64_t prompt_tokens = 0, generated = 0, stepped = 0;
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
    // Offer the sequence's full blocks (prompt and completion) to the prefix cache before releasing them.
    if (cache_ && a.seq) cache_->insert(std::span(a.context).first(size_t(a.seq->length())), a.seq->blocks());
    a.seq.reset();
    a.mtp_seq.reset();
    {
      // Before the final event goes out, so a caller that saw it also sees the counts.
      std::lock_guard lock(mu_);
      stats_.draft_tokens += uint64_t(a.usage.draft_tokens);
      stats_.accepted_draft_tokens += uint64_t(a.usage.accepted_draft_tokens);
      stats_.requests_finished += 1;
      if (a.prefilled) stats_.cached_prompt_tokens += uint64_t(a.usage.cached_prompt_tokens);
    }
    a.handle->push(std::move(e));
  };

  // Takes one sampled token: logprobs, stop tokens and strings, constraint, budget. True when the request
  // finished (the event went out with the final one); otherwise the token and its text are in `ev`.
  auto take = [&](Active& a, std::span<const float> row, int32_t tok, GenerationEvent& ev) {
    const GenerationParams& p = a.req.params;
    if (p.constraint) p.constraint->accept(tok);
    a.generated.push_back(tok);
    a.context.push_back(tok);
    ++generated;
    GeneratedToken g = p.logprobs ? logprob_entry(row, tok, p.top_logprobs) : GeneratedToken{tok, 0.0f, {}};
    ev.tokens.push_back(std::move(g));
    if (std::find(a.stop_tokens.begin(), a.stop_tokens.end(), tok) != a.stop_tokens.end()) {
      finish(a, FinishReason::Stop, "", std::move(ev));
      return true;
    }
    a.held += a.decoder.push(tok);
    // Stop strings: cut at the first match; otherwise hold back the longest tail that could still start one.
    size_t cut = std::string::npos;
    for (const auto& s : p.stop_strings) cut = std::min(cut, a.held.find(s));
    if (cut != std::string::npos) {
      ev.text += a.held.substr(0, cut);
      a.held.clear();
      a.decoder.flush();
      finish(a, FinishReason::Stop, "", std::move(ev));
      return true;
    }
    size_t keep = 0;
    for (const auto& s : p.stop_strings)
      for (size_t k = std::min(s.size() - 1, a.held.size()); k > keep; --k)
        if (a.held.compare(a.held.size() - k, k, s, 0, k) == 0) { keep = k; break; }
    ev.text += a.held.substr(0, a.held.size() - keep);
    a.held.erase(0, a.held.size() - keep);
    if (p.constraint && p.constraint->complete()) { finish(a, FinishReason::Stop, "", std::move(ev)); return true; }
    if (int64_t(a.generated.size()) >= a.budget) { finish(a, FinishReason::Length, "", std::move(ev)); return true; }
    return false;
  };
  auto sample = [&](Active& a, std::span<const float> row) {
    const SamplerContext ctx{a.generated, a.context};
    return a.chain.draw(a.chain.filter(row, ctx));  // penalties, constraint mask, temperature, top-k/p, min-p
  };
  // The draft for the token after the last sampled one, from the MTP logits (same sampler chain).
  auto make_draft = [&](Active& a, const Tensor& mtp_logits) {
    const SamplerContext ctx{a.generated, a.context};
    const float* l = mtp_logits.f32() + (mtp_logits.dim(0) - 1) * V;
    Candidates c = a.chain.filter({l, size_t(V)}, ctx);
    if (!a.chain.greedy()) a.draft_q = dense_probabilities(c, V);
    a.draft = a.chain.draw(c);
  };
  // Verification of the draft against the main model's distribution at the same position: greedy accepts an
  // exact match; sampling accepts with probability min(1, p(d) / q(d)) and otherwise draws from the residual
  // max(0, p - q) (Leviathan et al. / Chen et al., so the output follows p exactly). Returns the token taken
  // and whether it is the draft.
  auto verify = [&](Active& a, std::span<const float> row) -> std::pair<int32_t, bool> {
    const SamplerContext ctx{a.generated, a.context};
    Candidates c = a.chain.filter(row, ctx);
    if (a.chain.greedy()) {
      const int32_t t = a.chain.draw(c);
      return {t, t == a.draft};
    }
    const std::vector<double> pp = dense_probabilities(c, V);
    const int32_t t = speculative_verify(pp, a.draft_q, a.draft, a.chain.rng());
    return {t, t == a.draft};
  };

  // One batch: a prompt chunk for sequences still prefilling, the last sampled token for the others.
  std::vector<BatchItem> items;
  std::vector<Active*> owners;
  std::vector<std::array<int32_t, 2>> feed(active.size());
  bool want_hidden = false;
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
    } else if (a.speculate && a.draft >= 0) {
      // Verify: the last sampled token and the draft after it, both rows' logits.
      feed[i] = {a.generated.back(), a.draft};
      it.tokens = std::span<const int32_t>(feed[i].data(), 2);
      it.all_logits = true;
    } else {
      feed[i][0] = a.generated.back();
      it.tokens = std::span<const int32_t>(feed[i].data(), 1);
    }
    want_hidden = want_hidden || a.speculate;
    items.push_back(it);
    owners.push_back(&a);
  }
  // Embedding inputs after the generations: one prompt chunk each; their hidden rows are pooled below.
  std::vector<EmbedActive*> embedders;
  for (auto& e : embedding) {
    if (e->done || !e->seq || e->job->failed) continue;
    const auto& in = e->job->req.inputs[e->index];
    const int64_t n = int64_t(in.size()), p0 = e->seq->length();
    BatchItem it;
    it.seq = e->seq.get();
    it.tokens = std::span(in).subspan(size_t(p0), size_t(std::min(options_.prefill_chunk, n - p0)));
    items.push_back(it);
    embedders.push_back(e.get());
    want_hidden = true;
  }
  if (!items.empty()) {
    Tensor logits, hidden;
    try {
      logits = model_->forward_batch(items, options_.mla_mode, want_hidden ? &hidden : nullptr);
    } catch (const std::exception& ex) {
      for (Active* a : owners) finish(*a, FinishReason::Error, ex.what());
      for (EmbedActive* e : embedders) {
        if (!e->job->failed) {
          e->job->failed = true;
          EmbeddingResult r;
          r.finish_reason = FinishReason::Error;
          r.error = ex.what();
          e->job->handle->finish(std::move(r));
        }
        e->done = true;
        e->seq.reset();
      }
      owners.clear();
      embedders.clear();
    }
    const int64_t d = model_->config().hidden_size;
    int64_t row0 = 0, hrow0 = 0;
    for (size_t i = 0; i < owners.size(); ++i) {
      Active& a = *owners[i];
      const BatchItem& it = items[i];
      const GenerationParams& p = a.req.params;
      const int64_t T = int64_t(it.tokens.size()), rows = it.all_logits ? T : 1;
      const float* l = logits.f32() + row0 * V;
      const float* h = want_hidden ? hidden.f32() + hrow0 * d : nullptr;  // [T, d] this item's hidden states
      row0 += rows;
      hrow0 += T;
      ++stepped;
      GenerationEvent ev;
      try {
        if (!a.prefilled) {
          prompt_tokens += uint64_t(T);
          const int64_t n = int64_t(a.req.prompt.size()), p0 = a.seq->length() - T;
          // The MTP pairs each hidden state with the token that follows it.
          std::vector<int32_t> next(a.req.prompt.begin() + p0 + 1, a.req.prompt.begin() + std::min(n, p0 + T + 1));
          if (a.seq->length() < n) {  // more prompt chunks to go
            if (a.speculate) model_->mtp_step(*a.mtp_seq, h, next, false, options_.mla_mode);
            continue;
          }
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
            // The prompt's full blocks are shareable from now on.
          if (cache_) cache_->insert(a.req.prompt, a.seq->blocks());
          std::span<const float> row(l, size_t(V));
          const int32_t tok = sample(a, row);
          if (take(a, row, tok, ev)) continue;
          if (a.speculate) {
            next.push_back(tok);
            make_draft(a, model_->mtp_step(*a.mtp_seq, h, next, false, options_.mla_mode));
          }
        } else if (T == 2) {
          // Speculative verification: row 0 decides the drafted position, row 1 (when the draft stands) gives
          // one more token for free.
          const int64_t L = a.seq->length() - 2;
          ++a.usage.draft_tokens;
          auto [y1, accepted] = verify(a, {l, size_t(V)});
          if (take(a, {l, size_t(V)}, y1, ev)) continue;
          if (accepted) {
            ++a.usage.accepted_draft_tokens;
            std::span<const float> row1(l + V, size_t(V));
            const int32_t y2 = sample(a, row1);
            if (take(a, row1, y2, ev)) continue;
            const int32_t next[2] = {y1, y2};
            make_draft(a, model_->mtp_step(*a.mtp_seq, h, next, false, options_.mla_mode));
          } else {
            a.seq->truncate(L + 1);  // the draft's position is recomputed with y1 next step
            make_draft(a, model_->mtp_step(*a.mtp_seq, h, std::span<const int32_t>(&y1, 1), false, options_.mla_mode));
          }
        } else {
          std::span<const float> row(l, size_t(V));
          const int32_t tok = sample(a, row);
          if (take(a, row, tok, ev)) continue;
          if (a.speculate) make_draft(a, model_->mtp_step(*a.mtp_seq, h, std::span<const int32_t>(&tok, 1), false, options_.mla_mode));
        }
      } catch (const std::exception& ex) {
        finish(a, FinishReason::Error, ex.what());
        continue;
      }
      a.handle->push(std::move(ev));
    }
    // Embeddings: the final norm over this chunk's rows, summed in double; the mean is normalised at the end
    // (the mean's direction is the sum's, so dividing by T is not needed).
    for (size_t i = owners.size(); i < owners.size() + embedders.size(); ++i) {
      EmbedActive& e = *embedders[i - owners.size()];
      const int64_t T = int64_t(items[i].tokens.size());
      float* h = hidden.f32() + hrow0 * d;  // [T, d]
      hrow0 += T;
      ++stepped;
      model_->final_norm(h, T);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j < d; ++j) e.sum[size_t(j)] += double(h[t * d + j]);
      if (e.seq->length() < int64_t(e.job->req.inputs[e.index].size())) continue;
      double norm = 0;
      for (double v : e.sum) norm += v * v;
      norm = std::sqrt(norm);
      std::vector<float> out(size_t(d), 0.0f);
      for (int64_t j = 0; j < d; ++j) out[size_t(j)] = norm > 0 ? float(e.sum[size_t(j)] / norm) : 0.0f;
      e.job->result.vectors[e.index] = std::move(out);
      e.done = true;
      e.seq.reset();
      {
        // Before the result goes out, so a caller that saw it also sees the counts.
        std::lock_guard lock(mu_);
        stats_.embedding_inputs += 1;
        stats_.embedding_tokens += uint64_t(e.job->req.inputs[e.index].size());
      }
      if (--e.job->remaining == 0 && !e.job->failed) {
        e.job->result.finish_reason = FinishReason::Stop;
        e.job->handle->finish(std::move(e.job->result));
        e.job->failed = true;  // finished: nothing more may be sent
      }
    }
  }
  std::lock_guard lock(mu_);
  stats_.prompt_tokens += prompt_tokens;
  stats_.generated_tokens += generated;
  stats_.steps += stepped > 0 ? 1 : 0;
  stats_.batched_sequences += stepped;
  stats_.kv_blocks_used = pool_->used_blocks();
  stats_.prefix_cache_blocks = cache_ ? cache_->blocks() : 0;
  if (const DiskKvStore* d = cache_ ? cache_->disk() : nullptr) {
    stats_.disk_cache_hits = d->hits(), stats_.disk_cache_misses = d->misses(), stats_.disk_cache_writes = d->writes();
    stats_.disk_cache_files = d->files(), stats_.disk_cache_bytes = d->bytes();
  }
}

}  // namespace baleine
