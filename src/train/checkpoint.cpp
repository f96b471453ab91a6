#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/check.h"
#include "io/safetensors.h"
#include "models/weights.h"

namespace baleine::train {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BALEINE_CHECK(in.good(), "{}: cannot open", path);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::parse_error& e) {
    BALEINE_FAIL("{}: invalid JSON at byte {}", path, e.byte);
  }
}

void write_file_atomic(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  BALEINE_CHECK(fd >= 0, "{}: cannot create: {}", tmp.string(), std::strerror(errno));
  bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size()) && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    fs::remove(tmp);
    BALEINE_FAIL("{}: write failed: {}", path.string(), std::strerror(err));
  }
  int dfd = ::open(path.parent_path().empty() ? "." : path.parent_path().c_str(), O_RDONLY);
  if (dfd >= 0) { ::fsync(dfd); ::close(dfd); }
}

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

void Checkpointer::save(CausalLM& model, AdamW& opt, const json& config, const json& state) {
  fs::create_directories(root);
  const std::string name = step_name(state.at("step").get<int64_t>());
  fs::path tmp = root / (".tmp-" + name), final_dir = root / name;
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {  // a failed write (disk full, quota, I/O error) leaves no half-written directory behind
    std::vector<std::pair<std::string, Tensor>> params, moments;
    model.for_each_param([&](nn::Param& p) { if (p.tensor->defined()) params.emplace_back(p.name, *p.tensor); });
    for (auto& [n, t] : opt.state()) moments.emplace_back(n, *t);
    io::safetensors_write((tmp / "model.safetensors").string(), params);
    io::safetensors_write((tmp / "optimizer.safetensors").string(), moments);
    write_file_atomic(tmp / "config.json", config.dump(2));
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      if (!tokenizer_dir.empty() && fs::exists(fs::path(tokenizer_dir) / f)) fs::copy_file(fs::path(tokenizer_dir) / f, tmp / f);
    write_file_atomic(tmp / "state.json", state.dump(2));
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  // Only now does the new checkpoint become the one to resume from; the previous one stays intact until here.
  write_file_atomic(root / "latest", name + "\n");
  std::vector<std::string> steps;  // keep the newest two checkpoints
  for (auto& e : fs::directory_iterator(root))
    if (e.is_directory() && e.path().filename().string().rfind("step-", 0) == 0) steps.push_back(e.path().filename().string());
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + 2 < steps.size(); ++i) fs::remove_all(root / steps[i]);
}

std::string Checkpointer::latest() const {
  std::ifstream in(root / "latest");
  std::string name;
  if (in >> name) return name;
  return "";
}

json restore_checkpoint(const fs::path& dir, CausalLM& model, AdamW& opt) {
  load_params(model, (dir / "model.safetensors").string());
  materialize_params(model);
  opt.attach(model);
  auto moments = io::SafetensorsReader::open((dir / "optimizer.safetensors").string());
  for (auto& [name, t] : opt.state()) {
    Tensor saved = moments.tensor_as(name, DType::F32);
    BALEINE_CHECK(saved.numel() == t->numel(), "{}: optimizer state '{}' has the wrong size", dir.string(), name);
    std::memcpy(t->raw(), saved.raw(), t->nbytes());
  }
  return read_json_file((dir / "state.json").string());
}

void truncate_metrics(const fs::path& metrics_path, int64_t step) {
  std::ifstream in(metrics_path);
  std::string kept, line;
  while (std::getline(in, line))
    if (!line.empty() && json::parse(line).value("step", int64_t(0)) <= step) kept += line + "\n";
  write_file_atomic(metrics_path, kept);
}

}  // namespace baleine::train
