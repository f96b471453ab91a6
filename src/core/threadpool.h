// core/threadpool.h — a fork-join pool over every core; static partitioning so results never depend on timing.
// defines: ThreadPool, parallel_for, parallel_sum
//
// Cost: a parallel region is a fork (the caller publishes the job and bumps a generation counter) and a join (the
// caller waits for a pending counter to reach zero). Workers spin on the counter for a while after each region
// (BALEINE_SPIN_US, default 200 µs) and only then sleep on a futex, so back-to-back regions — a decode step is
// hundreds of them — cost about a cache-line transfer each instead of a condition-variable hand-off (~18 µs
// before; bench/bench_forkjoin measures it against OpenMP).
//
// Determinism: parallel_for hands each thread one contiguous range decided only by (n, threads).
// parallel_sum reduces fixed-size blocks whose partial sums are added in block order, so the result is
// bit-identical for any number of threads.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace baleine {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Runs fn(thread_index) on every thread (the caller is thread 0) and waits for all.
  void run(const std::function<void(int)>& fn);

  static ThreadPool& global();
  // Replaces the global pool (e.g. --threads); 0 means every core.
  static void set_global_threads(int n_threads);

 private:
  void worker(int index);
  int n_threads_;
  int64_t spin_ns_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  // Each on its own cache line: the caller writes generation_, the workers write pending_.
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<int32_t> pending_{0};
  alignas(64) std::atomic<int32_t> sleeping_workers_{0};
  std::atomic<int32_t> caller_sleeping_{0};
  std::atomic<bool> stop_{false};
};

// Calls fn(begin, end) over [0, n) split into at most pool-size contiguous chunks of >= min_chunk items.
// Nested calls from inside a pool thread run serially.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk = 1);

// Sum over [0, n) of block_fn(begin, end), blocks of `block` items, added in block order.
double parallel_sum(int64_t n, int64_t block, const std::function<double(int64_t, int64_t)>& block_fn);

}  // namespace baleine
