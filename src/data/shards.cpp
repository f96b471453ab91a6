#include "data/shards.h"

#include <bit>
#include <filesystem>
#include <fstream>

#include "core/check.h"

namespace fs = std::filesystem;

namespace baleine::data {

namespace {
uint32_t to_le(uint32_t v) {
  if constexpr (std::endian::native == std::endian::little) return v;
  return ((v & 0xFF) << 24) | ((v & 0xFF00) << 8) | ((v >> 8) & 0xFF00) | (v >> 24);
}
}  // namespace

ShardWriter::ShardWriter(std::string dir, std::string split, int64_t shard_tokens, uint32_t eos_id)
    : dir_(std::move(dir)), split_(std::move(split)), shard_tokens_(shard_tokens), eos_(eos_id) {
  BALEINE_CHECK(shard_tokens_ > 0, "shard size must be positive, got {}", shard_tokens_);
}

ShardWriter::~ShardWriter() {
  try {
    close();
  } catch (...) {
  }
}

void ShardWriter::open_next() {
  ShardInfo info;
  info.file = fmt::format("{}-{:05d}.bin", split_, shards_.size());
  info.first_document = documents_;
  std::string path = (fs::path(dir_) / info.file).string();
  file_.reset(std::fopen(path.c_str(), "wb"));
  BALEINE_CHECK(file_ != nullptr, "cannot create '{}'", path);
  shards_.push_back(info);
}

void ShardWriter::write(const uint32_t* data, size_t n) {
  buffer_.resize(n);
  for (size_t i = 0; i < n; ++i) buffer_[i] = to_le(data[i]);
  BALEINE_CHECK(std::fwrite(buffer_.data(), sizeof(uint32_t), n, file_.get()) == n, "write failed in {}/{}", dir_,
                shards_.back().file);
}

void ShardWriter::add_document(const std::vector<uint32_t>& tokens) {
  if (!file_) open_next();
  write(tokens.data(), tokens.size());
  write(&eos_, 1);
  ShardInfo& s = shards_.back();
  s.tokens += int64_t(tokens.size()) + 1;
  s.documents += 1;
  tokens_ += int64_t(tokens.size()) + 1;
  documents_ += 1;
  if (s.tokens >= shard_tokens_) {
    BALEINE_CHECK(std::fclose(file_.release()) == 0, "cannot close {}/{}", dir_, s.file);
  }
}

void ShardWriter::close() {
  if (file_) {
    std::string name = shards_.back().file;
    BALEINE_CHECK(std::fclose(file_.release()) == 0, "cannot close {}/{}", dir_, name);
  }
}

nlohmann::json ShardWriter::index() const {
  nlohmann::json shards = nlohmann::json::array();
  for (const auto& s : shards_)
    shards.push_back({{"file", s.file}, {"tokens", s.tokens}, {"documents", s.documents}, {"first_document", s.first_document}});
  return {{"tokens", tokens_}, {"documents", documents_}, {"shards", shards}};
}

std::vector<uint32_t> read_shard(const std::string& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  BALEINE_CHECK(!ec, "cannot stat '{}': {}", path, ec.message());
  BALEINE_CHECK(size % 4 == 0, "'{}' has {} bytes, not a multiple of 4 (uint32 tokens)", path, size);
  std::vector<uint32_t> tokens(size / 4);
  std::ifstream in(path, std::ios::binary);
  BALEINE_CHECK(in.good(), "cannot open '{}'", path);
  in.read(reinterpret_cast<char*>(tokens.data()), std::streamsize(size));
  BALEINE_CHECK(in.gcount() == std::streamsize(size), "short read on '{}'", path);
  for (auto& t : tokens) t = to_le(t);
  return tokens;
}

std::vector<std::vector<uint32_t>> split_at_eos(const std::vector<uint32_t>& tokens, uint32_t eos_id) {
  std::vector<std::vector<uint32_t>> docs;
  std::vector<uint32_t> cur;
  for (uint32_t t : tokens) {
    if (t == eos_id) {
      docs.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(t);
    }
  }
  if (!cur.empty()) docs.push_back(std::move(cur));
  return docs;
}

nlohmann::json verify_shards(const std::string& dir) {
  std::string index_path = (fs::path(dir) / "index.json").string();
  std::ifstream in(index_path);
  BALEINE_CHECK(in.good(), "no index.json in '{}'", dir);
  nlohmann::json index;
  try {
    in >> index;
  } catch (const std::exception& e) {
    BALEINE_FAIL("{} is not valid JSON: {}", index_path, e.what());
  }
  BALEINE_CHECK(index.value("format", "") == "baleine-tokens-v1", "{}: unknown format '{}'", index_path,
                index.value("format", ""));
  auto eos = index.at("eos_id").get<uint32_t>();
  int64_t vocab = index.value("vocab_size", int64_t(0));
  nlohmann::json summary = nlohmann::json::object();
  for (auto& [split, info] : index.at("splits").items()) {
    int64_t tokens = 0, documents = 0;
    for (const auto& s : info.at("shards")) {
      std::string file = s.at("file").get<std::string>();
      std::vector<uint32_t> t = read_shard((fs::path(dir) / file).string());
      int64_t eos_count = 0;
      for (uint32_t id : t) {
        eos_count += id == eos;
        BALEINE_CHECK(vocab <= 0 || int64_t(id) < vocab, "{}: token id {} >= vocab size {}", file, id, vocab);
      }
      BALEINE_CHECK(int64_t(t.size()) == s.at("tokens").get<int64_t>(), "{}: {} tokens on disk, index says {}", file,
                    t.size(), s.at("tokens").get<int64_t>());
      BALEINE_CHECK(eos_count == s.at("documents").get<int64_t>(), "{}: {} EOS tokens, index says {} documents", file,
                    eos_count, s.at("documents").get<int64_t>());
      BALEINE_CHECK(t.empty() || t.back() == eos, "{}: does not end with EOS", file);
      BALEINE_CHECK(s.at("first_document").get<int64_t>() == documents, "{}: first_document {} but {} documents before it",
                    file, s.at("first_document").get<int64_t>(), documents);
      tokens += int64_t(t.size());
      documents += eos_count;
    }
    BALEINE_CHECK(tokens == info.at("tokens").get<int64_t>(), "split {}: {} tokens in shards, index says {}", split, tokens,
                  info.at("tokens").get<int64_t>());
    BALEINE_CHECK(documents == info.at("documents").get<int64_t>(), "split {}: {} documents in shards, index says {}",
                  split, documents, info.at("documents").get<int64_t>());
    summary[split] = {{"tokens", tokens}, {"documents", documents}, {"shards", info.at("shards").size()}};
  }
  return summary;
}

}  // namespace baleine::data
