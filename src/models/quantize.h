// models/quantize.h — converts a loaded model's weight matrices to a block-quantised (or half) dtype in place.
// defines: QuantizeOptions, QuantizeReport, quantize_model, keeps_f32
//
// One pass over for_each_param: every ParamKind::Matrix whose rows fit the type's block size becomes `type`
// (quantised row by row with ops::quantize_rows, the llama.cpp reference quantisers), everything else is left
// as it is; then prepare() re-derives what depends on the weights (tied head, absorbed MLA matrices).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "core/dtype.h"
#include "models/model.h"

namespace baleine {

struct QuantizeOptions {
  // Per-tensor type choice (e.g. Q6_K for the output head in a "mostly Q4_K" mix); gets the parameter name and
  // the default `type`, returns the type to use. A choice that does not fit the row length keeps the tensor.
  std::function<DType(const std::string& name, DType type)> type_for;
  bool quantize_embeddings = true;  // token embedding tables (llama.cpp quantises token_embd too)
};

struct QuantizeReport {
  int64_t converted = 0;         // matrices stored in a new dtype
  int64_t kept = 0;              // matrices left as they were (rows do not fit, router, already that type)
  size_t bytes_before = 0;       // storage of all visited matrices before
  size_t bytes_after = 0;        // and after
};

// True for matrices llama.cpp keeps in f32 whatever the file type: the MoE router (`mlp.gate.weight`, GGUF
// ffn_gate_inp), which is small and whose top-k choice is sensitive to rounding.
bool keeps_f32(const std::string& name);

// `type`: Q8_0, Q4_0, Q4_K, Q6_K, or BF16 / F16 / F32 (plain conversion). Shared tensors (a tied head, an MTP
// block sharing the embedding) are converted once and stay shared.
QuantizeReport quantize_model(CausalLM& m, DType type, const QuantizeOptions& options = {});

}  // namespace baleine
