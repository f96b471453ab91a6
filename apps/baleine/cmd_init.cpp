// baleine init --config config.json --out DIR [--seed N] [--std S] [--tokenizer DIR]: a model directory with
// random weights (config.json + model.safetensors, and a copy of a tokenizer when given), for benchmarks and
// format tests; `baleine convert` then turns it into GGUF.
#include <fmt/format.h>

#include <filesystem>

#include "apps/baleine/command.h"
#include "core/check.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "models/weights.h"

namespace baleine::app {
namespace {

namespace fs = std::filesystem;

struct InitArgs {
  std::string config, out, tokenizer;
  uint64_t seed = 1;
  float std = 0.02f;
};

int run_init(const InitArgs& a) {
  ModelConfig c = load_model_config(a.config);
  auto model = create_model(c);
  init_params_random(*model, a.seed, a.std);
  fs::create_directories(a.out);
  std::vector<std::pair<std::string, Tensor>> tensors;
  double n = 0;
  model->for_each_param([&](nn::Param& p) {
    tensors.emplace_back(p.name, *p.tensor);
    n += double(p.tensor->numel());
  });
  io::safetensors_write((fs::path(a.out) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  fs::path cfg = fs::is_directory(a.config) ? fs::path(a.config) / "config.json" : fs::path(a.config);
  fs::copy_file(cfg, fs::path(a.out) / "config.json", fs::copy_options::overwrite_existing);
  if (!a.tokenizer.empty()) {
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
      fs::path src = fs::path(a.tokenizer) / f;
      BALEINE_CHECK(fs::exists(src) || std::string(f) != "tokenizer.json", "{}: no tokenizer.json", a.tokenizer);
      if (fs::exists(src)) fs::copy_file(src, fs::path(a.out) / f, fs::copy_options::overwrite_existing);
    }
  }
  fmt::print(stderr, "wrote {} ({:.1f}M parameters, seed {})\n", a.out, n / 1e6, a.seed);
  return 0;
}

CommandRegistration reg{{"init", "Create a model directory with random weights from a config.json",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<InitArgs>();
                           sub.add_option("--config", a->config, "config.json (or a directory holding one)")->required();
                           sub.add_option("--out", a->out, "Output directory")->required();
                           sub.add_option("--seed", a->seed, "Random seed");
                           sub.add_option("--std", a->std, "Standard deviation of the weights");
                           sub.add_option("--tokenizer", a->tokenizer, "Directory whose tokenizer.json to copy");
                           return [a] { return run_init(*a); };
                         }}};

}  // namespace
}  // namespace baleine::app
