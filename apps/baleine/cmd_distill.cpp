// baleine distill --config RECIPE.json [--resume]: logit distillation (forward KL / generalised JSD with
// temperature) of a student toward a teacher with the same vocabulary, on chat JSONL (assistant tokens).
// baleine distill --teacher DIR --suite SPEC --out data.jsonl [--problems N --k K]: sequence-level distillation
// data: teacher samples, rejection-sampled with the graders, as chat JSONL for `baleine sft`.
#include <fmt/format.h>

#include "apps/baleine/command.h"
#include "core/check.h"
#include "core/comm.h"
#include "rl/distill.h"
#include "rl/sft.h"
#include "train/checkpoint.h"

namespace baleine::app {
namespace {

struct DistillArgs {
  std::string config, teacher, suite = "arithmetic", format = "plain", out;
  bool resume = false;
  int64_t problems = 1000, offset = 0, k = 4, keep = 1, max_tokens = 96;
  float temperature = 0.8f, top_p = 1.0f;
  uint64_t seed = 1234;
};

int run_distill(const DistillArgs& a) {
  if (!a.config.empty()) {
    BALEINE_CHECK(a.teacher.empty(), "--config (logit distillation) and --teacher (sequence-level data) exclude each other");
    return rl::run_sft(rl::load_sft_recipe(a.config, /*distill=*/true), a.resume);
  }
  BALEINE_CHECK(!a.teacher.empty() && !a.out.empty(), "either --config RECIPE, or --teacher DIR with --out FILE.jsonl");
  BALEINE_CHECK(world().size() == 1, "sequence-level distillation (--teacher) runs in one process; under mpirun only "
                "logit distillation (--config) runs on several ranks");
  rl::Policy t = rl::load_policy(a.teacher, "--teacher");
  nlohmann::json spec = rl::suite_spec_from_arg(a.suite, "--suite");
  auto suite = rl::make_suite(spec, a.seed, "--suite");
  rl::RejectionConfig cfg;
  cfg.problems = a.problems;
  cfg.offset = a.offset;
  cfg.k = a.k;
  cfg.keep_per_problem = a.keep;
  cfg.sampling.temperature = a.temperature;
  cfg.sampling.top_p = a.top_p;
  cfg.sampling.seed = a.seed;
  cfg.format = rl::prompt_format_from_name(a.format);
  std::string lines;
  auto st = rl::rejection_sample(rl::local_batch_completer(*t.model, t.tokenizer, a.max_tokens), *suite, cfg, lines);
  train::write_file_atomic(a.out, lines);
  fmt::print("{}: {} problems, {} teacher samples, {} correct ({:.1f}%), {} kept, {} problems with a kept sample -> {}\n",
             suite->name(), st.problems, st.samples, st.correct, 100.0 * double(st.correct) / double(std::max<int64_t>(1, st.samples)),
             st.kept, st.problems_with_one, a.out);
  return 0;
}

CommandRegistration reg{{"distill", "Distillation: logit (same vocabulary, --config) or sequence-level data (--teacher)",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<DistillArgs>();
                           sub.add_option("--config", a->config, "Logit distillation recipe: the sft keys + teacher, beta, temperature");
                           sub.add_flag("--resume", a->resume, "Continue from the latest checkpoint (with --config)");
                           sub.add_option("--teacher", a->teacher, "Teacher model directory (sequence-level data)");
                           sub.add_option("--suite", a->suite, "Task suite name or JSON spec");
                           sub.add_option("--format", a->format, "How the teacher is prompted: plain, r1zero or chat");
                           sub.add_option("--problems", a->problems, "Training problems to sample")->check(CLI::PositiveNumber);
                           sub.add_option("--offset", a->offset, "First problem index")->check(CLI::NonNegativeNumber);
                           sub.add_option("--k", a->k, "Teacher samples per problem at most")->check(CLI::PositiveNumber);
                           sub.add_option("--keep", a->keep, "Correct samples kept per problem at most")->check(CLI::PositiveNumber);
                           sub.add_option("--max-tokens", a->max_tokens, "Tokens per teacher sample")->check(CLI::PositiveNumber);
                           sub.add_option("--temperature", a->temperature, "Teacher sampling temperature")->check(CLI::Range(0.0f, 10.0f));
                           sub.add_option("--top-p", a->top_p, "Nucleus mass")->check(CLI::Range(0.01f, 1.0f));
                           sub.add_option("--seed", a->seed, "Seed of the suite and the sampling");
                           sub.add_option("--out", a->out, "Output chat JSONL (sequence-level)");
                           return [a] { return run_distill(*a); };
                         }}};

}  // namespace
}  // namespace baleine::app
