// models/gguf_model.h — models in llama.cpp's GGUF files: config from metadata, tensor-name mapping to our
// Hugging Face parameter names (arch deepseek2, qwen2, llama), loading (zero-copy where the layout allows) and
// writing in the layout llama.cpp expects.
// defines: is_gguf_path, gguf_hf_config, load_gguf_model, GgufWriteOptions, write_gguf_model, gguf_arch_name
//
// Layout differences handled here (llama.cpp's converters, conversion/{deepseek,llama,qwen}.py):
// - ggml shapes are innermost first: a PyTorch [out, in] matrix has ne {in, out}; the bytes are identical.
// - deepseek2 routed experts are stacked, ffn_{gate,up,down}_exps [E, out, in]; we slice per-expert views.
// - deepseek2 MLA files split kv_b_proj [H·(Dn+Dv), R] into attn_k_b [H, R, Dn] (W^UK transposed per head) and
//   attn_v_b [H, Dv, R]; legacy files keep attn_kv_b. Both load to kv_b_proj.
// - llama q/k rows are permuted within each head for ggml's interleaved ("NORM") RoPE: HF row (i, j) of a head,
//   i ∈ {0,1} the half and j < D/2, is GGUF row (j, i). qwen2 (NEOX RoPE) and deepseek2 (interleaved in HF
//   already) are not permuted.
// - deepseek2 rope.scaling.yarn_log_multiplier is stored as 0.1·mscale_all_dim (llama.cpp PR #17945).
// - llama3 RoPE scaling is stored as a rope_freqs tensor of per-frequency divisors.
// Facts llama.cpp's keys cannot express (V2 group_limited_greedy routing, a YaRN mscale different from
// mscale_all_dim, the llama3 scaling parameters) are also written under "baleine.*" keys, which llama.cpp ignores,
// so our own round trips are exact.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "io/gguf.h"
#include "models/model.h"

namespace baleine {

bool is_gguf_path(const std::string& path);  // a regular file named *.gguf or starting with the GGUF magic

// The Hugging Face config.json equivalent of a GGUF file's metadata (then validated by parse_model_config).
// Errors name the file and the key; unknown architectures are rejected.
nlohmann::json gguf_hf_config(const io::GgufFile& file);

// Config + parameters from a .gguf file; tensors stay on the mapping where the layout allows (all matrices
// except kv_b_proj rebuilt from attn_k_b/attn_v_b, and permuted llama q/k). Errors name the file and tensor.
std::unique_ptr<CausalLM> load_gguf_model(const std::string& path);
std::unique_ptr<CausalLM> load_gguf_model(const io::GgufFile& file);

const char* gguf_arch_name(const ModelConfig& config);  // "deepseek2", "qwen2", "llama"

struct GgufWriteOptions {
  bool legacy_kv_b = false;  // deepseek2: write attn_kv_b (pre-#12801 layout) instead of attn_k_b/attn_v_b
  std::string name;          // general.name
  // Extra metadata (tokenizer.ggml.*, tokenizer.chat_template, ...), written after the model keys.
  std::vector<std::pair<std::string, io::GgufValue>> metadata;
};

// Writes `model`'s parameters in their storage dtype (f32/f16/bf16/q8_0/q4_0/q4_k/q6_k; norms and biases f32)
// with the metadata llama.cpp reads, atomically.
void write_gguf_model(CausalLM& model, const std::string& path, const GgufWriteOptions& options = {});

}  // namespace baleine
