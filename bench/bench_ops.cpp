// bench_ops — timings of the ops kernels per backend, thread count and linear code path.
//
// Built by CMake as build/bench/bench_ops.
// Usage: bench_ops [quick] [linear|quant|attention|rowwise]
//   quick: no reference timings for the 4096 shapes; a section name runs only that section.
#include <immintrin.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/dtype.h"
#include "core/threadpool.h"
#include "ops/cpu/kernels.h"
#include "ops/ops.h"
#include "ops/quant.h"

using namespace baleine;
using namespace baleine::ops;

namespace {

std::vector<float> randv(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Best time of repeated runs (seconds): runs until 0.3 s or 200 repetitions, at least 3.
double best_time(const std::function<void()>& fn) {
  fn();  // warm caches, scratch and the pool
  double best = std::numeric_limits<double>::max(), total = 0;
  for (int i = 0; i < 200 && (i < 3 || total < 0.3); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, dt);
    total += dt;
  }
  return best;
}

// Best CPU time of the calling thread (seconds), same repetition rule: with one thread the pool runs the work
// on the caller, so this is the kernel's own time even on a busy machine (time spent descheduled does not
// count; cache and memory contention from other processes still does).
double best_cpu_time(const std::function<void()>& fn) {
  auto now = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  };
  fn();
  double best = std::numeric_limits<double>::max(), total = 0;
  for (int i = 0; i < 200 && (i < 3 || total < 0.3); ++i) {
    const double t0 = now();
    fn();
    const double dt = now() - t0;
    best = std::min(best, dt);
    total += dt;
  }
  return best;
}

struct W {
  std::vector<float> f32;
  std::vector<uint16_t> half;
  WeightRef ref;
};
W make(DType dt, int64_t N, int64_t K) {
  W w;
  w.f32 = randv(size_t(N * K), 1);
  if (dt != DType::F32) {
    w.half.resize(w.f32.size());
    for (size_t i = 0; i < w.f32.size(); ++i) w.half[i] = dt == DType::BF16 ? f32_to_bf16(w.f32[i]) : f32_to_f16(w.f32[i]);
  }
  w.ref = WeightRef{dt == DType::F32 ? static_cast<const void*>(w.f32.data()) : w.half.data(), dt, N, K, 0};
  return w;
}

void bench_linear(bool quick) {
  std::printf("\nlinear y[M,N] = x[M,K]·Wᵀ  (µs; GFLOP/s in brackets)\n");
  std::printf("%-5s %5s %5s %5s %3s %10s %18s %18s %18s\n", "dtype", "M", "N", "K", "thr", "reference", "default",
              "own kernel", "openblas");
  for (int64_t NK : {1024, 4096})
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      const W w = make(dt, NK, NK);
      for (int64_t M : {1, 2, 4, 8, 16, 32, 64}) {
        const std::vector<float> x = randv(size_t(M * NK), 2);
        std::vector<float> y(size_t(M * NK));
        for (int threads : {1, 2}) {
          ThreadPool::set_global_threads(threads);
          auto run = [&] { linear(y.data(), x.data(), w.ref, nullptr, M); };
          const double flop = 2.0 * double(M) * double(NK) * double(NK);
          double t_ref = 0;
          if (threads == 1 && !(quick && NK > 1024) && (M <= 8 || NK == 1024)) {
            set_backend(Backend::Reference);
            t_ref = best_time(run);
          }
          set_backend(best_backend());
          const double t_def = best_time(run);
          cpu::LinearTuning& tune = cpu::linear_tuning(best_backend());
          const cpu::LinearTuning saved = tune;
          tune = {std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max()};
          const double t_own = best_time(run);
          tune = {1, 1};
          const double t_blas = best_time(run);
          tune = saved;
          auto cell = [&](double t) {
            static char buf[4][32];
            static int k = 0;
            char* b = buf[k++ % 4];
            std::snprintf(b, 32, "%9.1f [%6.1f]", t * 1e6, flop / t * 1e-9);
            return b;
          };
          char ref[32] = "-";
          if (t_ref > 0) std::snprintf(ref, sizeof ref, "%10.1f", t_ref * 1e6);
          std::printf("%-5s %5ld %5ld %5ld %3d %10s %18s %18s %18s\n", std::string(dtype_name(dt)).c_str(), long(M),
                      long(NK), long(NK), threads, ref, cell(t_def), cell(t_own), cell(t_blas));
        }
      }
    }
}

