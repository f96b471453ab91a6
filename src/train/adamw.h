// train/adamw.h — AdamW with decoupled weight decay, global-norm clipping, learning-rate schedules.
// defines: AdamWConfig, AdamW, clip_grad_norm, LrSchedule, lr_at, materialize_params
#pragma once
#include <string>
#include <vector>

#include "models/model.h"
#include "nn/grads.h"

namespace baleine::train {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;  // applied to weight matrices only: never to norms, biases or the router bias
};

class AdamW {
 public:
  explicit AdamW(AdamWConfig config = {}) : cfg_(config) {}
  // Records the trainable parameters (every parameter but e_score_correction_bias, which the auxiliary-loss-
  // free balancer updates) and allocates zeroed first and second moments, flat, in the gradient arena's layout
  // (nn::Gradients::allocate on the same model).
  void attach(CausalLM& model);
  // ZeRO-1: moments only for elements [begin, end) of that layout; step() then updates only those weights
  // (the caller all-gathers the rest). state() needs the full range.
  void attach(CausalLM& model, int64_t begin, int64_t end);
  // One update with learning rate `lr` from the gradients in `grads` (torch.optim.AdamW semantics).
  void step(nn::Gradients& grads, double lr);
  int64_t steps() const { return t_; }
  void set_steps(int64_t t) { t_ = t; }
  // Moments, named "<param>.exp_avg" / "<param>.exp_avg_sq", for checkpoints (views into the flat moments).
  std::vector<std::pair<std::string, Tensor*>> state();
  // The flat moments of the owned range [range_begin, range_end) of a layout of layout_size elements.
  float* exp_avg() { return m_.defined() ? m_.f32() : nullptr; }
  float* exp_avg_sq() { return v_.defined() ? v_.f32() : nullptr; }
  int64_t range_begin() const { return begin_; }
  int64_t range_end() const { return end_; }
  int64_t layout_size() const { return layout_size_; }

 private:
  struct Slot {
    std::string name;
    Tensor* param;
    bool decay;
    int64_t offset;  // in the gradient arena's layout
    Tensor m, v;     // views into m_ / v_ (full range only)
  };
  AdamWConfig cfg_;
  std::vector<Slot> slots_;
  Tensor m_, v_;  // [end_ - begin_]
  int64_t begin_ = 0, end_ = 0, layout_size_ = 0;
  int64_t t_ = 0;
};

// Scales every gradient so the global L2 norm is at most max_norm; returns the norm before clipping. The sum of
// squares runs in double over parameters in a fixed order, so it is bit-identical for any thread count.
double clip_grad_norm(nn::Gradients& grads, double max_norm);

enum class LrShape { Constant, Cosine, WarmupStableDecay };
struct LrSchedule {
  LrShape shape = LrShape::Cosine;
  double max_lr = 3e-4, min_lr = 3e-5;
  int64_t warmup_steps = 0, total_steps = 1;
  double decay_fraction = 0.2;  // WSD: the last fraction of steps decays linearly to min_lr
};
double lr_at(const LrSchedule& s, int64_t step);

// Replaces every parameter by an owned, writable f32 copy (checkpoints load memory-mapped and read-only) and
// re-derives what depends on them.
void materialize_params(CausalLM& model);

}  // namespace baleine::train
