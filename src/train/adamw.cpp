#include "train/adamw.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "core/check.h"
#include "core/threadpool.h"

namespace baleine::train {

void AdamW::attach(CausalLM& model) { attach(model, 0, INT64_MAX); }

void AdamW::attach(CausalLM& model, int64_t begin, int64_t end) {
  slots_.clear();
  t_ = 0;
  nn::Gradients layout;  // the arena's offsets, by the one rule that lays gradients out
  layout.allocate(model);
  layout_size_ = layout.size();
  begin_ = std::clamp<int64_t>(begin, 0, layout_size_);
  end_ = std::clamp<int64_t>(end, begin_, layout_size_);
  m_ = Tensor::zeros(DType::F32, {end_ - begin_});
  v_ = Tensor::zeros(DType::F32, {end_ - begin_});
  const bool full = begin_ == 0 && end_ == layout_size_;
  for (const auto& [name, slot] : layout.names()) {
    if (name.find("e_score_correction_bias") != std::string::npos) continue;
    Tensor* param = const_cast<Tensor*>(slot);
    BALEINE_CHECK(param->dtype() == DType::F32, "parameter '{}' is {}; call materialize_params first", name,
                  dtype_name(param->dtype()));
    Slot s{name, param, false, layout.offset_of(slot), Tensor(), Tensor()};
    if (full) {
      s.m = Tensor::borrow(m_.f32() + s.offset, DType::F32, param->shape(), nullptr);
      s.v = Tensor::borrow(v_.f32() + s.offset, DType::F32, param->shape(), nullptr);
    }
    slots_.push_back(std::move(s));
  }
  std::unordered_map<const Tensor*, bool> is_matrix;  // decay matrices only (a tied slot: its first visit)
  model.for_each_param([&](nn::Param& p) { is_matrix.emplace(p.tensor, p.kind == nn::ParamKind::Matrix); });
  for (Slot& s : slots_) s.decay = is_matrix.at(s.param);
}

void AdamW::step(nn::Gradients& grads, double lr) {
  ++t_;
  const double bc1 = 1.0 - std::pow(cfg_.beta1, double(t_));
  const double bc2 = 1.0 - std::pow(cfg_.beta2, double(t_));
  const float b1 = float(cfg_.beta1), b2 = float(cfg_.beta2);
  BALEINE_CHECK(grads.size() == layout_size_, "AdamW: the gradients hold {} elements, the optimizer's layout {}",
                grads.size(), layout_size_);
  for (Slot& s : slots_) {
    const int64_t lo = std::max(s.offset, begin_), hi = std::min(s.offset + s.param->numel(), end_);
    if (lo >= hi) continue;
    BALEINE_CHECK(grads.offset_of(s.param) == s.offset, "AdamW: '{}' sits elsewhere in the gradient arena", s.name);
    float* w = s.param->f32() + (lo - s.offset);
    const float* g = grads.flat() + lo;
    float* m = m_.f32() + (lo - begin_);
    float* v = v_.f32() + (lo - begin_);
    const float decay = s.decay ? float(1.0 - lr * cfg_.weight_decay) : 1.0f;
    const float step_size = float(lr / bc1);
    const float inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
    const float eps = float(cfg_.eps);
    parallel_for(hi - lo, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        w[i] *= decay;  // decoupled weight decay, before the Adam step (as torch does)
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        w[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
      }
    }, 4096);
  }
}

std::vector<std::pair<std::string, Tensor*>> AdamW::state() {
  BALEINE_CHECK(begin_ == 0 && end_ == layout_size_, "AdamW::state: this optimizer holds a shard [{}, {}) of {}", begin_,
                end_, layout_size_);
  std::vector<std::pair<std::string, Tensor*>> out;
  for (Slot& s : slots_) {
    out.emplace_back(s.name + ".exp_avg", &s.m);
    out.emplace_back(s.name + ".exp_avg_sq", &s.v);
  }
  return out;
}

double clip_grad_norm(nn::Gradients& grads, double max_norm) {
  double ss = 0;
  for (const auto& [name, slot] : grads.names()) {
    const Tensor& g = grads.tensor_of(slot);
    ss += parallel_sum(g.numel(), 1 << 14, [&](int64_t b, int64_t e) {
      double s = 0;
      for (int64_t i = b; i < e; ++i) s += double(g.f32()[i]) * g.f32()[i];
      return s;
    });
  }
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const float scale = float(max_norm / (norm + 1e-6));  // torch.nn.utils.clip_grad_norm_ uses + 1e-6
    for (const auto& [name, slot] : grads.names()) {
      const Tensor& g = grads.tensor_of(slot);
      for (int64_t i = 0; i < g.numel(); ++i) g.f32()[i] *= scale;
    }
  }
  return norm;
}

double lr_at(const LrSchedule& s, int64_t step) {
  if (s.warmup_steps > 0 && step < s.warmup_steps) return s.max_lr * double(step + 1) / double(s.warmup_steps);
  switch (s.shape) {
    case LrShape::Constant: return s.max_lr;
    case LrShape::Cosine: {
      double span = double(std::max<int64_t>(1, s.total_steps - s.warmup_steps));
      double progress = std::min(1.0, double(step - s.warmup_steps) / span);
      return s.min_lr + 0.5 * (s.max_lr - s.min_lr) * (1.0 + std::cos(M_PI * progress));
    }
    case LrShape::WarmupStableDecay: {
      const double decay_start = double(s.total_steps) * (1.0 - s.decay_fraction);
      if (double(step) < decay_start) return s.max_lr;
      double progress = std::min(1.0, (double(step) - decay_start) / std::max(1.0, double(s.total_steps) - decay_start));
      return s.max_lr + (s.min_lr - s.max_lr) * progress;
    }
  }
  return s.max_lr;
}

void materialize_params(CausalLM& model) {
  model.for_each_param([&](nn::Param& p) {
    if (p.tensor->defined()) *p.tensor = p.tensor->to_f32();  // owned copy
  });
  model.prepare();
}

}  // namespace baleine::train
