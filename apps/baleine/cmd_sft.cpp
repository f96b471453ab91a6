// baleine sft --config RECIPE.json [--resume]: supervised fine-tuning on chat JSONL (loss on assistant tokens).
#include "apps/baleine/command.h"
#include "rl/sft.h"

namespace baleine::app {
namespace {

CommandRegistration reg{{"sft", "Fine-tune on chat-formatted JSONL, loss on assistant tokens only, packed samples",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto config = std::make_shared<std::string>();
                           auto resume = std::make_shared<bool>(false);
                           sub.add_option("--config", *config, "Recipe (JSON): model, data, seq_len, batch_size, steps, lr")->required();
                           sub.add_flag("--resume", *resume, "Continue from the latest checkpoint in the recipe's out directory");
                           return [config, resume] { return rl::run_sft(rl::load_sft_recipe(*config), *resume); };
                         }}};

}  // namespace
}  // namespace baleine::app
