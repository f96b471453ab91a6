// models/weights.h — binding a model's parameters to a checkpoint, with shape and dtype checks.
// defines: load_params, init_params_random
#pragma once
#include <functional>
#include <string>

#include "models/model.h"

namespace baleine {

// Fills every parameter of `model` from the safetensors at `path` (file, index or directory). Matrices keep
// their f32/bf16/f16 storage zero-copy on the mapping; FP8 matrices are dequantised with their
// weight_scale_inv blocks; vectors become f32. Errors name the file, the tensor and the expected shape.
void load_params(CausalLM& model, const std::string& path);
// The same for any parameter set (multimodal models visit several components).
void load_params(const std::function<void(const nn::ParamVisitor&)>& for_each_param, const std::string& path);

// Fills every parameter with N(0, std) (norm weights 1), deterministic in `seed`; for tests and training.
void init_params_random(CausalLM& model, uint64_t seed, float std = 0.02f);
void init_params_random(const std::function<void(const nn::ParamVisitor&)>& for_each_param, uint64_t seed,
                        float std = 0.02f);

}  // namespace baleine
