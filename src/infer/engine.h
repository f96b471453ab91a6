// infer/engine.h — the generation engine. One engine thread owns the model, the KV cache and the running batch;
// any other thread (HTTP handlers, CLI, RL rollouts) submits typed requests and reads typed events from a handle.
// The engine never sees HTTP or JSON.
// defines: GenerationParams, GenerationRequest, FinishReason, TokenLogprob, GeneratedToken,
//          GenerationUsage, GenerationEvent, GenerationHandle, EmbeddingRequest, EmbeddingResult, EmbeddingHandle,
//          EngineOptions, EngineStats, QueueFullError, Engine
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/check.h"
#include "infer/prefix_cache.h"
#include "infer/sampler.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace baleine {

// TokenConstraint (a constrained-decoding sampler stage) lives in infer/sampler.h.

struct GenerationParams {
  SamplingParams sampling;                // temperature, top-k/p, min-p, penalties, seed
  int64_t max_tokens = 256;               // completion tokens at most (also bounded by the context)
  std::vector<int32_t> stop_tokens;       // end generation; not part of the text (the EOS id is added unless ignore_eos)
  std::vector<std::string> stop_strings;  // end generation when the text contains one; the text stops before it
  bool ignore_eos = false;
  bool skip_special_tokens = false;       // false: special tokens such as <think> appear in the text
  bool logprobs = false;                  // log-probability of each generated token (raw model distribution)
  int top_logprobs = 0;                   // and the n most likely alternatives (0..20)
  bool prompt_logprobs = false;           // log-probabilities of the prompt tokens (first event; for echo/scoring)
  std::shared_ptr<TokenConstraint> constraint;  // optional; one per request
};

struct GenerationRequest {
  std::vector<int32_t> prompt;
  GenerationParams params;
};

enum class FinishReason { None, Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};
struct GeneratedToken {
  int32_t token = 0;
  float logprob = 0.0f;              // valid when params.logprobs
  std::vector<TokenLogprob> top;     // params.top_logprobs entries, most likely first
};

struct GenerationUsage {
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // prompt tokens whose KV came from the prefix cache
  int64_t completion_tokens = 0;
  double queue_seconds = 0, prefill_seconds = 0, decode_seconds = 0;
  int64_t draft_tokens = 0, accepted_draft_tokens = 0;  // speculative decoding (MTP), when used
};

// What a handle yields: new tokens with the text they complete, then exactly one final event (finished = true).
struct GenerationEvent {
  std::vector<GeneratedToken> tokens;           // new generated tokens (several when a speculative draft is accepted)
  std::string text;                             // text completed by them (never half a UTF-8 character, never a stop string)
  std::vector<GeneratedToken> prompt_logprobs;  // first event only, when params.prompt_logprobs (entry 0 has logprob 0)
  bool finished = false;
  FinishReason finish_reason = FinishReason::None;
  std::string error;                            // FinishReason::Error
  GenerationUsage usage;                        // final event
};

// One submitted request: thread-safe; the engine pushes events, the owner pops them.
class GenerationHandle {
 public:
  explicit GenerationHandle(uint64_t id) : id_(id), created_(std::chrono::steady_clock::now()) {}
  uint64_t id() const { return id_; }
  std::chrono::steady_clock::time_point created() const { return created_; }
  // Next event, waiting up to `timeout`; nullopt on timeout. After the final event, returns nullopt at once.
  std::optional<GenerationEvent> next(std::chrono::milliseconds timeout);
  // Asks the engine to stop this request (client went away); a final Cancelled event follows.
  void cancel();
  bool cancelled() const;

  // Engine side.
  void push(GenerationEvent e);

 private:
  uint64_t id_;
  std::chrono::steady_clock::time_point created_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<GenerationEvent> events_;
  bool cancelled_ = false, finished_ = false, final_taken_ = false;
};

// Text embeddings from the model itself: for each input, the mean over its tokens of the final hidden states
// (after the last norm, the vectors the LM head reads), L2-normalised (an all-zero mean stays zero). Why this
// pooling: a causal model's last-token state is dominated by next-token prediction, while the mean of the
// normed states is a stable summary that needs no training (the choice of SGPT-style "mean" embedders).
// Inputs run inside the engine's batched steps next to generations (a prompt-like pass, chunked by
// prefill_chunk, no sampling, no prefix cache), so the result does not depend on what else runs.
struct EmbeddingRequest {
  std::vector<std::vector<int32_t>> inputs;  // each 1 .. context tokens
};
struct EmbeddingResult {
  std::vector<std::vector<float>> vectors;  // [inputs][hidden_size], in input order (empty unless Stop)
  std::vector<int64_t> tokens;              // tokens of each input
  FinishReason finish_reason = FinishReason::None;  // Stop (done), Cancelled or Error
  std::string error;
  double queue_seconds = 0, seconds = 0;    // waiting for the first admission; submit -> result
};

// One submitted embedding request; thread-safe.
class EmbeddingHandle {
 public:
  explicit EmbeddingHandle(uint64_t id) : id_(id), created_(std::chrono::steady_clock::now()) {}
  uint64_t id() const { return id_; }
  std::chrono::steady_clock::time_point created() const { return created_; }
  // The result, waiting up to `timeout`; nullopt on timeout.
  std::optional<EmbeddingResult> wait(std::chrono::milliseconds timeout);
  void cancel();  // a Cancelled result follows
  bool cancelled() const;

