#include "core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace baleine {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  int64_t s = int64_t(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02d}", s / 60, s % 60);
}

ProgressBar::ProgressBar(std::string label, int64_t total_items, std::string unit, bool enabled)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total_items),
      enabled_(enabled),
      tty_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() { finish(); }

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string ProgressBar::line() const {
  int64_t done = items_.load(), bytes = bytes_.load();
  double t = std::max(1e-9, elapsed_seconds());
  std::string s = fmt::format("[{}] ", label_);
  if (total_ > 0) {
    double frac = std::min(1.0, double(done) / double(total_));
    constexpr int kWidth = 24;
    int filled = int(frac * kWidth);
    s += "[" + std::string(size_t(filled), '#') + std::string(size_t(kWidth - filled), '.') + "] ";
    s += fmt::format("{}/{} {} {:3.0f}%", done, total_, unit_, 100.0 * frac);
  } else {
    s += fmt::format("{} {}", done, unit_);
  }
  if (bytes > 0) s += fmt::format(" | {:.1f} MB/s", double(bytes) / 1e6 / t);
  else s += fmt::format(" | {:.0f} {}/s", double(done) / t, unit_);
  if (total_ > 0 && done > 0 && done < total_) s += " | ETA " + format_duration(t * double(total_ - done) / double(done));
  else s += " | " + format_duration(t);
  return s;
}

void ProgressBar::add(int64_t items, int64_t bytes) {
  items_.fetch_add(items);
  if (bytes) bytes_.fetch_add(bytes);
  if (!enabled_) return;
  double now = elapsed_seconds();
  if (now - last_draw_.load() < (tty_ ? 0.1 : 10.0)) return;
  std::unique_lock lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock() || finished_) return;
  last_draw_.store(now);
  draw(false);
}

void ProgressBar::draw(bool final) {
  std::string s = line();
  if (tty_) fmt::print(stderr, "\r{}\x1b[K{}", s, final ? "\n" : "");
  else fmt::print(stderr, "{}\n", s);
  std::fflush(stderr);
}

void ProgressBar::finish() {
  std::lock_guard lock(mutex_);
  if (finished_) return;
  finished_ = true;
  if (enabled_) draw(true);
}

}  // namespace baleine
