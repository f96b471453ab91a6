// baleine grpo --config RECIPE.json [--resume]: GRPO with rule rewards on a verifiable task suite.
#include "apps/baleine/command.h"
#include "rl/grpo.h"

namespace baleine::app {
namespace {

CommandRegistration reg{{"grpo", "Reinforcement learning (GRPO, R1-Zero style) on a verifiable task suite",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto config = std::make_shared<std::string>();
                           auto resume = std::make_shared<bool>(false);
                           sub.add_option("--config", *config, "Recipe (JSON): model, suite, group_size, beta, steps, ...")->required();
                           sub.add_flag("--resume", *resume, "Continue from the latest checkpoint in the recipe's out directory");
                           return [config, resume] { return rl::run_grpo(rl::load_grpo_recipe(*config), *resume); };
                         }}};

}  // namespace
}  // namespace baleine::app
