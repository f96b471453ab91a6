// core: dtype conversions, tensors, arena, thread pool determinism, error format.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <thread>
#include <cstring>

#include "core/arena.h"
#include "core/check.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "core/threadpool.h"

using namespace baleine;

TEST(DType, Bf16RoundTripAndRounding) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = bf16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_bf16(f), uint16_t(h));
  }
  // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even -> 1.0.
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256)), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);
}

TEST(DType, F16RoundTripEveryValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f16(f), uint16_t(h)) << h;
  }
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);                  // overflow -> inf
}

TEST(DType, Fp8E4M3KnownValues) {
  EXPECT_EQ(fp8_e4m3_to_f32(0x00), 0.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x38), 1.0f);     // exp 7, mant 0
  EXPECT_EQ(fp8_e4m3_to_f32(0x7e), 448.0f);   // max finite
  EXPECT_EQ(fp8_e4m3_to_f32(0xfe), -448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0x7f)));
}

TEST(Tensor, ShapesAndConversion) {
  Tensor t = Tensor::empty(DType::BF16, {2, 3});
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.shape_string(), "[2, 3]");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % kAlignment, 0u);
  for (int i = 0; i < 6; ++i) t.data<uint16_t>()[i] = f32_to_bf16(float(i) * 0.5f);
  Tensor f = t.to_f32();
  for (int i = 0; i < 6; ++i) EXPECT_EQ(f.f32()[i], float(i) * 0.5f);
  EXPECT_THROW(t.f32(), Error);
  EXPECT_THROW(t.reshape({4, 2}), Error);
  EXPECT_EQ(t.reshape({3, 2}).dim(0), 3);
}

TEST(Arena, AlignedAndReused) {
  Arena a(4096);
  float* p = a.alloc<float>(10);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kAlignment, 0u);
  a.alloc<float>(100000);  // forces a new block
  size_t peak = a.peak();
  a.reset();
  EXPECT_EQ(a.used(), 0u);
  a.alloc<float>(100000);
  EXPECT_EQ(a.peak(), peak);
}

TEST(ThreadPool, ParallelForCoversRangeOnce) {
  for (int threads : {1, 2, 3}) {
    ThreadPool::set_global_threads(threads);
    std::vector<int> hits(1001, 0);
    parallel_for(1001, [&](int64_t b, int64_t e) { for (int64_t i = b; i < e; ++i) hits[size_t(i)]++; });
    for (int h : hits) EXPECT_EQ(h, 1);
  }
  ThreadPool::set_global_threads(0);
}

// The fork-join's hand-offs under both waits: with no spinning every region goes through the futex sleep and wake
// (a lost wake-up hangs here), and with spinning regions come back to back and after pauses longer than the spin.
TEST(ThreadPool, ManyRegionsNeitherLoseAWakeUpNorAWorker) {
  for (const char* spin_us : {"0", "50"}) {
    ::setenv("BALEINE_SPIN_US", spin_us, 1);
    for (int threads : {2, 3}) {
      ThreadPool::set_global_threads(threads);
      ThreadPool& pool = ThreadPool::global();
      std::vector<int64_t> per_thread(size_t(threads), 0);
      const int regions = 3000;
      for (int r = 0; r < regions; ++r) {
        pool.run([&](int t) { per_thread[size_t(t)] += r; });
        if (r % 500 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));  // past the spin: workers sleep
      }
      const int64_t expected = int64_t(regions) * (regions - 1) / 2;
      for (int t = 0; t < threads; ++t) EXPECT_EQ(per_thread[size_t(t)], expected) << "thread " << t << " spin " << spin_us;
    }
  }
  ::unsetenv("BALEINE_SPIN_US");
  ThreadPool::set_global_threads(0);
}

TEST(ThreadPool, SumIsBitIdenticalForAnyThreadCount) {
  std::vector<double> x(100003);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(double(i)) * 1e3 + 1e-7 * double(i);
  auto sum = [&] {
    return parallel_sum(int64_t(x.size()), 1024, [&](int64_t b, int64_t e) {
      double s = 0;
      for (int64_t i = b; i < e; ++i) s += x[size_t(i)];
      return s;
    });
  };
  ThreadPool::set_global_threads(1);
  double s1 = sum();
  ThreadPool::set_global_threads(2);
  double s2 = sum();
  ThreadPool::set_global_threads(0);
  EXPECT_EQ(std::memcmp(&s1, &s2, sizeof s1), 0);
}

TEST(Check, MessageNamesFunction) {
  try {
    BALEINE_CHECK(1 == 2, "value {} is wrong", 7);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[TestBody] value 7 is wrong");
  }
}
