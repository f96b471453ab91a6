// tokenizer/tokenizer.h — byte-level BPE loaded from a Hugging Face tokenizer.json (DeepSeek-V3, Qwen2, Llama-3).
// defines: Tokenizer, StreamDecoder
//
// Pipeline (as HF `tokenizers`): added/special tokens are matched first (longest first); the remaining text goes
// through the pre-tokenizer (Split regexes via PCRE2 with Unicode properties, then ByteLevel: bytes -> printable
// characters), each piece through BPE merges by rank, then vocabulary lookup. Decoding maps characters back to
// bytes. Invalid UTF-8 in the input never matches a regex: those bytes form their own pieces and are encoded
// through the byte-level alphabet like any other bytes (decode gives them back unchanged).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace baleine {

class Tokenizer {
 public:
  // `path`: a directory holding tokenizer.json (and optionally tokenizer_config.json), or the json file itself.
  static Tokenizer load(const std::string& path);
  // From the JSON text of a tokenizer.json (+ optional tokenizer_config.json text); `source` names it in errors.
  static Tokenizer from_json(const std::string& tokenizer_json, const std::string& config_json, const std::string& source);

  Tokenizer();
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Token ids of `text`; added/special tokens in the text are recognised when allow_special (the default).
  std::vector<int32_t> encode(std::string_view text, bool add_bos = false, bool allow_special = true) const;
  // Bytes of the tokens (special tokens included unless skip_special).
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  int64_t vocab_size() const;  // 1 + the largest id
  int32_t bos_id() const;      // -1 when unknown
  int32_t eos_id() const;
  std::optional<int32_t> token_id(std::string_view token) const;  // exact token text (special tokens by content)
  std::string token_bytes(int32_t id) const;                      // what decode() gives for this id alone
  bool is_special(int32_t id) const;
  // The pre-tokenizer alone: the byte-level pieces BPE would see (added tokens are not matched here).
  std::vector<std::string> pre_tokenize(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Byte-level BPE training with the DeepSeek-V3 pre-tokenizer; writes tokenizer.json + tokenizer_config.json in
// Hugging Face format. Special tokens come first (BOS 0, EOS 1, pad 2, then chat and tool markers), then the 256
// byte tokens, then one token per merge. Deterministic: ties are broken by token ids.
struct BpeTrainOptions {
  int64_t vocab_size = 4096;   // including special and byte tokens
  int64_t min_frequency = 2;   // stop merging when the best pair is rarer
  bool progress = true;
};
const std::vector<std::string>& default_special_tokens();
void train_bpe_tokenizer(const std::vector<std::string>& input_files, const std::string& out_dir, const BpeTrainOptions& options);

// Incremental decoding for streaming: push ids, get text that never ends inside a UTF-8 character.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = false) : tok_(tok), skip_special_(skip_special) {}
  std::string push(int32_t id);  // complete characters available now
  std::string flush();           // whatever is left (possibly an incomplete sequence, as is)

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace baleine
