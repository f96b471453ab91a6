// baleine grpo --config RECIPE.json [--resume] [--zero 1] (also under mpirun): GRPO with rule rewards on a verifiable task suite.
#include "apps/baleine/command.h"
#include "rl/grpo.h"

namespace baleine::app {
namespace {

CommandRegistration reg{{"grpo", "Reinforcement learning (GRPO, R1-Zero style) on a verifiable task suite",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto config = std::make_shared<std::string>();
                           auto resume = std::make_shared<bool>(false);
                           auto zero = std::make_shared<int>(0);
                           sub.add_option("--config", *config, "Recipe (JSON): model, suite, group_size, beta, steps, ...")->required();
                           sub.add_flag("--resume", *resume, "Continue from the latest checkpoint in the recipe's out directory");
                           sub.add_option("--zero", *zero, "Under mpirun: 1 shards the optimizer moments across ranks (ZeRO-1)")
                               ->check(CLI::Range(0, 1));
                           return [config, resume, zero] {
                             return rl::run_grpo(rl::load_grpo_recipe(*config), *resume, *zero == 1);
                           };
                         }}};

}  // namespace
}  // namespace baleine::app
