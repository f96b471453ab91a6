// core/progress.h — a thread-safe progress line on stderr: items done, throughput, ETA.
// defines: ProgressBar, format_duration
//
// On a terminal the line is redrawn in place at most every 100 ms; when stderr is not a terminal (CI logs)
// a plain line is printed at most every 10 s, so logs stay short. finish() prints the final line.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace baleine {

class ProgressBar {
 public:
  // total_items <= 0 means unknown (no percentage, no ETA). unit names the items ("docs", "files").
  ProgressBar(std::string label, int64_t total_items, std::string unit = "items", bool enabled = true);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Adds to the counters (callable from any thread) and redraws if it is time to.
  void add(int64_t items, int64_t bytes = 0);
  // Prints the final line (idempotent).
  void finish();

  int64_t items() const { return items_.load(); }
  int64_t bytes() const { return bytes_.load(); }
  double elapsed_seconds() const;
  // The line as it would be printed now (without the leading carriage return).
  std::string line() const;

 private:
  void draw(bool final);
  std::string label_, unit_;
  int64_t total_;
  bool enabled_, tty_;
  std::atomic<int64_t> items_{0}, bytes_{0};
  std::chrono::steady_clock::time_point start_;
  std::atomic<double> last_draw_{0.0};  // seconds since start_
  std::mutex mutex_;
  bool finished_ = false;
};

// "1:02:03", "4:05", "0:07".
std::string format_duration(double seconds);

}  // namespace baleine
