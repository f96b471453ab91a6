// baleine eval --model DIR --suite arithmetic [--suite countdown ...] [--k 8 --temperature 0.6]: pass@1, pass@k,
// maj@k on the held-out split of the task suites; a table on stdout, a JSON report with --out.
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

#include "apps/baleine/command.h"
#include "core/check.h"
#include "rl/endpoint.h"
#include "rl/eval.h"
#include "train/checkpoint.h"

namespace baleine::app {
namespace {

struct EvalArgs {
  std::string model, endpoint, endpoint_model = "default", split = "test", format = "plain", out, samples_out;
  std::vector<std::string> suites;
  int64_t problems = 100, k = 1, max_tokens = 96;
  float temperature = 0.0f, top_p = 1.0f;
  uint64_t seed = 1234;
};

int run_eval(const EvalArgs& a) {
  BALEINE_CHECK(a.model.empty() != a.endpoint.empty(), "give either --model DIR or --endpoint URL");
  rl::EvalConfig cfg;
  cfg.split = rl::split_from_name(a.split);
  cfg.problems = a.problems;
  cfg.k = a.k;
  cfg.max_new_tokens = a.max_tokens;
  cfg.sampling.temperature = a.temperature;
  cfg.sampling.top_p = a.top_p;
  cfg.sampling.seed = a.seed;
  cfg.format = rl::prompt_format_from_name(a.format);
  BALEINE_CHECK(a.k == 1 || a.temperature > 0, "--k {} with --temperature 0 gives {} identical greedy samples; set a temperature",
                a.k, a.k);
  std::optional<rl::Policy> pol;
  rl::BatchCompleteFn complete;
  if (!a.model.empty()) {
    pol = rl::load_policy(a.model, "--model");
    complete = rl::local_batch_completer(*pol->model, pol->tokenizer, a.max_tokens);
  } else {
    rl::EndpointConfig ec;
    ec.base_url = a.endpoint;
    ec.model = a.endpoint_model;
    ec.max_tokens = a.max_tokens;
    if (const char* key = std::getenv("OPENAI_API_KEY")) ec.api_key = key;
    complete = rl::one_at_a_time(rl::endpoint_completer(ec, cfg.format));
  }
  nlohmann::json report = {{"model", a.model.empty() ? a.endpoint + " " + a.endpoint_model : a.model}, {"split", a.split}, {"format", a.format}, {"k", a.k},
                           {"temperature", a.temperature}, {"top_p", a.top_p}, {"max_tokens", a.max_tokens},
                           {"suites", nlohmann::json::array()}};
  std::vector<rl::SuiteReport> reps;
  nlohmann::json samples = nlohmann::json::array();
  for (const std::string& s : a.suites.empty() ? std::vector<std::string>{"arithmetic"} : a.suites) {
    nlohmann::json spec = s.find('{') != std::string::npos ? nlohmann::json::parse(s) : nlohmann::json(s);
    auto suite = rl::make_suite(spec, a.seed, "--suite");
    std::vector<rl::ProblemResult> details;
    reps.push_back(rl::evaluate_suite(complete, *suite, cfg, &details));
    nlohmann::json r = rl::report_json(reps.back());
    r["spec"] = spec;
    report["suites"].push_back(r);
    for (const auto& d : details)
      for (const auto& smp : d.samples)
        samples.push_back({{"suite", suite->name()}, {"question", d.problem.question}, {"reference", d.problem.answer},
                           {"completion", smp.completion}, {"correct", smp.score.grade.correct},
                           {"attempted", smp.score.grade.attempted}, {"formatted", smp.score.formatted}});
  }
  fmt::print("| suite | problems | k | pass@1 | pass@{} | maj@{} | format | correct | incorrect | not attempted | tokens |\n", a.k, a.k);
  fmt::print("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : reps)
    fmt::print("| {} | {} | {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.1f} |\n", r.suite, r.problems,
               r.k, r.pass1, r.passk, r.majk, r.format_rate, r.correct, r.incorrect, r.not_attempted, r.mean_tokens);
  if (!a.out.empty()) train::write_file_atomic(a.out, report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  if (!a.samples_out.empty()) {
    std::string lines;
    for (const auto& s : samples) lines += rl::json_line(s);
    train::write_file_atomic(a.samples_out, lines);
  }
  return 0;
}

CommandRegistration reg{{"eval", "pass@1 / pass@k / maj@k of a model on the held-out task suites",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<EvalArgs>();
                           sub.add_option("--model", a->model, "Model directory (config.json, safetensors, tokenizer.json)");
                           sub.add_option("--endpoint", a->endpoint, "OpenAI-compatible base URL instead of a local model, "
                                          "e.g. http://127.0.0.1:8080/v1 (key from $OPENAI_API_KEY)");
                           sub.add_option("--endpoint-model", a->endpoint_model, "The request's \"model\" field");
                           sub.add_option("--suite", a->suites, "arithmetic | countdown | word, or a JSON spec such as "
                                          "'{\"name\":\"arithmetic\",\"max_digits\":2}' (repeatable)");
                           sub.add_option("--split", a->split, "test (held out, default) or train");
                           sub.add_option("--problems", a->problems, "Problems per suite")->check(CLI::PositiveNumber);
                           sub.add_option("--k", a->k, "Samples per problem")->check(CLI::PositiveNumber);
                           sub.add_option("--max-tokens", a->max_tokens, "Tokens per completion at most")->check(CLI::PositiveNumber);
                           sub.add_option("--temperature", a->temperature, "0 = greedy")->check(CLI::Range(0.0f, 10.0f));
                           sub.add_option("--top-p", a->top_p, "Nucleus mass")->check(CLI::Range(0.01f, 1.0f));
                           sub.add_option("--format", a->format, "Prompt format: plain, r1zero or chat");
                           sub.add_option("--seed", a->seed, "Seed of the suites and the sampling");
                           sub.add_option("--out", a->out, "Write the JSON report here");
                           sub.add_option("--samples-out", a->samples_out, "Write every completion and its grade (JSONL)");
                           return [a] { return run_eval(*a); };
                         }}};

}  // namespace
}  // namespace baleine::app
