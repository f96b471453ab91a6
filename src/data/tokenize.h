// data/tokenize.h — the one place the data pipeline touches the tokenizer library.
// defines: load_token_encoder, tokenizer_available
#pragma once
#include <string>

#include "data/pipeline.h"

namespace baleine::data {

// Loads the tokenizer saved in dir (tokenizer.json, as written by `baleine tokenizer train`) and wraps it as
// a thread-safe encoder without special tokens; EOS is the tokenizer's end-of-sequence token.
TokenEncoder load_token_encoder(const std::string& dir);

// False when baleine was built without src/tokenizer (then load_token_encoder throws).
bool tokenizer_available();

}  // namespace baleine::data
