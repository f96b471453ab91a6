#include "train/replicas.h"

#include <exception>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/check.h"
#include "core/threadpool.h"

namespace baleine::train {

Replicas::Replicas(CausalLM& main, nn::Gradients& main_grads, int count, const std::function<void(CausalLM&)>& configure) {
  BALEINE_CHECK(count >= 1, "replicas must be at least 1, got {}", count);
  models_.push_back(&main);
  grads_.push_back(&main_grads);
  std::unordered_map<std::string, Tensor*> main_slots;  // by name: prepare() may hide tied tensors from the visit
  main.for_each_param([&](nn::Param& p) { main_slots.emplace(p.name, p.tensor); });
  for (int g = 1; g < count; ++g) {
    auto copy = create_model(main.config());
    copy->for_each_param([&](nn::Param& p) {
      auto it = main_slots.find(p.name);
      *p.tensor = it != main_slots.end() ? *it->second : Tensor();  // shares the storage, or stays undefined
    });
    copy->prepare();
    if (configure) configure(*copy);
    auto grads = std::make_unique<nn::Gradients>();
    grads->allocate(*copy);
    BALEINE_CHECK(grads->size() == main_grads.size(), "replica {}: {} gradient elements, the model has {}", g, grads->size(),
                  main_grads.size());
    models_.push_back(copy.get());
    grads_.push_back(grads.get());
    owned_.push_back(std::move(copy));
    owned_grads_.push_back(std::move(grads));
  }
}

void Replicas::run(const std::function<void(int)>& fn) {
  ThreadPool& pool = ThreadPool::global();
  const int n = count();
  if (n == 1 || pool.size() == 1) {
    for (int g = 0; g < n; ++g) fn(g);
    return;
  }
  std::exception_ptr error;
  std::mutex m;
  pool.run([&](int t) {
    for (int g = t; g < n; g += pool.size()) {
      try {
        fn(g);
      } catch (...) {  // an exception must never escape a pool thread
        std::lock_guard<std::mutex> lock(m);
        if (!error) error = std::current_exception();
      }
    }
  });
  if (error) std::rethrow_exception(error);
}

void Replicas::zero_others() {
  for (int g = 1; g < count(); ++g) grads_[size_t(g)]->zero();
}

void Replicas::sum_gradients() {
  float* out = grads_[0]->flat();
  const int64_t n = grads_[0]->size();
  for (int g = 1; g < count(); ++g) {
    const float* in = grads_[size_t(g)]->flat();
    parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) out[i] += in[i];
    }, 1 << 14);
  }
}

}  // namespace baleine::train
