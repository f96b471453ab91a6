// bench_forkjoin — the cost of one parallel region: baleine's ThreadPool (spin-then-futex fork-join) against a
// condition-variable hand-off (the design it replaced, rebuilt here as the baseline) and GCC's OpenMP runtime
// (libgomp, `#pragma omp parallel`), in the same run. Prints the machine, the load average, and for each engine
// the median over 7 rounds of the time per region (µs), for an empty region and for a region of ~2 µs of work
// per thread.
// Usage: bench_forkjoin [threads]   (default 2)
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/threadpool.h"

using namespace baleine;

namespace {

using Clock = std::chrono::steady_clock;

// The previous ThreadPool: a mutex and two condition variables per region.
class CondvarPool {
 public:
  explicit CondvarPool(int n) : n_(n) {
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i] { worker(i); });
  }
  ~CondvarPool() {
    {
      std::lock_guard l(m_);
      stop_ = true;
    }
    start_.notify_all();
    for (auto& t : workers_) t.join();
  }
  void run(const std::function<void(int)>& fn) {
    {
      std::lock_guard l(m_);
      job_ = &fn;
      pending_ = n_ - 1;
      ++gen_;
    }
    start_.notify_all();
    fn(0);
    std::unique_lock l(m_);
    done_.wait(l, [&] { return pending_ == 0; });
  }

 private:
  void worker(int i) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* job;
      {
        std::unique_lock l(m_);
        start_.wait(l, [&] { return stop_ || gen_ != seen; });
        if (stop_) return;
        seen = gen_;
        job = job_;
      }
      (*job)(i);
      std::lock_guard l(m_);
      if (--pending_ == 0) done_.notify_one();
    }
  }
  int n_;
  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable start_, done_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t gen_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

volatile double g_sink = 0;
// ~work_ns of arithmetic on thread t (a dependent chain the compiler cannot drop).
void work(int t, int iters) {
  double x = 1.0 + t;
  for (int i = 0; i < iters; ++i) x = x * 1.0000001 + 1e-9;
  g_sink = g_sink + x;
}

template <class F>
double us_per_region(F&& region, int regions) {
  for (int i = 0; i < regions / 10; ++i) region();  // warm-up
  const auto t0 = Clock::now();
  for (int i = 0; i < regions; ++i) region();
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / regions;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string cpu_name() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "?";
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  double load = -1;
  if (std::ifstream f("/proc/loadavg"); f) f >> load;
  std::printf("machine: %s, %u hardware threads; load average %.2f; %d threads per region\n", cpu_name().c_str(),
              std::thread::hardware_concurrency(), load, threads);
  ThreadPool::set_global_threads(threads);
  ThreadPool& pool = ThreadPool::global();
  CondvarPool cv(threads);
  omp_set_num_threads(threads);
  // Calibrate ~2 µs of work.
  int iters = 1000;
  for (;;) {
    const auto t0 = Clock::now();
    work(0, iters);
    if (std::chrono::duration<double, std::micro>(Clock::now() - t0).count() > 2.0) break;
    iters *= 2;
  }
  std::printf("%-34s %14s %18s\n", "engine", "empty (us)", "2 us of work (us)");
  const int rounds = 7, regions = 20000;
  struct Row {
    const char* name;
    std::function<void(int)> run;  // arg: iters (0: empty)
  };
  std::vector<Row> rows = {
      {"baleine ThreadPool (spin+futex)", [&](int it) { pool.run([&](int t) { if (it) work(t, it); }); }},
      {"condition-variable pool (before)", [&](int it) { cv.run([&](int t) { if (it) work(t, it); }); }},
      {"OpenMP (libgomp) parallel", [&](int it) {
         _Pragma("omp parallel") { if (it) work(omp_get_thread_num(), it); }
       }},
  };
  std::vector<std::vector<double>> empty(rows.size()), busy(rows.size());
  for (int r = 0; r < rounds; ++r)  // interleaved: A B C A B C ...
    for (size_t i = 0; i < rows.size(); ++i) {
      empty[i].push_back(us_per_region([&] { rows[i].run(0); }, regions));
      busy[i].push_back(us_per_region([&] { rows[i].run(iters); }, regions / 4));
    }
  const double alone = us_per_region([&] { work(0, iters); }, regions / 4);
  for (size_t i = 0; i < rows.size(); ++i)
    std::printf("%-34s %14.2f %18.2f\n", rows[i].name, median(empty[i]), median(busy[i]));
  std::printf("%-34s %14s %18.2f\n", "the work alone, one thread", "-", alone);
  return 0;
}
