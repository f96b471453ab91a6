// server/metrics.h — counters and latency histograms for GET /metrics (Prometheus text format 0.0.4), and the
// per-key sliding-window rate limiter.
// defines: Histogram, Metrics, RateLimiter
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "infer/engine.h"

namespace baleine::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void observe(double v);
  std::string render(const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t n_ = 0;
};

class Metrics {
 public:
  Metrics();
  void request(const std::string& endpoint, int status);
  void tokens(int64_t prompt, int64_t cached, int64_t completion);
  Histogram ttft, duration, queue_wait;
  std::atomic<int64_t> in_flight{0}, streams{0};
  // Everything, with the engine's gauges (queue depth, running sequences, mean batch size, prefix-cache hit ratio).
  std::string render(const EngineStats& engine) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_ = 0, cached_ = 0, completion_ = 0;
};

// Requests and tokens per minute per key, over a sliding 60 s window.
class RateLimiter {
 public:
  // 0 when admitted (the request is counted), else the seconds to wait before retrying.
  int admit(int64_t key, int64_t rpm, int64_t tpm);
  void add_tokens(int64_t key, int64_t tokens);

 private:
  using Clock = std::chrono::steady_clock;
  struct Window {
    std::deque<Clock::time_point> requests;
    std::deque<std::pair<Clock::time_point, int64_t>> tokens;
    int64_t token_sum = 0;
  };
  void expire(Window& w, Clock::time_point now);
  std::mutex mu_;
  std::map<int64_t, Window> windows_;
};

}  // namespace baleine::server
