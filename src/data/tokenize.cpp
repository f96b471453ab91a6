#include "data/tokenize.h"

#include "core/check.h"

namespace baleine::data {

bool tokenizer_available() {
#ifdef BALEINE_HAVE_TOKENIZER
  return true;
#else
  return false;
#endif
}

TokenEncoder load_token_encoder(const std::string& dir) {
  BALEINE_FAIL("baleine was built without the tokenizer library (src/tokenizer); cannot tokenize with '{}'", dir);
}

}  // namespace baleine::data
