#include "core/threadpool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BALEINE_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define BALEINE_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define BALEINE_CPU_RELAX() ((void)0)
#endif

namespace baleine {

namespace {
thread_local bool t_inside_pool = false;
std::atomic<ThreadPool*> g_pool{nullptr};
std::mutex g_pool_mutex;

using Clock = std::chrono::steady_clock;

int64_t spin_ns_from_env() {
  if (const char* e = std::getenv("BALEINE_SPIN_US"); e && *e) return std::max<int64_t>(0, std::atoll(e)) * 1000;
  return 200'000;
}

// Spins until pred() or until spin_ns passed; true when pred() held. The clock is read every 64 pauses only.
template <class Pred>
bool spin_until(Pred pred, int64_t spin_ns) {
  if (pred()) return true;
  if (spin_ns <= 0) return false;
  const auto end = Clock::now() + std::chrono::nanoseconds(spin_ns);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      BALEINE_CPU_RELAX();
      if (pred()) return true;
    }
    if (Clock::now() >= end) return false;
  }
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)), spin_ns_(spin_ns_from_env()) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker(int index) {
  uint32_t seen = 0;
  t_inside_pool = true;
  for (;;) {
    auto fresh = [&] { return generation_.load(std::memory_order_acquire) != seen; };
    if (!spin_until(fresh, spin_ns_)) {
      // Sleep. The increment is seq_cst and so is the caller's bump-then-check, so either the caller sees a
      // sleeper and wakes it, or this re-check sees the new generation (no lost wake-up).
      sleeping_workers_.fetch_add(1, std::memory_order_seq_cst);
      while (generation_.load(std::memory_order_seq_cst) == seen) generation_.wait(seen, std::memory_order_seq_cst);
      sleeping_workers_.fetch_sub(1, std::memory_order_relaxed);
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    (*job_)(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1 && caller_sleeping_.load(std::memory_order_seq_cst))
      pending_.notify_one();
  }
}

void ThreadPool::run(const std::function<void(int)>& fn) {
  if (n_threads_ == 1 || t_inside_pool) {
    for (int i = 0; i < n_threads_; ++i) fn(i);
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_seq_cst);  // publishes job_ and pending_
  if (sleeping_workers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();
  t_inside_pool = true;
  fn(0);
  t_inside_pool = false;
  auto joined = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(joined, spin_ns_)) {
    caller_sleeping_.store(1, std::memory_order_seq_cst);
    for (int32_t p; (p = pending_.load(std::memory_order_seq_cst)) != 0;) pending_.wait(p, std::memory_order_seq_cst);
    caller_sleeping_.store(0, std::memory_order_relaxed);
  }
}

ThreadPool& ThreadPool::global() {
  if (ThreadPool* p = g_pool.load(std::memory_order_acquire)) return *p;
  std::lock_guard lock(g_pool_mutex);
  if (!g_pool.load()) g_pool.store(new ThreadPool(int(std::max(1u, std::thread::hardware_concurrency()))));
  return *g_pool.load();
}

void ThreadPool::set_global_threads(int n_threads) {
  std::lock_guard lock(g_pool_mutex);
  if (n_threads <= 0) n_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  // Called at startup (flag parsing) and by tests between phases, never while a region runs.
  delete g_pool.exchange(new ThreadPool(n_threads));
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
