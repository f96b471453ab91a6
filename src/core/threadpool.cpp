#include "core/threadpool.h"

#include <algorithm>
#include <memory>

namespace baleine {

namespace {
thread_local bool t_inside_pool = false;
std::unique_ptr<ThreadPool> g_pool;
std::mutex g_pool_mutex;
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  t_inside_pool = true;
  for (;;) {
    const std::function<void(int)>* job;
    {
      std::unique_lock lock(mutex_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    (*job)(index);
    {
      std::lock_guard lock(mutex_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }
}

void ThreadPool::run(const std::function<void(int)>& fn) {
  if (n_threads_ == 1 || t_inside_pool) {
    for (int i = 0; i < n_threads_; ++i) fn(i);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    job_ = &fn;
    pending_ = n_threads_ - 1;
    ++generation_;
  }
  start_cv_.notify_all();
  t_inside_pool = true;
  fn(0);
  t_inside_pool = false;
  std::unique_lock lock(mutex_);
  done_cv_.wait(lock, [&] { return pending_ == 0; });
}

ThreadPool& ThreadPool::global() {
  std::lock_guard lock(g_pool_mutex);
  if (!g_pool) g_pool = std::make_unique<ThreadPool>(int(std::max(1u, std::thread::hardware_concurrency())));
  return *g_pool;
}

void ThreadPool::set_global_threads(int n_threads) {
  std::lock_guard lock(g_pool_mutex);
  if (n_threads <= 0) n_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  g_pool = std::make_unique<ThreadPool>(n_threads);
}

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk) {
  if (n <= 0) return;
  ThreadPool& pool = ThreadPool::global();
  int64_t max_chunks = std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk));
  int64_t chunks = std::min<int64_t>(pool.size(), max_chunks);
  if (chunks <= 1 || t_inside_pool) {
    fn(0, n);
    return;
  }
  pool.run([&](int t) {
    if (t >= chunks) return;
    int64_t begin = n * t / chunks, end = n * (t + 1) / chunks;
    if (begin < end) fn(begin, end);
  });
}

double parallel_sum(int64_t n, int64_t block, const std::function<double(int64_t, int64_t)>& block_fn) {
  if (n <= 0) return 0.0;
  int64_t n_blocks = (n + block - 1) / block;
  std::vector<double> partial(size_t(n_blocks), 0.0);
  parallel_for(n_blocks, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) partial[size_t(b)] = block_fn(b * block, std::min(n, (b + 1) * block));
  });
  double s = 0.0;
  for (double p : partial) s += p;
  return s;
}

}  // namespace baleine
