// baleine tokenize / detokenize: the tokenizer from the command line.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "apps/baleine/command.h"
#include "core/check.h"
#include "apps/baleine/model_files.h"
#include "tokenizer/tokenizer.h"

namespace baleine::app {
namespace {

struct TokenizeArgs {
  std::string tokenizer, text, file;
  bool bos = false, no_special = false;
};

int run_tokenize(const TokenizeArgs& a) {
  BALEINE_CHECK(a.text.empty() != a.file.empty() || (!a.text.empty() && a.file.empty()),
                "give exactly one of --text or --file");
  Tokenizer tok = load_tokenizer_for(a.tokenizer);
  std::string text = a.text;
  if (!a.file.empty()) {
    std::ifstream in(a.file, std::ios::binary);
    BALEINE_CHECK(in.good(), "{}: cannot open", a.file);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> ids = tok.encode(text, a.bos, !a.no_special);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("{} tokens, {} bytes, encoded in {:.3f} s ({:.2f} MB/s)\n", ids.size(), text.size(), s, text.size() / 1e6 / std::max(s, 1e-9));
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
  fmt::print("{}]\n", out);
  return 0;
}

CommandRegistration tokenize_reg{{"tokenize", "Token ids of a text (JSON array on the last line of stdout)",
                                  [](CLI::App& sub) -> std::function<int()> {
                                    auto a = std::make_shared<TokenizeArgs>();
                                    sub.add_option("--tokenizer", a->tokenizer, "Directory with tokenizer.json (or the file, or a .gguf model)")->required();
                                    auto* t = sub.add_option("--text", a->text, "Text to encode");
                                    auto* f = sub.add_option("--file", a->file, "File whose bytes to encode");
                                    t->excludes(f);
                                    sub.add_flag("--bos", a->bos, "Prepend the BOS token");
                                    sub.add_flag("--no-special", a->no_special, "Treat special-token text as plain text");
                                    return [a] {
                                      BALEINE_CHECK(!a->text.empty() || !a->file.empty(), "give --text or --file");
                                      return run_tokenize(*a);
                                    };
                                  }}};

struct DetokenizeArgs {
  std::string tokenizer, ids, ids_file;
  bool skip_special = false;
};

CommandRegistration detokenize_reg{{"detokenize", "Text of a list of token ids",
                                    [](CLI::App& sub) -> std::function<int()> {
                                      auto a = std::make_shared<DetokenizeArgs>();
                                      sub.add_option("--tokenizer", a->tokenizer, "Directory with tokenizer.json (or the file, or a .gguf model)")->required();
                                      auto* i = sub.add_option("--ids", a->ids, "Comma-separated token ids");
                                      auto* f = sub.add_option("--ids-file", a->ids_file, "File holding comma-separated ids (or a JSON array)");
                                      i->excludes(f);
                                      sub.add_flag("--skip-special", a->skip_special, "Drop special tokens");
                                      return [a] {
                                        Tokenizer tok = load_tokenizer_for(a->tokenizer);
                                        std::string list = a->ids;
                                        if (!a->ids_file.empty()) {
                                          std::ifstream in(a->ids_file, std::ios::binary);
                                          BALEINE_CHECK(in.good(), "{}: cannot open", a->ids_file);
                                          std::stringstream ss;
                                          ss << in.rdbuf();
                                          list = ss.str();
                                          for (char& c : list) if (c == '[' || c == ']' || c == '\n') c = ' ';
                                        }
                                        BALEINE_CHECK(!list.empty(), "give --ids or --ids-file");
                                        std::vector<int32_t> ids = parse_int_list(list, a->ids_file.empty() ? "--ids" : "--ids-file");
                                        std::string text = tok.decode(ids, a->skip_special);
                                        std::fwrite(text.data(), 1, text.size(), stdout);  // exact bytes, no newline added
                                        if (!a->ids_file.empty()) return 0;
                                        std::fputc('\n', stdout);
                                        return 0;
                                      };
                                    }}};

}  // namespace
}  // namespace baleine::app