// Read bandwidth of this machine: a 1.5 GiB array summed with 256-bit loads (AVX2 where the CPU has it: a
// scalar loop would measure instruction throughput, not memory), GB/s.
__attribute__((target("avx2"))) float sum_avx2(const float* a, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i < n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_loadu_ps(a + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_loadu_ps(a + i + 24));
  }
  float t[8];
  _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
double read_bandwidth(int threads) {
  if (!cpu_features().avx2) return 0;
  static std::vector<float> buf(size_t(384) << 20, 1.0f);  // 1.5 GiB, far beyond the caches
  ThreadPool::set_global_threads(threads);
  std::vector<float> part(64);
  auto run = [&] {
    parallel_for(
        64,
        [&](int64_t p0, int64_t p1) {
          const size_t n = buf.size() / 64;
          for (int64_t p = p0; p < p1; ++p) part[size_t(p)] = sum_avx2(buf.data() + size_t(p) * n, n);
        },
        1);
  };
  const double t = best_time(run);
  return double(buf.size() * 4) / t * 1e-9;
}

// Quantised and plain weights at DeepSeek-V3 expert shapes (gate/up [2048, 7168], down [7168, 2048]; 14.7M
// weights each). GEMV (M = 1) is decode: the weights stream from DRAM, so the matrix is replicated into a
// >= 1.5 GiB pool (6x this CPU's 260 MB L3) and each call reads the next copy; reported as GB/s of weight
// bytes (next to a plain streaming read loop's GB/s). GEMM (M = 64, one copy): GFLOP/s counting 2·M·N·K.
// One thread is timed in thread CPU time, two threads in wall time (see best_cpu_time).
void bench_quant() {
  std::printf("\nquantised linear at DeepSeek-V3 expert shapes (%s)\n", backend_name(best_backend()));
  const double bw1 = read_bandwidth(1), bw2 = read_bandwidth(2);
  std::printf("streaming read loop: %.1f GB/s (1 thread), %.1f GB/s (2 threads)\n", bw1, bw2);
  std::printf("%-5s %5s %5s %3s %12s %9s %12s %9s\n", "dtype", "N", "K", "thr", "M=1 µs", "GB/s", "M=64 µs", "GFLOP/s");
  struct Shape { int64_t N, K; };
  for (Shape sh : {Shape{2048, 7168}, Shape{7168, 2048}}) {
    const int64_t N = sh.N, K = sh.K;
    const std::vector<float> wf = randv(size_t(N * K), 1);
    for (DType dt : {DType::F32, DType::BF16, DType::Q8_0, DType::Q6_K, DType::Q4_K, DType::Q4_0}) {
      const size_t wbytes = dt == DType::F32 ? size_t(N * K) * 4 : dt == DType::BF16 ? size_t(N * K) * 2 : dtype_nbytes(dt, N * K);
      std::vector<uint8_t> one(wbytes);
      if (dt == DType::F32) {
        std::memcpy(one.data(), wf.data(), wbytes);
      } else if (dt == DType::BF16) {
        auto* h = reinterpret_cast<uint16_t*>(one.data());
        for (size_t i = 0; i < wf.size(); ++i) h[i] = f32_to_bf16(wf[i]);
      } else {
        ThreadPool::set_global_threads(2);
        quantize_rows(dt, wf.data(), one.data(), N, K);
      }
      const size_t copies = std::max<size_t>(2, (size_t(1536) << 20) / wbytes + 1);
      std::vector<uint8_t> pool(copies * wbytes);
      for (size_t c = 0; c < copies; ++c) std::memcpy(pool.data() + c * wbytes, one.data(), wbytes);
      for (int threads : {1, 2}) {
        ThreadPool::set_global_threads(threads);
        set_backend(best_backend());
        const std::vector<float> x1 = randv(size_t(K), 2), x64 = randv(size_t(64 * K), 3);
        std::vector<float> y(size_t(64 * N));
        size_t next = 0;
        // One thread: the caller's CPU time (see best_cpu_time); two threads: wall time.
        auto timer = threads == 1 ? best_cpu_time : best_time;
        const double t1 = timer([&] {
          const WeightRef w{pool.data() + (next++ % copies) * wbytes, dt, N, K, 0};
          linear(y.data(), x1.data(), w, nullptr, 1);
        });
        const WeightRef w{one.data(), dt, N, K, 0};
        const double t64 = timer([&] { linear(y.data(), x64.data(), w, nullptr, 64); });
        std::printf("%-5s %5ld %5ld %3d %12.1f %9.1f %12.1f %9.1f\n", std::string(dtype_name(dt)).c_str(), long(N),
                    long(K), threads, t1 * 1e6, double(wbytes) / t1 * 1e-9, t64 * 1e6,
                    2.0 * 64 * double(N) * double(K) / t64 * 1e-9);
      }
    }
  }
}

