// baleine train --config RECIPE.json [--resume]: train a DeepSeek-architecture model from scratch.
#include "apps/baleine/command.h"
#include "train/trainer.h"

namespace baleine::app {
namespace {

struct TrainArgs {
  std::string config;
  bool resume = false;
  int64_t debug_delay_ms = 0;
};

CommandRegistration reg{{"train", "Train a DeepSeek-architecture model from a JSON recipe (checkpoints, exact resume)",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<TrainArgs>();
                           sub.add_option("--config", a->config, "Recipe (JSON): model config, data, batch, schedule, steps")->required();
                           sub.add_flag("--resume", a->resume, "Continue from the latest checkpoint in the recipe's out directory");
                           sub.add_option("--debug-step-delay-ms", a->debug_delay_ms, "Sleep after each step (tests)")
                               ->check(CLI::Range(0, 60000))->group("");
                           return [a] {
                             train::TrainRecipe r = train::load_recipe(a->config);
                             return train::run_training(r, {a->resume, a->debug_delay_ms});
                           };
                         }}};

}  // namespace
}  // namespace baleine::app