  // Engine side: the first call wins.
  void finish(EmbeddingResult r);

 private:
  uint64_t id_;
  std::chrono::steady_clock::time_point created_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<EmbeddingResult> result_;
  bool cancelled_ = false;
};

struct EngineOptions {
  int64_t max_batch = 16;            // sequences decoded together per step
  int64_t max_queue = 64;            // waiting requests beyond the batch; more -> QueueFullError
  int64_t context = 0;               // per-sequence token limit (0: the model's max_position_embeddings, capped at 4096)
  bool prefix_cache = true;          // reuse KV of shared prompt prefixes across requests
  bool speculative_mtp = false;      // draft with the model's MTP module, verify with the main model
  int64_t kv_block_size = 16;        // tokens per KV block (also the prefix cache's granularity)
  int64_t kv_cache_tokens = 0;       // KV pool size in tokens (0: max_batch · context); memory is taken as used
  ops::KvDType kv_dtype = ops::KvDType::F32;  // how cached rows are stored: f32, bf16 or int8 (per-32 scales)
  int64_t prefill_chunk = 512;       // prompt tokens per sequence per step (long prompts prefill in chunks)
  MlaMode mla_mode = MlaMode::Absorbed;  // DeepSeek attention form (both give the same results)
  DiskCacheOptions disk_cache;       // the prefix cache's disk tier (dir empty: memory only)
};

struct EngineStats {
  int64_t queued = 0, running = 0;   // now
  uint64_t requests_finished = 0, prompt_tokens = 0, cached_prompt_tokens = 0, generated_tokens = 0;
  uint64_t steps = 0, batched_sequences = 0;  // decode steps and the sum of their batch sizes
  int64_t kv_blocks_used = 0, kv_blocks_total = 0, prefix_cache_blocks = 0;  // after the last step
  // The prefix cache's disk tier (zeros without one): blocks read back, lookups it could not serve, blocks
  // written, files and bytes in its directory.
  uint64_t disk_cache_hits = 0, disk_cache_misses = 0, disk_cache_writes = 0;
  int64_t disk_cache_files = 0, disk_cache_bytes = 0;
  uint64_t draft_tokens = 0, accepted_draft_tokens = 0;  // speculative decoding, finished requests
  uint64_t embedding_inputs = 0, embedding_tokens = 0;    // embedded inputs finished, their tokens
};

// The queue is full: the caller should answer "try later" (HTTP 503).
struct QueueFullError : Error {
  using Error::Error;
};

class Engine {
 public:
  Engine(std::shared_ptr<CausalLM> model, std::shared_ptr<const Tokenizer> tokenizer, EngineOptions options = {});
  ~Engine();  // shutdown(false)
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates the request (non-empty prompt, ids in the vocabulary, prompt shorter than the context, max_tokens >= 1,
  // top_logprobs in 0..20) and throws baleine::Error with a message fit for a 400 reply; QueueFullError when the
  // queue is full; Error after shutdown. Thread-safe.
  std::shared_ptr<GenerationHandle> submit(GenerationRequest request);
  // Validates (1..4096 inputs, each 1..context tokens inside the vocabulary) and queues an embedding request;
  // throws like submit(). Its inputs are admitted in arrival order with generation requests, each taking one
  // batch slot and the KV blocks of its tokens while it runs.
  std::shared_ptr<EmbeddingHandle> submit_embedding(EmbeddingRequest request);
  // Stops accepting requests; drain = true lets running and queued requests finish, false cancels them. Joins the
  // engine thread. Idempotent.
  void shutdown(bool drain);

  EngineStats stats() const;
  const ModelConfig& config() const { return model_->config(); }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  int64_t context() const { return context_; }

 private:
  struct Active;
  struct EmbedJob;
  struct EmbedActive;
  void loop();
  // Prepares an admitted request (sequence, prefix reuse, block reservation); false: no room yet.
  bool start(Active& a, bool alone);
  // The same for an embedding input (its own sequence, all blocks reserved); false: no room yet.
  bool start_embedding(EmbedActive& e, bool alone);
  void step(std::vector<std::unique_ptr<Active>>& active, std::vector<std::unique_ptr<EmbedActive>>& embedding);

  std::shared_ptr<CausalLM> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  EngineOptions options_;
  std::shared_ptr<KvPool> pool_;          // engine thread only
  std::unique_ptr<PrefixCache> cache_;    // engine thread only; null when options_.prefix_cache is false
  std::shared_ptr<KvPool> mtp_pool_;      // MTP latent cache (speculative_mtp on a model with MTP); else null
  int64_t context_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::shared_ptr<GenerationHandle>, GenerationRequest>> queue_;
  std::deque<std::shared_ptr<EmbedJob>> embed_queue_;  // jobs with inputs not yet admitted
  bool stopping_ = false, drain_ = false;
  EngineStats stats_;
  uint64_t next_id_ = 1;
  std::thread thread_;
};

}  // namespace baleine
