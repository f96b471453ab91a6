// baleine train --config RECIPE.json [--resume] [--zero 1]: train a model from scratch, in one process or on
// several under mpirun (data parallel; ZeRO-1 with --zero 1).
#include "apps/baleine/command.h"
#include "train/trainer.h"

namespace baleine::app {
namespace {

struct TrainArgs {
  std::string config;
  bool resume = false;
  int64_t debug_delay_ms = 0;
  int zero = 0;
};

CommandRegistration reg{{"train", "Train a DeepSeek-architecture model from a JSON recipe (checkpoints, exact resume)",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<TrainArgs>();
                           sub.add_option("--config", a->config, "Recipe (JSON): model config, data, batch, schedule, steps")->required();
                           sub.add_flag("--resume", a->resume, "Continue from the latest checkpoint in the recipe's out directory");
                           sub.add_option("--zero", a->zero, "Under mpirun: 1 shards the optimizer moments across ranks (ZeRO-1); 0 keeps a full copy on each")
                               ->check(CLI::Range(0, 1));
                           sub.add_option("--debug-step-delay-ms", a->debug_delay_ms, "Sleep after each step (tests)")
                               ->check(CLI::Range(0, 60000))->group("");
                           return [a] {
                             train::TrainRecipe r = train::load_recipe(a->config);
                             return train::run_training(r, {a->resume, a->debug_delay_ms, a->zero == 1});
                           };
                         }}};

}  // namespace
}  // namespace baleine::app
