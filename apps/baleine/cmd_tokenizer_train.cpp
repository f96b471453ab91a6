// baleine tokenizer train --input PATHS --vocab-size N --out DIR: byte-level BPE in Hugging Face format.
#include <fmt/format.h>

#include "apps/baleine/command.h"
#include "tokenizer/tokenizer.h"

namespace baleine::app {
namespace {

struct TokTrainArgs {
  std::vector<std::string> inputs;
  std::string out;
  int64_t vocab_size = 4096, min_frequency = 2;
};

CommandRegistration reg{{"tokenizer", "Tokenizer tools: `baleine tokenizer train`",
                         [](CLI::App& sub) -> std::function<int()> {
                           sub.require_subcommand(1);
                           auto a = std::make_shared<TokTrainArgs>();
                           CLI::App* train = sub.add_subcommand("train", "Train a byte-level BPE tokenizer (DeepSeek-V3 pre-tokenizer)");
                           train->add_option("--input", a->inputs, "Text files or directories")->required();
                           train->add_option("--vocab-size", a->vocab_size, "Vocabulary size including special tokens")
                               ->check(CLI::Range(int64_t(300), int64_t(1) << 20));
                           train->add_option("--min-frequency", a->min_frequency, "Stop when the best pair is rarer")->check(CLI::PositiveNumber);
                           train->add_option("--out", a->out, "Output directory (tokenizer.json, tokenizer_config.json)")->required();
                           return [a] {
                             BpeTrainOptions o;
                             o.vocab_size = a->vocab_size;
                             o.min_frequency = a->min_frequency;
                             train_bpe_tokenizer(a->inputs, a->out, o);
                             Tokenizer t = Tokenizer::load(a->out);
                             fmt::print("wrote {}/tokenizer.json: {} tokens (BOS {}, EOS {})\n", a->out, t.vocab_size(), t.bos_id(), t.eos_id());
                             return 0;
                           };
                         }}};

}  // namespace
}  // namespace baleine::app
