// baleine export --checkpoint DIR --out DIR [--dtype bf16|f32]: a training checkpoint as a model directory
// (config.json, model.safetensors, tokenizer files) without optimizer state, matrices optionally in bf16.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "apps/baleine/command.h"
#include "core/check.h"
#include "io/safetensors.h"
#include "models/model.h"

namespace baleine::app {
namespace {

namespace fs = std::filesystem;

struct ExportArgs {
  std::string checkpoint, out, dtype = "bf16";
};

int run_export(const ExportArgs& a) {
  const fs::path src(a.checkpoint), dst(a.out);
  for (const char* f : {"config.json", "model.safetensors"})
    BALEINE_CHECK(fs::is_regular_file(src / f), "{}: no {} (is it a checkpoint directory?)", src.string(), f);
  BALEINE_CHECK(fs::weakly_canonical(src) != fs::weakly_canonical(dst), "--out must differ from --checkpoint");
  const DType matrix_dtype = a.dtype == "bf16" ? DType::BF16 : DType::F32;
  io::SafetensorsReader reader = io::SafetensorsReader::open((src / "model.safetensors").string());
  // Matrices in the chosen dtype; vectors (norm weights, the router's balance bias) stay f32: they are tiny
  // and the bias moves in steps of γ that bf16 would round away.
  std::vector<std::pair<std::string, Tensor>> tensors;
  size_t bytes = 0;
  for (const std::string& name : reader.names()) {
    const bool matrix = reader.entry(name).shape.size() >= 2;
    tensors.emplace_back(name, reader.tensor_as(name, matrix ? matrix_dtype : DType::F32));
    bytes += tensors.back().second.nbytes();
  }
  fs::create_directories(dst);
  io::safetensors_write((dst / "model.safetensors").string(), tensors, {{"format", "pt"}});
  std::ifstream cin(src / "config.json");
  std::stringstream ss;
  ss << cin.rdbuf();
  nlohmann::json config = nlohmann::json::parse(ss.str());
  config["torch_dtype"] = a.dtype == "bf16" ? "bfloat16" : "float32";
  {
    const fs::path tmp = dst / "config.json.tmp";
    std::ofstream out(tmp);
    out << config.dump(2) << "\n";
    out.close();
    BALEINE_CHECK(out.good(), "{}: write failed", tmp.string());
    fs::rename(tmp, dst / "config.json");
  }
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    if (fs::exists(src / f)) fs::copy_file(src / f, dst / f, fs::copy_options::overwrite_existing);
  auto model = load_model(dst.string());  // the result must load
  fmt::print("wrote {}: {} tensors, {:.2f} MB ({} matrices)\n", dst.string(), tensors.size(), double(bytes) / 1e6, a.dtype);
  return 0;
}

CommandRegistration reg{{"export", "Turn a training checkpoint into a model directory (no optimizer state, bf16 matrices)",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<ExportArgs>();
                           sub.add_option("--checkpoint", a->checkpoint, "Checkpoint directory (runs/.../checkpoints/step-N)")->required();
                           sub.add_option("--out", a->out, "Model directory to write")->required();
                           sub.add_option("--dtype", a->dtype, "Matrix dtype")->check(CLI::IsMember({"bf16", "f32"}));
                           return [a] { return run_export(*a); };
                         }}};

}  // namespace
}  // namespace baleine::app
