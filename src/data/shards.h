// data/shards.h — packed token shards: uint32 little-endian token ids, every document followed by EOS.
// defines: ShardInfo, ShardWriter, read_shard, split_at_eos, verify_shards
//
// Layout of an output directory:
//   train-00000.bin, train-00001.bin, ...   val-00000.bin, ...
//   index.json  {"format": "baleine-tokens-v1", "dtype": "uint32le", "eos_id", "vocab_size", "tokenizer",
//                "splits": {"train": {"tokens", "documents", "shards": [{"file", "tokens", "documents",
//                "first_document"}]}, "val": {...}}}
// A document never straddles two shards; a shard is closed once it holds >= shard_tokens tokens.
// Token counts include the EOS separators; documents = number of EOS tokens in the shard.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace baleine::data {

struct ShardInfo {
  std::string file;  // name relative to the output directory
  int64_t tokens = 0;
  int64_t documents = 0;
  int64_t first_document = 0;  // index of its first document within the split
};

class ShardWriter {
 public:
  ShardWriter(std::string dir, std::string split, int64_t shard_tokens, uint32_t eos_id);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Writes tokens then EOS.
  void add_document(const std::vector<uint32_t>& tokens);
  void close();
  int64_t tokens() const { return tokens_; }
  int64_t documents() const { return documents_; }
  const std::vector<ShardInfo>& shards() const { return shards_; }
  nlohmann::json index() const;  // {"tokens", "documents", "shards": [...]}

 private:
  void open_next();
  void write(const uint32_t* data, size_t n);
  std::string dir_, split_;
  int64_t shard_tokens_;
  uint32_t eos_;
  std::unique_ptr<FILE, int (*)(FILE*)> file_{nullptr, std::fclose};
  std::vector<ShardInfo> shards_;
  int64_t tokens_ = 0, documents_ = 0;
  std::vector<uint32_t> buffer_;
};

// All token ids of a shard file.
std::vector<uint32_t> read_shard(const std::string& path);
// Documents of a token stream (EOS removed); trailing tokens without EOS form a last document.
std::vector<std::vector<uint32_t>> split_at_eos(const std::vector<uint32_t>& tokens, uint32_t eos_id);

// Checks index.json against the shard files (sizes, token counts, EOS counts = documents, ids < vocab)
// and returns a summary {"train": {"tokens", "documents"}, "val": {...}}; throws on any mismatch.
nlohmann::json verify_shards(const std::string& dir);

}  // namespace baleine::data
