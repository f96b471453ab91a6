// The tokenizer the engine tests share: a real byte-level BPE (special tokens + bytes + a few merges) trained on
// a scrap of text, once per process (CTest runs the cases of a file as parallel processes, hence the pid).
#pragma once
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <errno.h>  // program_invocation_short_name
#include <unistd.h>

#include "tokenizer/tokenizer.h"

namespace engine_test {

inline std::shared_ptr<const baleine::Tokenizer> tiny_tokenizer() {
  static std::shared_ptr<const baleine::Tokenizer> tok = [] {
    auto dir = std::filesystem::temp_directory_path() /
               ("baleine_engine_test_tok_" + std::string(program_invocation_short_name) + "_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    {
      std::ofstream f(dir / "text.txt");
      for (int i = 0; i < 50; ++i) f << "the quick brown fox jumps over the lazy dog " << i << "\n";
    }
    baleine::BpeTrainOptions o;
    o.vocab_size = 300;
    o.progress = false;
    baleine::train_bpe_tokenizer({(dir / "text.txt").string()}, (dir / "tok").string(), o);
    auto t = std::make_shared<const baleine::Tokenizer>(baleine::Tokenizer::load((dir / "tok").string()));
    std::filesystem::remove_all(dir);
    return t;
  }();
  return tok;
}

}  // namespace engine_test
