// bench_janus — one Janus-Pro picture on this CPU: the CFG loop (2 rows: conditional + unconditional) over the
// 576 image tokens, then the VQ-16 decoder to 384×384 pixels, for a model shaped like Janus-Pro-1B (or any Janus
// config.json), with random weights (the cost does not depend on them), language model in F32 or Q8_0. Prints the
// machine, the load average, prefill, per-token and decoder times, and the whole picture's time.
// Usage: bench_janus [config dir=tests/data/configs/janus-pro-1b] [f32|q8_0] [threads=0]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "core/threadpool.h"
#include "infer/image_generation.h"
#include "models/janus.h"
#include "models/quantize.h"
#include "models/weights.h"

using namespace baleine;
using Clock = std::chrono::steady_clock;

namespace {
std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "?";
}
double load_average() {
  std::ifstream in("/proc/loadavg");
  double l = -1;
  in >> l;
  return l;
}
double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : std::string(BALEINE_SOURCE_DIR) + "/tests/data/configs/janus-pro-1b";
  const std::string dtype = argc > 2 ? argv[2] : "f32";
  const int threads = argc > 3 ? std::stoi(argv[3]) : 0;
  ThreadPool::set_global_threads(threads);
  std::printf("machine: %s, %d threads, load %.2f\n", cpu_name().c_str(), ThreadPool::global().size(), load_average());
  JanusConfig cfg = load_janus_config(dir);
  auto t0 = Clock::now();
  JanusModel model(cfg);
  init_params_random([&](const nn::ParamVisitor& v) { model.for_each_param(v); }, 1, 0.02f);
  model.prepare();
  if (dtype == "q8_0") quantize_model(model.language_model(), DType::Q8_0);
  else if (dtype != "f32") { std::fprintf(stderr, "dtype must be f32 or q8_0\n"); return 2; }
  auto t1 = Clock::now();
  std::printf("model: %s, language model %s, gen head f32; built in %.1f s\n", dir.c_str(), dtype.c_str(), secs(t0, t1));
  // "<|User|>: a red circle on a white background\n\n<|Assistant|>:<begin_of_image>" is about 20 tokens.
  std::vector<int32_t> prompt(20);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t((100 + i * 37) % cfg.language.vocab_size);
  ImageGenOptions o;
  o.seed = 7;
  std::vector<double> stamps;
  auto start = Clock::now();
  o.on_token = [&](int64_t, int64_t) { stamps.push_back(secs(start, Clock::now())); };
  GeneratedImages g = generate_images(model, prompt, 0, o);
  auto end = Clock::now();
  const double prefill = stamps.front();
  const double per_token = (stamps.back() - stamps.front()) / double(stamps.size() - 1);
  auto d0 = Clock::now();
  Tensor px = model.decode_images(g.codes.data(), 1);
  auto d1 = Clock::now();
  std::printf("prefill %zu tokens x 2 rows: %.3f s; %lld image tokens: %.1f ms/token (2 rows); loop %.1f s\n",
              prompt.size(), prefill, (long long)stamps.size(), per_token * 1e3, secs(start, end));
  std::printf("VQ decoder %lldx%lld tokens -> %lldx%lld pixels: %.2f s (measured again alone: %.2f s)\n",
              (long long)cfg.tokens_per_side(), (long long)cfg.tokens_per_side(), (long long)px.dim(1),
              (long long)px.dim(2), secs(start, end) - stamps.back(), secs(d0, d1));
  std::printf("one picture: %.1f s\n", secs(start, end));
  return 0;
}
