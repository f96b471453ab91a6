// models/quantize.cpp — the model-level quantisation pass (see quantize.h).
#include "models/quantize.h"

#include <map>

#include "core/threadpool.h"
#include "ops/quant.h"

namespace baleine {

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_embedding(const std::string& name) { return name.find("embed_tokens") != std::string::npos; }

// A 2-D tensor converted to `type` (src is any dtype Tensor::to_f32 reads).
Tensor convert(const Tensor& src, DType type) {
  const int64_t rows = src.dim(0), cols = src.dim(1);
  const Tensor f = src.dtype() == DType::F32 ? src : src.to_f32();
  if (type == DType::F32) return f;
  Tensor out = Tensor::empty(type, {rows, cols});
  const float* x = f.f32();
  if (dtype_is_quantized(type)) {
    ops::quantize_rows(type, x, out.raw(), rows, cols);
  } else {
    uint16_t* o = out.data<uint16_t>();
    const bool bf16 = type == DType::BF16;
    parallel_for(rows, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0 * cols; i < r1 * cols; ++i) o[i] = bf16 ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
    });
  }
  return out;
}

bool fits(DType type, int64_t cols) {
  if (dtype_is_quantized(type)) return ops::is_quantizable(type, cols);
  return type == DType::F32 || type == DType::BF16 || type == DType::F16;
}

}  // namespace

bool keeps_f32(const std::string& name) { return ends_with(name, "mlp.gate.weight"); }

QuantizeReport quantize_model(CausalLM& m, DType type, const QuantizeOptions& options) {
  BALEINE_CHECK(fits(type, dtype_block_elems(type)), "quantize_model: cannot store weights as {}", dtype_name(type));
  QuantizeReport report;
  std::map<const void*, Tensor> done;  // source storage -> converted tensor (shared tensors stay shared)
  m.for_each_param([&](nn::Param& p) {
    if (p.kind != nn::ParamKind::Matrix || !p.tensor->defined() || p.tensor->ndim() != 2) return;
    Tensor& t = *p.tensor;
    if (auto it = done.find(t.raw()); it != done.end()) {  // second slot of a shared tensor
      t = it->second;
      return;
    }
    report.bytes_before += t.nbytes();
    DType want = type;
    if (options.type_for) want = options.type_for(p.name, type);
    const bool skip = keeps_f32(p.name) || (!options.quantize_embeddings && is_embedding(p.name)) ||
                      !fits(want, t.dim(1)) || t.dtype() == want;
    const void* key = t.raw();
    if (skip) {
      ++report.kept;
      report.bytes_after += t.nbytes();
      done.emplace(key, t);
      return;
    }
    t = convert(t, want);
    done.emplace(key, t);
    ++report.converted;
    report.bytes_after += t.nbytes();
  });
  m.prepare();
  return report;
}

}  // namespace baleine
