// models/model.h — what every architecture offers the engine, trainers and tools.
// defines: MlaMode, Sequence, CausalLM, load_model
#pragma once
#include <memory>
#include <span>
#include <string>

#include "core/tensor.h"
#include "models/config.h"
#include "nn/layers.h"

namespace baleine {

// DeepSeek attention computed two ways that must agree: Naive up-projects the cached latents to per-head keys
// and values (cheap for long prefill); Absorbed folds W^UK into the query and W^UV after attention, attending
// over the kv_lora_rank + rope latent directly (cheap for decode). Ignored by dense GQA models.
enum class MlaMode { Naive, Absorbed };

// Per-sequence state: the KV cache of every layer and how many positions it holds. Created by the model.
class Sequence {
 public:
  virtual ~Sequence() = default;
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }

 protected:
  int64_t length_ = 0, capacity_ = 0;
  friend class DeepSeekModel;
  friend class DenseModel;
};

// Checks a forward call: at least one token, every id inside the vocabulary, room left in the sequence.
void check_forward_input(const ModelConfig& config, const Sequence& seq, std::span<const int32_t> tokens);

class CausalLM {
 public:
  virtual ~CausalLM() = default;
  virtual const ModelConfig& config() const = 0;
  virtual std::unique_ptr<Sequence> new_sequence(int64_t max_tokens) const = 0;
  // Appends `tokens` to `seq` (positions seq.length() ...) and returns their logits [T, vocab]. Throws if the
  // sequence would exceed its capacity or the model's context.
  virtual Tensor forward(Sequence& seq, std::span<const int32_t> tokens, MlaMode mode = MlaMode::Absorbed) = 0;
  // Teacher-forced MTP logits: row i predicts token i+2 from tokens[0..i+1]; [T-1, vocab]. Throws if the model
  // has no MTP module.
  virtual Tensor mtp_logits(std::span<const int32_t> tokens, MlaMode mode = MlaMode::Absorbed) { (void)tokens; (void)mode; BALEINE_FAIL("this model has no MTP module"); }
  virtual bool has_mtp() const { return false; }
  // Every parameter, with its Hugging Face name and shape.
  virtual void for_each_param(const nn::ParamVisitor& v) = 0;
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
