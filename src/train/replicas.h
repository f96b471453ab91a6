// train/replicas.h — data parallelism inside one process: copies of a model that share its weights (the same
// storage, so every optimizer step reaches them all) but own their per-call state (expert-load counters) and a
// gradient arena each. The sequences of a batch are split into `count` fixed groups, one per replica, run in
// parallel on the thread pool (each replica's ops then run serially in its thread, as MPI ranks do), and the
// gradients are summed in replica order. The grouping depends on `count` only, never on the thread count, so a
// run gives the same bits on any number of threads.
// defines: Replicas
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "models/model.h"
#include "nn/grads.h"

namespace baleine::train {

class Replicas {
 public:
  // Replica 0 is `main` with `main_grads`; the others are built by create_model on main's config, their
  // parameters pointed at main's, then prepare() and `configure` (e.g. the balance loss weight) applied.
  Replicas(CausalLM& main, nn::Gradients& main_grads, int count, const std::function<void(CausalLM&)>& configure = {});

  int count() const { return int(models_.size()); }
  CausalLM& model(int g) { return *models_[size_t(g)]; }
  nn::Gradients& grads(int g) { return *grads_[size_t(g)]; }
  // Runs fn(g) for every replica: on the pool's threads when it has more than one (replica g on thread g mod
  // threads), else one after the other. An exception in any replica is rethrown here.
  void run(const std::function<void(int)>& fn);
  // Zeroes the other replicas' gradients (replica 0's belong to the caller).
  void zero_others();
  // main_grads += the other replicas' gradients, in replica order.
  void sum_gradients();

 private:
  std::vector<CausalLM*> models_;
  std::vector<std::unique_ptr<CausalLM>> owned_;
  std::vector<nn::Gradients*> grads_;
  std::vector<std::unique_ptr<nn::Gradients>> owned_grads_;
};

}  // namespace baleine::train
