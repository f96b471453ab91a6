// io/checkpoint.cpp — picks the format of a checkpoint path and forwards to its reader.
#include "io/checkpoint.h"

#include <filesystem>
#include <fstream>

namespace baleine::io {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool has_safetensors(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / "model.safetensors.index.json", ec)) return true;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (ends_with(it->path().filename().string(), ".safetensors")) return true;
  }
  return false;
}

bool has_torch(const fs::path& dir) {
  std::error_code ec;
  return fs::exists(dir / "pytorch_model.bin.index.json", ec) || fs::exists(dir / "pytorch_model.bin", ec);
}

// A zip archive or a legacy torch.save file (a bare pickle starting with its magic number, which the torch
// reader refuses with a clear message). Safetensors files start with their 8-byte header length: read as a length,
// "PK\5\6" and the legacy magic exceed the 100 MB header limit, and a "PK\3\4" local header has its compression
// method (0 or 8) at byte 8 where a safetensors header has '{'.
bool looks_like_torch(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  char head[9] = {};
  if (!in.read(head, 9)) return false;
  const auto b = [&](int i) { return uint8_t(head[i]); };
  if (b(0) == 'P' && b(1) == 'K' && b(2) == 3 && b(3) == 4) return b(8) != '{';
  if (b(0) == 'P' && b(1) == 'K' && b(2) == 5 && b(3) == 6) return true;
  return b(0) == 0x80 && b(1) >= 2 && b(1) <= 5 && b(2) == 0x8a && b(3) == 0x0a;  // PROTO, LONG1 of 10 bytes
}

}  // namespace

CheckpointReader CheckpointReader::open(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (has_safetensors(path)) return CheckpointReader(SafetensorsReader::open(path));
    if (has_torch(path)) return CheckpointReader(TorchCheckpointReader::open(path));
    fail("CheckpointReader::open",
         fmt::format("{}: no weights in directory (looked for model.safetensors.index.json, *.safetensors, "
                     "pytorch_model.bin.index.json, pytorch_model.bin)",
                     path));
  }
  if (ends_with(path, ".bin.index.json")) return CheckpointReader(TorchCheckpointReader::open(path));
  if (!ends_with(path, ".json") && looks_like_torch(path)) return CheckpointReader(TorchCheckpointReader::open(path));
  return CheckpointReader(SafetensorsReader::open(path));
}

bool CheckpointReader::contains(const std::string& name) const {
  return std::visit([&](const auto& r) { return r.contains(name); }, reader_);
}

const SafetensorsEntry& CheckpointReader::entry(const std::string& name) const {
  return std::visit([&](const auto& r) -> const SafetensorsEntry& { return r.entry(name); }, reader_);
}

std::vector<std::string> CheckpointReader::names() const {
  return std::visit([](const auto& r) { return r.names(); }, reader_);
}

const std::string& CheckpointReader::path() const {
  return std::visit([](const auto& r) -> const std::string& { return r.path(); }, reader_);
}

Tensor CheckpointReader::tensor(const std::string& name) const {
  return std::visit([&](const auto& r) { return r.tensor(name); }, reader_);
}

Tensor CheckpointReader::tensor_as(const std::string& name, DType out) const {
  return std::visit([&](const auto& r) { return r.tensor_as(name, out); }, reader_);
}

}  // namespace baleine::io
