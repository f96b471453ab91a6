// models/model.h — what every architecture offers the engine, trainers and tools.
// defines: MlaMode, BatchItem, BatchSegment, check_forward_input, check_batch, ObjectiveInput, LogitObjective,
//          LossParts, PackedWindowLayout, packed_window_layout,
//          CausalLM, load_model, create_model
//          (Sequence and KvPool: models/kv_cache.h)
#pragma once
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/config.h"
#include "models/kv_cache.h"
#include "nn/layers.h"

namespace baleine {
namespace nn {
class Gradients;
}

// DeepSeek attention computed two ways that must agree: Naive up-projects the cached latents to per-head keys
// and values (cheap for long prefill); Absorbed folds W^UK into the query and W^UV after attention, attending
// over the kv_lora_rank + rope latent directly (cheap for decode). Ignored by dense GQA models.
enum class MlaMode { Naive, Absorbed };

// One sequence's share of a batched forward step: append `tokens` to `seq`.
struct BatchItem {
  Sequence* seq = nullptr;
  std::span<const int32_t> tokens;
  bool all_logits = false;  // logits of every token (prompt logprobs), else of the last one only
  // Instead of token ids (tokens then empty): the input rows [T, hidden_size] themselves, in place of the token
  // embedding (Janus feeds its image tokens this way).
  std::span<const float> input_embeds = {};
  bool no_logits = false;  // no logits rows for this item (callers that read forward_batch's `hidden`)
  // T: the number of positions this item appends.
  int64_t length(int64_t hidden_size) const {
    return input_embeds.empty() ? int64_t(tokens.size()) : int64_t(input_embeds.size()) / hidden_size;
  }
  int64_t logit_rows(int64_t hidden_size) const { return no_logits ? 0 : all_logits ? length(hidden_size) : 1; }
};

// Where one item's rows sit in a batched step (internal to the models): rows [row0, row0 + T) of the step,
// positions [p0, p0 + T) of seq.
struct BatchSegment {
  Sequence* seq = nullptr;
  int64_t row0 = 0, T = 0, p0 = 0;
};

// Checks a forward call: at least one token, every id inside the vocabulary, room left in the sequence.
void check_forward_input(const ModelConfig& config, const Sequence& seq, std::span<const int32_t> tokens);
// Checks a batch (distinct sequences, pools of this layout, every item's input) and reserves the blocks its
// tokens need.
void check_batch(const ModelConfig& config, std::span<const BatchItem> items, int64_t layers, int64_t row);

// Per-token training objectives (SFT, GRPO, distillation) drive a model's backward with their own dL/dlogits.
// Row t of the logits predicts targets[t] (-1: nothing); sample_of[t] is the packed sample row t belongs to.
struct ObjectiveInput {
  const float* logits = nullptr;      // [T, V]
  std::span<const int32_t> targets;   // [T], -1 where a row predicts nothing
  std::span<const int64_t> sample_of; // [T], index of the sample each row belongs to
  int64_t T = 0, V = 0;
};
// Returns the objective's value; writes dL/dlogits [T, V] (zeroed beforehand) when dlogits is not null.
using LogitObjective = std::function<double(const ObjectiveInput& in, float* dlogits)>;

// A pretraining step's loss: total = main (mean next-token cross-entropy) + λ·mtp + balance (DeepSeek terms; 0
// for models without them).
struct LossParts {
  double total = 0, main = 0, mtp = 0, balance = 0;
};

// The layout of a packed training window, checked (every id in the vocabulary, lengths >= 1 adding up to the
// window, none past the context): positions restart in every sample, targets[t] = tokens[t+1] inside a sample.
struct PackedWindowLayout {
  std::vector<int64_t> lengths;  // [samples]
  std::vector<int32_t> positions, targets;  // [T]
  std::vector<int64_t> sample_of;           // [T]
};
PackedWindowLayout packed_window_layout(const ModelConfig& config, std::span<const int32_t> tokens,
                                        std::span<const int64_t> sample_lengths);

class CausalLM {
 public:
  virtual ~CausalLM() = default;
  virtual const ModelConfig& config() const = 0;
  // A KV pool laid out for this model (latent rows for MLA, [k ‖ v] for GQA) that many sequences share.
  virtual std::shared_ptr<KvPool> new_kv_pool(int64_t max_blocks, int64_t block_size = 16,
                                              ops::KvDType dtype = ops::KvDType::F32) const = 0;
  // A sequence of up to `max_tokens` positions in `pool` (blocks are taken as it grows).
  std::unique_ptr<Sequence> new_sequence(std::shared_ptr<KvPool> pool, int64_t max_tokens) const;
  // A sequence with a private pool just large enough for `max_tokens`.
  std::unique_ptr<Sequence> new_sequence(int64_t max_tokens) const;
  // One model step over several sequences: the linear layers and MoE run once over the rows of all items
  // (M = their token count), attention runs per sequence over its own blocks. Returns logits [rows, vocab]:
  // every token's row for items with all_logits, the last token's otherwise, in item order. Throws (before
  // changing any sequence's length) if a sequence would exceed its capacity or the pool is exhausted.
  // `hidden`, when given, receives the residual stream before the final norm for every token of the step,
  // [N, hidden_size] in item order (what the MTP module drafts from).
  virtual Tensor forward_batch(std::span<const BatchItem> items, MlaMode mode = MlaMode::Absorbed,
                               Tensor* hidden = nullptr) = 0;
  // Appends `tokens` to `seq` (positions seq.length() ...) and returns their logits [T, vocab]. Throws if the
  // sequence would exceed its capacity or the model's context.
  Tensor forward(Sequence& seq, std::span<const int32_t> tokens, MlaMode mode = MlaMode::Absorbed);
  // Teacher-forced MTP logits: row i predicts token i+2 from tokens[0..i+1]; [T-1, vocab]. Throws if the model
  // has no MTP module.
  virtual Tensor mtp_logits(std::span<const int32_t> tokens, MlaMode mode = MlaMode::Absorbed) { (void)tokens; (void)mode; BALEINE_FAIL("this model has no MTP module"); }
  virtual bool has_mtp() const { return false; }
  // Incremental MTP for speculative decoding. The MTP block keeps its own one-layer latent cache: position i
  // pairs the main model's hidden state h_i (before the final norm) with the token t_{i+1} that followed, and
  // its output predicts t_{i+2}. mtp_step appends hidden [T, hidden_size] with next_tokens [T] at positions
  // seq.length() ... and returns the logits of its last row [1, vocab] (every row with all_rows).
  virtual std::shared_ptr<KvPool> new_mtp_kv_pool(int64_t max_blocks, int64_t block_size = 16,
                                                  ops::KvDType dtype = ops::KvDType::F32) const {
    (void)max_blocks, (void)block_size, (void)dtype;
    BALEINE_FAIL("this model has no MTP module");
  }
  virtual Tensor mtp_step(Sequence& seq, const float* hidden, std::span<const int32_t> next_tokens, bool all_rows = false,
                          MlaMode mode = MlaMode::Absorbed) {
    (void)seq, (void)hidden, (void)next_tokens, (void)all_rows, (void)mode;
    BALEINE_FAIL("this model has no MTP module");
  }
  // Final hidden states (after the last norm, before the head) of `tokens` appended to `seq`: [T, hidden_size].
  // For embeddings (mean pooling in agent/embeddings.h). Throws where an architecture does not offer it.
  virtual Tensor hidden_states(Sequence& seq, std::span<const int32_t> tokens, MlaMode mode = MlaMode::Absorbed) {
    (void)seq; (void)tokens; (void)mode; BALEINE_FAIL("this model does not expose hidden states");
  }
  // The final norm in place over `rows` rows of the residual stream [rows, hidden_size] (as forward_batch's
  // `hidden` gives them): what hidden_states returns, for callers that batch (the engine's embeddings).
  virtual void final_norm(float* x, int64_t rows) const {
    (void)x; (void)rows; BALEINE_FAIL("this model does not expose hidden states");
  }
  // Every parameter, with its Hugging Face name and shape.
  virtual void for_each_param(const nn::ParamVisitor& v) = 0;
  // Training through a per-token objective: `tokens` holds one or more samples packed back to back,
  // `sample_lengths` their lengths (empty: one sample); attention never crosses a sample boundary and positions
  // restart at 0 in each, so a packed window computes what the samples would one by one. Row t predicts
  // tokens[t+1] of the same sample. Forward through the objective and, when grads is not null, backward
  // accumulating into grads. Returns the objective's value. Architectures without a backward throw.
  virtual double objective_and_grad(std::span<const int32_t> tokens, std::span<const int64_t> sample_lengths,
                                    const LogitObjective& objective, nn::Gradients* grads);
  virtual bool trainable() const { return false; }  // objective_and_grad is implemented
  // Pretraining: the mean next-token cross-entropy of one window (+ DeepSeek's MTP, weighted by mtp_lambda, and
  // balance terms), with gradients accumulated into grads when not null. Architectures without a backward throw.
  virtual LossParts loss_and_grad(std::span<const int32_t> tokens, nn::Gradients* grads, double mtp_lambda);
  // Derives what depends on the parameters (tied head, absorbed MLA weights); call after loading or changing them.
  virtual void prepare() = 0;

  // Convenience: logits for every position of `tokens` from an empty sequence.
  Tensor logits(std::span<const int32_t> tokens, MlaMode mode = MlaMode::Absorbed);
};

// RoPE frequencies for `dim` rotary dims from the config's rope_theta and rope_scaling.
ops::RopeTable make_rope_table(const ModelConfig& config, int dim);

// Loads a Hugging Face model directory (config.json + safetensors, single or sharded) or a .gguf file.
std::unique_ptr<CausalLM> load_model(const std::string& path);
// Builds the architecture from `config` with unloaded parameters (for tests and training from scratch).
std::unique_ptr<CausalLM> create_model(const ModelConfig& config);

}  // namespace baleine
