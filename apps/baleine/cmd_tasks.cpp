// baleine tasks --suite SPEC --count N --out FILE.jsonl [--as text|chat] [--format plain|r1zero|chat]: problems of a
// task suite with worked solutions, as pretraining text ({"text": prompt + solution}) or as chat conversations
// for `baleine sft` ({"messages": [user, assistant]}). --suite agent [--facts DIR] --as chat: tool-use
// conversations (calculator, retrieval, plain) with their "tools", in the OpenAI chat shape.
#include <fmt/format.h>

#include <fstream>
#include <map>

#include "apps/baleine/command.h"
#include "core/check.h"
#include "rl/agent_traces.h"
#include "rl/tasks.h"
#include "train/checkpoint.h"

namespace baleine::app {
namespace {

struct TasksArgs {
  std::string suite = "arithmetic", split = "train", format = "plain", as = "text", out, facts;
  int64_t count = 1000, offset = 0;
  uint64_t seed = 1234;
};

// --suite agent: tool-use conversations (rl/agent_traces.h), chat only.
int run_agent_traces(const TasksArgs& a, const nlohmann::json& spec) {
  BALEINE_CHECK(a.as == "chat", "--suite agent writes chat conversations only (--as chat), not '{}'", a.as);
  rl::AgentTraceOptions o = rl::agent_trace_options_from_spec(spec, "--suite");
  if (!a.facts.empty()) o.facts.data = a.facts;
  rl::AgentTraces traces(o, a.seed);
  const rl::Split split = rl::split_from_name(a.split);
  std::string lines;
  std::map<std::string, int64_t> kinds;
  for (int64_t i = a.offset; i < a.offset + a.count; ++i) {
    nlohmann::json c = traces.conversation(split, i);
    ++kinds[c["kind"].get<std::string>()];
    lines += c.dump() + "\n";
  }
  train::write_file_atomic(a.out, lines);
  std::string summary;
  for (auto& [k, n] : kinds) summary += fmt::format("{}{} {}", summary.empty() ? "" : ", ", n, k);
  fmt::print("agent: {} conversations ({} split: {}) -> {}\n", a.count, a.split, summary, a.out);
  return 0;
}

int run_tasks(const TasksArgs& a) {
  nlohmann::json spec = rl::suite_spec_from_arg(a.suite, "--suite");
  if ((spec.is_string() && spec == "agent") || (spec.is_object() && spec.value("name", "") == "agent")) return run_agent_traces(a, spec);
  auto suite = rl::make_suite(spec, a.seed, "--suite");
  const rl::Split split = rl::split_from_name(a.split);
  const rl::PromptFormat f = rl::prompt_format_from_name(a.format);
  BALEINE_CHECK(a.as == "text" || a.as == "chat" || a.as == "raw", "--as is '{}' (text, chat or raw)", a.as);
  std::string lines;
  for (int64_t i = a.offset; i < a.offset + a.count; ++i) {
    rl::Problem p = suite->problem(split, i);
    if (a.as == "raw") {  // plain text, documents separated by a blank line (tokenizer training input)
      lines += rl::render_prompt(p, f) + rl::render_solution(p, f) + "\n\n";
    } else if (a.as == "text") {
      lines += nlohmann::json{{"text", rl::render_prompt(p, f) + rl::render_solution(p, f)}}.dump() + "\n";
    } else {
      nlohmann::json msgs = nlohmann::json::array();
      msgs.push_back({{"role", "user"}, {"content", rl::chat_user_message(p)}});
      msgs.push_back({{"role", "assistant"}, {"content", "<think>\n" + rl::render_solution(p, rl::PromptFormat::Chat)}});
      lines += nlohmann::json{{"messages", msgs}}.dump() + "\n";
    }
  }
  train::write_file_atomic(a.out, lines);
  fmt::print("{}: {} {} problems ({} split) -> {}\n", suite->name(), a.count, a.as, a.split, a.out);
  return 0;
}

CommandRegistration reg{{"tasks", "Write task-suite problems with worked solutions (pretraining text or chat SFT data)",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<TasksArgs>();
                           sub.add_option("--suite", a->suite, "arithmetic | countdown | word | agent, or a JSON spec");
                           sub.add_option("--split", a->split, "train (default) or test");
                           sub.add_option("--count", a->count, "Problems")->check(CLI::PositiveNumber);
                           sub.add_option("--offset", a->offset, "First problem index")->check(CLI::NonNegativeNumber);
                           sub.add_option("--format", a->format, "Prompt format of the text: plain, r1zero or chat");
                           sub.add_option("--as", a->as, "text ({\"text\": ...}), chat ({\"messages\": [...]}) or raw (plain text)");
                           sub.add_option("--seed", a->seed, "Seed of the suite");
                           sub.add_option("--facts", a->facts, "agent suite: the dictionary jsonl directory (corpus raw/debian) for retrieval traces");
                           sub.add_option("--out", a->out, "Output .jsonl")->required();
                           return [a] { return run_tasks(*a); };
                         }}};

}  // namespace
}  // namespace baleine::app
