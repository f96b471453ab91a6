// core/threadpool.h — a fixed pool using every core; static partitioning so results never depend on timing.
// defines: ThreadPool, parallel_for, parallel_sum
//
// Determinism: parallel_for hands each thread one contiguous range decided only by (n, threads).
// parallel_sum reduces fixed-size blocks whose partial sums are added in block order, so the result is
// bit-identical for any number of threads.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
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
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  bool running_ = false;
};

// Calls fn(begin, end) over [0, n) split into at most pool-size contiguous chunks of >= min_chunk items.
// Nested calls from inside a pool thread run serially.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk = 1);

// Sum over [0, n) of block_fn(begin, end), blocks of `block` items, added in block order.
double parallel_sum(int64_t n, int64_t block, const std::function<double(int64_t, int64_t)>& block_fn);

}  // namespace baleine
