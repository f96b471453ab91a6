// Fuzz target: loading a tokenizer.json (vocabulary, merges, added tokens, pre-tokenizer regexes), then encoding
// and decoding a short text with whatever loaded.
#include "core/check.h"
#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view rest = baleine::fuzz::as_text(data, size);
  const std::string json(baleine::fuzz::next_piece(rest));
  const std::string config(baleine::fuzz::next_piece(rest));
  try {
    auto tok = baleine::Tokenizer::from_json(json, config, "fuzz");
    auto ids = tok.encode("Hello world! 12345 <｜begin▁of▁sentence｜> 你好", true, true);
    (void)tok.decode(ids);
  } catch (const baleine::Error&) {
  }
  return 0;
}