void bench_attention() {
  std::printf("\nattention (decode n_q = 1 and prefill n_q = 256), µs\n");
  struct Case {
    const char* name;
    int64_t H, G, qk, v, n_q, n_kv;
  };
  const Case cases[] = {{"qwen-1.5b decode", 12, 2, 128, 128, 1, 4096},
                        {"qwen-1.5b prefill", 12, 2, 128, 128, 256, 256},
                        {"mla absorbed decode", 16, 1, 576, 512, 1, 4096}};
  for (const Case& c : cases) {
    AttentionArgs a;
    a.n_q = c.n_q, a.n_kv = c.n_kv, a.kv_offset = c.n_kv - c.n_q, a.n_heads = c.H, a.n_kv_heads = c.G;
    a.qk_dim = c.qk, a.v_dim = c.v, a.scale = 0.1f;
    a.q_head_stride = c.qk, a.q_stride = c.H * c.qk, a.k_head_stride = c.qk, a.k_stride = c.G * c.qk;
    a.v_head_stride = c.v, a.v_stride = c.G * c.v, a.out_head_stride = c.v, a.out_stride = c.H * c.v;
    const std::vector<float> q = randv(size_t(c.n_q * a.q_stride), 1), k = randv(size_t(c.n_kv * a.k_stride), 2);
    const std::vector<float> v = randv(size_t(c.n_kv * a.v_stride), 3);
    std::vector<float> o(size_t(c.n_q * a.out_stride));
    for (int threads : {1, 2}) {
      ThreadPool::set_global_threads(threads);
      auto run = [&] { attention_causal(o.data(), q.data(), k.data(), v.data(), a); };
      set_backend(Backend::Reference);
      const double tr = threads == 1 ? best_time(run) : 0;
      std::printf("%-22s thr %d: reference %9.1f", c.name, threads, tr * 1e6);
      for (Backend b : {Backend::AVX2, Backend::AVX512}) {
        try {
          set_backend(b);
        } catch (...) {
          continue;
        }
        std::printf("  %s %9.1f", backend_name(b), best_time(run) * 1e6);
      }
      std::printf("\n");
    }
  }
}

void bench_rowwise() {
  std::printf("\nrow-wise / element-wise, 1 thread, µs\n");
  ThreadPool::set_global_threads(1);
  const int64_t rows = 64, dim = 4096, n = rows * dim;
  std::vector<float> x = randv(size_t(n), 1), y(static_cast<size_t>(n)), w = randv(size_t(dim), 2);
  struct Op {
    const char* name;
    std::function<void()> fn;
  };
  const Op ops[] = {
      {"rmsnorm 64x4096", [&] { rmsnorm(y.data(), x.data(), w.data(), rows, dim, 1e-6f); }},
      {"softmax 64x4096", [&] { std::memcpy(y.data(), x.data(), size_t(n) * 4), softmax_rows(y.data(), rows, dim); }},
      {"silu 262144", [&] { silu(y.data(), x.data(), n); }},
      {"swiglu 262144", [&] { swiglu(y.data(), x.data(), x.data(), n); }},
      {"topk 8 of 256", [&] { int32_t i[8]; topk(x.data(), 256, 8, i, nullptr); }},
      {"topk 40 of 151936", [&] { int32_t i[40]; topk(x.data(), 151936, 40, i, nullptr); }},
  };
  for (const Op& op : ops) {
    std::printf("%-20s", op.name);
    for (Backend b : {Backend::Reference, Backend::AVX2, Backend::AVX512}) {
      try {
        set_backend(b);
      } catch (...) {
        continue;
      }
      std::printf("  %s %9.1f", backend_name(b), best_time(op.fn) * 1e6);
    }
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string only;
  for (int i = 1; i < argc; ++i) (std::string(argv[i]) == "quick" ? quick = true : (only = argv[i], false));
  std::printf("%s\nbest backend: %s\n", cpu_description().c_str(), backend_name(best_backend()));
  if (only.empty() || only == "linear") bench_linear(quick);
  if (only.empty() || only == "quant") bench_quant();
  if (only.empty() || only == "attention") bench_attention();
  if (only.empty() || only == "rowwise") bench_rowwise();
  return 0;
}
