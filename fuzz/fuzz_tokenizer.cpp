// Fuzz target: the tokenizer's encode and decode on arbitrary bytes, with the embedded default model's real
// tokenizer: encode with and without special tokens (without, valid UTF-8 must decode back to the same bytes), decode of arbitrary ids (ids outside the vocabulary must be an error, not a crash), and the
// streaming decoder over the same ids.
#include <cstring>
#include <vector>

#include "core/check.h"
#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

namespace {
bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 2) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n;
  }
  return true;
}

const baleine::Tokenizer& tokenizer() {
  static const baleine::Tokenizer tok = baleine::Tokenizer::load(BALEINE_SOURCE_DIR "/models/default/tokenizer.json");
  return tok;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const baleine::Tokenizer& tok = tokenizer();
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 3;
  std::string_view text = baleine::fuzz::as_text(data + 1, size - 1);
  try {
    if (mode < 2) {
      const bool special = mode == 1;
      std::vector<int32_t> ids = tok.encode(text, false, special);
      const std::string back = tok.decode(ids);
      // Byte-level BPE is lossless on text: without special tokens, what was encoded decodes back exactly.
      if (!special && valid_utf8(text) && back != text) __builtin_trap();
    } else {
      std::vector<int32_t> ids(text.size() / 4);
      if (!ids.empty()) std::memcpy(ids.data(), text.data(), ids.size() * 4);
      for (auto& id : ids) id = int32_t(uint32_t(id) % uint32_t(tok.vocab_size() + 8)) ;  // some out of range
      try {
        (void)tok.decode(ids);
      } catch (const baleine::Error&) {
      }
      baleine::StreamDecoder dec(tok);
      for (int32_t id : ids) {
        if (id >= tok.vocab_size()) break;
        (void)dec.push(id);
      }
    }
  } catch (const baleine::Error&) {
  }
  return 0;
}
