// baleine eval --model DIR --suite arithmetic [--suite countdown ...] [--k 8 --temperature 0.6]: pass@1, pass@k,
// maj@k on the held-out split of the task suites; a table on stdout, a JSON report with --out.
// --suite facts --facts DIR [--retrieval [--retrieval-mode agent|inject|rag]]: the dictionary questions graded
// correct / incorrect / not attempted, retrieval off and on, and the ratio of the incorrect rates.
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

#include "apps/baleine/command.h"
#include "agent/constraint.h"
#include "core/check.h"
#include "rl/endpoint.h"
#include "rl/eval.h"
#include "rl/facts_eval.h"
#include "train/checkpoint.h"

namespace baleine::app {
namespace {

struct EvalArgs {
  std::string model, endpoint, endpoint_model = "default", split = "test", format = "plain", out, samples_out;
  std::string facts, retrieval_mode = "agent", chat_format = "deepseek-r1";
  bool grounded_quotes = false;
  bool quote_search = false;
  bool retrieval = false;
  int concurrency = 4;
  std::vector<std::string> suites;
  int64_t problems = 100, k = 1, max_tokens = 96;
  float temperature = 0.0f, top_p = 1.0f;
  uint64_t seed = 1234;
};

bool is_facts_spec(const nlohmann::json& spec) {
  return (spec.is_string() && spec == "facts") || (spec.is_object() && spec.value("name", "") == "facts");
}

struct FactsRun {
  nlohmann::json report;
  std::vector<rl::FactsOutcomes> outcomes;  // off, then on (with --retrieval)
};

// --suite facts: the dictionary questions through the agent loop of the local model (or the endpoint's chat
// completions / responses with an assistant holding the entries), retrieval off and (with --retrieval) on.
FactsRun run_facts(const EvalArgs& a, const nlohmann::json& spec, nlohmann::json& samples) {
  rl::FactOptions fo = rl::fact_options_from_spec(spec, "--suite");
  if (!a.facts.empty()) fo.data = a.facts;
  BALEINE_CHECK(!fo.data.empty(), "--suite facts needs the dictionary data: --facts DIR (the corpus raw/debian directory)");
  rl::FactSet facts(fo, a.seed);
  std::shared_ptr<Tokenizer> tok;
  std::unique_ptr<Engine> engine;
  std::shared_ptr<const agent::VocabIndex> vocab;
  if (!a.model.empty()) {
    tok = std::make_shared<Tokenizer>(Tokenizer::load(a.model));
    std::shared_ptr<CausalLM> model = load_model(a.model);
    EngineOptions eo;
    eo.max_batch = std::max(1, a.concurrency);
    engine = std::make_unique<Engine>(model, tok, eo);
    vocab = agent::VocabIndex::build(*tok);
  }
  rl::EndpointConfig ec;
  ec.base_url = a.endpoint;
  ec.model = a.endpoint_model;
  ec.max_tokens = a.max_tokens;
  if (const char* key = std::getenv("OPENAI_API_KEY")) ec.api_key = key;
  rl::FactsEvalConfig cfg;
  cfg.split = rl::split_from_name(a.split);
  cfg.problems = std::min<int64_t>(a.problems, int64_t(facts.all(cfg.split).size()));
  cfg.max_new_tokens = a.max_tokens;
  cfg.sampling.temperature = a.temperature;
  cfg.sampling.top_p = a.top_p;
  cfg.sampling.seed = a.seed;
  cfg.format = chat_format_from_name(a.chat_format);
  cfg.concurrency = a.concurrency;
  cfg.grounded_quotes = a.grounded_quotes;
  cfg.quote_search = a.quote_search;
  FactsRun run;
  std::vector<rl::GroundingMode> modes = {rl::GroundingMode::Off};
  if (a.retrieval) modes.push_back(rl::grounding_mode_from_name(a.retrieval_mode));
  for (auto mode : modes) {
    std::vector<rl::FactSample> details;
    run.outcomes.push_back(engine ? rl::evaluate_facts(*engine, vocab, facts, mode, cfg, &details)
                                  : rl::evaluate_facts_endpoint(ec, facts, mode, cfg, &details));
    for (const auto& d : details)
      samples.push_back({{"suite", "facts"}, {"mode", rl::grounding_mode_name(mode)}, {"family", d.fact->family},
                         {"question", d.fact->question}, {"reference", d.fact->answer}, {"aliases", d.fact->aliases},
                         {"reasoning", d.reasoning}, {"content", d.content}, {"outcome", rl::fact_outcome_name(d.outcome)},
                         {"searched", d.searched}, {"query", d.query}, {"answer_rank", d.answer_rank}, {"steps", d.steps},
                         {"quote_searches", d.quote_searches}, {"quote_expansions", d.quote_expansions}});
  }
  const rl::FactsOutcomes& off = run.outcomes[0];
  const double n = double(off.problems);
  run.report = {{"suite", "facts"}, {"spec", spec}, {"problems", off.problems}, {"chat_format", a.chat_format},
                {"grounded_quotes", a.grounded_quotes},
                {"quote_search", a.quote_search},
                {"documents", facts.documents()},
                {"questions", {{"train", facts.all(rl::Split::Train).size()}, {"test", facts.all(rl::Split::Test).size()}}}, {"correct", double(off.correct) / n}, {"incorrect", double(off.incorrect) / n},
                {"not_attempted", double(off.not_attempted) / n}, {"off", rl::facts_outcomes_json(off)}};
  if (run.outcomes.size() > 1) {
    nlohmann::json g = rl::grounding_report_json(off, run.outcomes[1]);
    run.report["on"] = g["on"];
    run.report["incorrect_rate_ratio"] = g["incorrect_rate_ratio"];
  }
  if (engine) engine->shutdown(false);
  return run;
}

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
  std::vector<std::string> suites = a.suites.empty() ? std::vector<std::string>{"arithmetic"} : a.suites;
  std::vector<nlohmann::json> specs;
  bool task_suites = false;
  for (const std::string& s : suites) {
    specs.push_back(rl::suite_spec_from_arg(s, "--suite"));
    task_suites = task_suites || !is_facts_spec(specs.back());
  }
  BALEINE_CHECK(!a.retrieval || !task_suites, "--retrieval applies to --suite facts only");
  std::optional<rl::Policy> pol;
  rl::BatchCompleteFn complete;
  if (!task_suites) {
    // facts only: the engine is built per suite
  } else if (!a.model.empty()) {
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
  std::vector<FactsRun> facts_runs;
  for (const nlohmann::json& spec : specs) {
    if (is_facts_spec(spec)) {
      facts_runs.push_back(run_facts(a, spec, samples));
      report["suites"].push_back(facts_runs.back().report);
      continue;
    }
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
  if (!reps.empty()) {
    fmt::print("| suite | problems | k | pass@1 | pass@{} | maj@{} | format | correct | incorrect | not attempted | tokens |\n", a.k, a.k);
    fmt::print("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const auto& r : reps)
      fmt::print("| {} | {} | {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.1f} |\n", r.suite, r.problems,
                 r.k, r.pass1, r.passk, r.majk, r.format_rate, r.correct, r.incorrect, r.not_attempted, r.mean_tokens);
  }
  if (!facts_runs.empty()) {
    if (!reps.empty()) fmt::print("\n");
    fmt::print("| suite | retrieval | problems | correct | incorrect | not attempted | searched | tokens |\n");
    fmt::print("|---|---|---|---|---|---|---|---|\n");
    for (const auto& fr : facts_runs) {
      for (const auto& o : fr.outcomes)
        fmt::print("| facts | {} | {} | {} ({:.3f}) | {} ({:.3f}) | {} ({:.3f}) | {} | {:.1f} |\n", rl::grounding_mode_name(o.mode),
                   o.problems, o.correct, double(o.correct) / double(o.problems), o.incorrect, double(o.incorrect) / double(o.problems),
                   o.not_attempted, double(o.not_attempted) / double(o.problems), o.searched, o.mean_tokens);
      if (fr.report.contains("incorrect_rate_ratio"))
        fmt::print("incorrect rate with retrieval / without: {}\n",
                   fr.report["incorrect_rate_ratio"].is_null() ? std::string("n/a (no incorrect answers without retrieval)")
                                                               : fmt::format("{:.3f}", fr.report["incorrect_rate_ratio"].get<double>()));
    }
  }
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
                           sub.add_option("--suite", a->suites, "arithmetic | countdown | word | facts, or a JSON spec such as "
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
                           sub.add_option("--facts", a->facts, "--suite facts: the dictionary jsonl directory (corpus raw/debian)");
                           sub.add_flag("--retrieval", a->retrieval, "--suite facts: also answer with retrieval over the "
                                        "dictionary entries (search_documents in the agent loop) and compare");
                           sub.add_option("--retrieval-mode", a->retrieval_mode, "agent (the model calls the tool), inject "
                                          "(the search call for the question's key word and its result are given as the "
                                          "first turn) or rag (the same, searching the question verbatim)");
                           sub.add_option("--chat-format", a->chat_format, "--suite facts: chat template (deepseek-r1, deepseek-v3)");
                           sub.add_flag("--grounded-quotes", a->grounded_quotes, "--suite facts: quoted spans of answers after a "
                                        "search must copy the question or the passages (as serve --grounded-quotes)");
                           sub.add_flag("--quote-search", a->quote_search, "--suite facts: grounded quotes, each chosen "
                                        "whole: the source span the model rates most likely (as serve --quote-search)");
                           sub.add_option("--concurrency", a->concurrency, "--suite facts: questions in flight")->check(CLI::Range(1, 64));
                           return [a] { return run_eval(*a); };
                         }}};

}  // namespace
}  // namespace baleine::app
