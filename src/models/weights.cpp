#include "models/weights.h"

#include <cmath>
#include <random>

#include "io/checkpoint.h"

namespace baleine {

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}
}  // namespace

void load_params(CausalLM& model, const std::string& path) {
  load_params([&](const nn::ParamVisitor& v) { model.for_each_param(v); }, path);
}

void load_params(const std::function<void(const nn::ParamVisitor&)>& for_each_param, const std::string& path) {
  io::CheckpointReader reader = io::CheckpointReader::open(path);  // safetensors, or PyTorch .bin
  for_each_param([&](nn::Param& p) {
    if (!reader.contains(p.name)) {
      if (p.optional) return;
      BALEINE_FAIL("{}: missing tensor '{}' (expected shape {})", reader.path(), p.name, shape_str(p.shape));
    }
    const io::SafetensorsEntry& e = reader.entry(p.name);
    BALEINE_CHECK(e.shape == p.shape, "{}: tensor '{}' has shape {}, expected {}", e.file, p.name, shape_str(e.shape),
                  shape_str(p.shape));
    bool is_float = e.dtype == DType::F32 || e.dtype == DType::BF16 || e.dtype == DType::F16 || e.dtype == DType::F8_E4M3;
    BALEINE_CHECK(is_float, "{}: tensor '{}' has dtype {}, expected a floating-point type", e.file, p.name,
                  dtype_name(e.dtype));
    if (p.kind == nn::ParamKind::Vector || e.dtype == DType::F8_E4M3) {
      *p.tensor = reader.tensor_as(p.name, DType::F32);
    } else {
      *p.tensor = reader.tensor(p.name);  // zero-copy on the mapping
    }
  });
}

void init_params_random(CausalLM& model, uint64_t seed, float std) {
  init_params_random([&](const nn::ParamVisitor& v) { model.for_each_param(v); }, seed, std);
}

void init_params_random(const std::function<void(const nn::ParamVisitor&)>& for_each_param, uint64_t seed, float std) {
  std::mt19937_64 rng(seed);
  for_each_param([&](nn::Param& p) {
    Tensor t = Tensor::empty(DType::F32, p.shape);
    float* d = t.f32();
    std::normal_distribution<float> normal(0.0f, std);
    bool is_norm = p.kind == nn::ParamKind::Vector && p.name.find("norm") != std::string::npos;
    for (int64_t i = 0; i < t.numel(); ++i) d[i] = is_norm ? 1.0f : (p.kind == nn::ParamKind::Vector ? 0.0f : normal(rng));
    *p.tensor = std::move(t);
  });
}

}  // namespace baleine
