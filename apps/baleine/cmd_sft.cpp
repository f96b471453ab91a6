// baleine sft --config RECIPE.json [--resume] [--zero 1] (also under mpirun): supervised fine-tuning on chat JSONL (loss on assistant tokens).
#include "apps/baleine/command.h"
#include "rl/sft.h"

namespace baleine::app {
namespace {

CommandRegistration reg{{"sft", "Fine-tune on chat-formatted JSONL, loss on assistant tokens only, packed samples",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto config = std::make_shared<std::string>();
                           auto resume = std::make_shared<bool>(false);
                           auto zero = std::make_shared<int>(0);
                           sub.add_option("--config", *config, "Recipe (JSON): model, data, seq_len, batch_size, steps, lr")->required();
                           sub.add_flag("--resume", *resume, "Continue from the latest checkpoint in the recipe's out directory");
                           sub.add_option("--zero", *zero, "Under mpirun: 1 shards the optimizer moments across ranks (ZeRO-1)")
                               ->check(CLI::Range(0, 1));
                           return [config, resume, zero] {
                             return rl::run_sft(rl::load_sft_recipe(*config), *resume, *zero == 1);
                           };
                         }}};

}  // namespace
}  // namespace baleine::app
