#include "data/tokenize.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "core/check.h"
#include "data/text.h"

#ifdef BALEINE_HAVE_TOKENIZER
#include "tokenizer/tokenizer.h"
#endif

namespace baleine::data {

bool tokenizer_available() {
#ifdef BALEINE_HAVE_TOKENIZER
  return true;
#else
  return false;
#endif
}

#ifdef BALEINE_HAVE_TOKENIZER
namespace {

// Reasoning markers become their single added token when the vocabulary has one (special or not), so the
// synthetic "<think>…</think>" documents match the chat format used later. Everything else is encoded with
// added/special tokens disabled: a literal "<｜end▁of▁sentence｜>" in a web page must not become the real EOS.
constexpr const char* kMarkers[] = {"<think>", "</think>"};

struct Marker {
  std::string text;
  int32_t id;
};

void encode_text(const Tokenizer& tok, const std::vector<Marker>& markers, std::string_view text,
                 std::vector<uint32_t>& out) {
  auto emit = [&](std::string_view piece) {
    if (piece.empty()) return;
    for (int32_t id : tok.encode(piece, /*add_bos=*/false, /*allow_special=*/false)) out.push_back(uint32_t(id));
  };
  size_t pos = 0;
  while (!markers.empty()) {
    size_t best = std::string_view::npos;
    const Marker* which = nullptr;
    for (const auto& m : markers) {
      size_t p = text.find(m.text, pos);
      if (p < best) best = p, which = &m;
    }
    if (which == nullptr) break;
    emit(text.substr(pos, best - pos));
    out.push_back(uint32_t(which->id));
    pos = best + which->text.size();
  }
  emit(text.substr(pos));
}

}  // namespace

TokenEncoder load_token_encoder(const std::string& dir) {
  namespace fs = std::filesystem;
  fs::path json_path = fs::is_directory(dir) ? fs::path(dir) / "tokenizer.json" : fs::path(dir);
  BALEINE_CHECK(fs::exists(json_path), "no tokenizer.json in '{}'", dir);
  auto tok = std::make_shared<Tokenizer>(Tokenizer::load(dir));
  BALEINE_CHECK(tok->eos_id() >= 0, "tokenizer '{}' has no end-of-sequence token", dir);
  std::vector<Marker> markers;
  for (const char* m : kMarkers) {
    auto id = tok->token_id(m);
    if (id && *id != tok->eos_id() && *id != tok->bos_id()) markers.push_back({m, *id});
  }
  std::ifstream in(json_path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  TokenEncoder enc;
  enc.path = fs::absolute(json_path).lexically_normal().string();
  enc.hash = fmt::format("hash64:{:016x}", hash64(ss.str()));
  enc.eos_id = uint32_t(tok->eos_id());
  enc.vocab_size = tok->vocab_size();
  enc.encode = [tok, markers](std::string_view text, std::vector<uint32_t>& out) { encode_text(*tok, markers, text, out); };
  return enc;
}
#else
TokenEncoder load_token_encoder(const std::string& dir) {
  BALEINE_FAIL("baleine was built without the tokenizer library (src/tokenizer); cannot tokenize with '{}'", dir);
}
#endif

}  // namespace baleine::data
