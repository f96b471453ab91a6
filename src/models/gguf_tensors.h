// models/gguf_tensors.h — the tensor-name and layout mapping between our HF parameter names and GGUF tensors.
// defines: GgufTensorMap, to_f32_any, shape_string, llama3_rope_freqs, check_rope_freqs
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"
#include "models/config.h"

namespace baleine {

std::string shape_string(const std::vector<int64_t>& s);
// f32 copy of any float or block-quantised tensor.
Tensor to_f32_any(const Tensor& t);
// llama.cpp's rope_freqs for llama3 scaling: per frequency, base / scaled (≥ 1). [head_dim / 2] f32.
Tensor llama3_rope_freqs(const ModelConfig& c);
// Throws unless `freqs` (from a file) equals what `c`'s llama3 scaling gives, to 1e-5 relative.
void check_rope_freqs(const ModelConfig& c, const Tensor& freqs, const std::string& file);

class GgufTensorMap {
 public:
  explicit GgufTensorMap(const ModelConfig& c) : c_(c) {}
  void set_legacy_kv_b(bool legacy) { legacy_kv_b_ = legacy; }

  // The GGUF tensor (or tensors) an HF parameter comes from, for messages.
  std::string source_name(const std::string& hf) const;
  // The parameter `hf` of shape `shape` from `f` (undefined Tensor when the file lacks it). Zero-copy unless
  // the layout needs a rearrangement (kv_b_proj from k_b/v_b, llama q/k). Throws on a shape or type mismatch.
  Tensor load(const io::GgufFile& f, const std::string& hf, const std::vector<int64_t>& shape) const;
  // GGUF tensors produced for parameter `hf` (none for routed experts after the first: expert 0 emits the
  // stacked tensor from all of `params`).
  std::vector<std::pair<std::string, Tensor>> store(const std::string& hf, const std::map<std::string, Tensor>& params) const;

 private:
  enum class Kind { Direct, Expert, KvB, PermuteQ, PermuteK, Unknown };
  struct Source {
    Kind kind = Kind::Unknown;
    std::string gguf;    // tensor name (Expert: the stacked tensor; KvB: "blk.L." prefix)
    int64_t expert = -1;
    int64_t layer = -1;
    std::string hf_expert_prefix, hf_expert_suffix;  // Expert: "model.layers.L.mlp.experts." / ".gate_proj.weight"
  };
  Source source(const std::string& hf) const;

  ModelConfig c_;
  bool legacy_kv_b_ = false;
};

}  // namespace baleine
