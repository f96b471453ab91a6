#include "rl/agent_traces.h"

#include <fmt/format.h>

#include <random>

#include "agent/agent_loop.h"
#include "agent/builtin_tools.h"
#include "agent/retrieval.h"
#include "core/check.h"

namespace baleine::rl {

using nlohmann::json;

namespace {

uint64_t mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t hash_text(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return mix(h);
}

json tool_json(const agent::ToolFunction& f) {
  return {{"type", "function"},
          {"function", {{"name", f.name}, {"description", f.description}, {"parameters", f.parameters}, {"strict", f.strict}}}};
}

// The server's built-in tools, in the order an assistant lists them.
const agent::RegisteredTool& builtin(const std::string& name) {
  static const agent::RegisteredTool calc = agent::calculator_tool(), date = agent::datetime_tool();
  return name == "calculator" ? calc : date;
}

json call_message(const std::string& reasoning, const std::string& tool, const json& args) {
  return {{"role", "assistant"}, {"content", nullptr}, {"reasoning_content", reasoning},
          {"tool_calls", json::array({{{"id", "call_0"}, {"type", "function"},
                                       {"function", {{"name", tool}, {"arguments", args.dump()}}}}})}};
}

json tool_message(const agent::ToolResult& r) {
  // Exactly what the agent loop puts into the conversation (agent::agent_tool_message, 16 KiB cut).
  return {{"role", "tool"}, {"tool_call_id", "call_0"}, {"content", agent::agent_tool_message(r, agent::AgentOptions{}.max_result_bytes).content}};
}

json answer_message(const std::string& reasoning, const std::string& content) {
  return {{"role", "assistant"}, {"content", content}, {"reasoning_content", reasoning}};
}

std::string pick(std::mt19937_64& rng, const std::vector<std::string>& v) { return v[rng() % v.size()]; }

int64_t number_with_digits(std::mt19937_64& rng, int64_t digits) {
  int64_t lo = 1;
  for (int64_t i = 1; i < digits; ++i) lo *= 10;
  return lo + int64_t(rng() % uint64_t(lo * 9));
}

// A made-up word: no dictionary entry holds it.
std::string pseudo_word(std::mt19937_64& rng) {
  static const char* on[] = {"bl", "cr", "dr", "fl", "gr", "kl", "pr", "sn", "tr", "v", "z", "qu", "sk", "m", "n"};
  static const char* nu[] = {"a", "e", "i", "o", "u", "ai", "ou", "ee"};
  static const char* co[] = {"rv", "nd", "lt", "sk", "mb", "x", "z", "rn", "th", "p"};
  std::string w;
  const int syllables = 2 + int(rng() % 2);
  for (int s = 0; s < syllables; ++s) w += std::string(on[rng() % 15]) + nu[rng() % 8] + (s + 1 == syllables ? co[rng() % 10] : "");
  return w;
}

}  // namespace

AgentTraceOptions agent_trace_options_from_spec(const json& spec, const std::string& where) {
  AgentTraceOptions o;
  if (!spec.is_object()) return o;
  json facts = json::object();
  for (auto& [k, v] : spec.items()) {
    if (k == "name") continue;
    auto share = [&](double& d) {
      BALEINE_CHECK(v.is_number() && v.get<double>() >= 0, "{}: '{}' must be a non-negative number", where, k);
      d = v.get<double>();
    };
    if (k == "calculator") share(o.calculator);
    else if (k == "retrieval") share(o.retrieval);
    else if (k == "unanswerable") share(o.unanswerable);
    else if (k == "plain") share(o.plain);
    else if (k == "min_digits" || k == "max_digits" || k == "top_k") {
      BALEINE_CHECK(v.is_number_integer() && v.get<int64_t>() >= 1 && v.get<int64_t>() <= 15, "{}: '{}' must be an integer in [1, 15]", where, k);
      const int64_t n = v.get<int64_t>();
      if (k == "min_digits") o.min_digits = n;
      else if (k == "max_digits") o.max_digits = n;
      else o.top_k = int(n);
    } else if (k == "facts") facts["data"] = v;
    else if (k == "families" || k == "max_per_family") facts[k] = v;
    else BALEINE_FAIL("{}: unknown key '{}' for the agent traces (facts, calculator, retrieval, unanswerable, plain, "
                      "min_digits, max_digits, top_k, families, max_per_family)", where, k);
  }
  if (!facts.empty()) o.facts = fact_options_from_spec(facts, where);
  return o;
}

AgentTraces::AgentTraces(AgentTraceOptions options, uint64_t seed) : options_(std::move(options)), seed_(seed) {
  BALEINE_CHECK(options_.min_digits <= options_.max_digits, "agent traces: min_digits > max_digits");
  if (!options_.facts.data.empty()) facts_ = std::make_unique<FactSet>(options_.facts, seed);
}

AgentTraces::~AgentTraces() = default;

json AgentTraces::conversation(Split split, int64_t index) const {
  const uint64_t stream = mix(mix(seed_ * 2 + (split == Split::Test ? 1 : 0)) ^ uint64_t(index));
  double shares[4] = {options_.calculator, facts_ ? options_.retrieval : 0, facts_ ? options_.unanswerable : 0, options_.plain};
  double total = shares[0] + shares[1] + shares[2] + shares[3];
  BALEINE_CHECK(total > 0, "agent traces: every kind has share 0");
  double u = double(mix(stream) >> 11) / double(1ull << 53) * total;
  int kind = 0;
  while (kind < 3 && u >= shares[kind]) u -= shares[kind++];
  switch (kind) {
    case 0: return calculator(split, mix(stream + 1));
    case 1: return retrieval(split, mix(stream + 2), true);
    case 2: return retrieval(split, mix(stream + 3), false);
    default: return plain(mix(stream + 4));
  }
}

json AgentTraces::calculator(Split split, uint64_t stream) const {
  for (uint64_t attempt = 0;; ++attempt) {
    std::mt19937_64 rng(mix(stream + attempt));
    const char op = "*+-"[rng() % 3];
    int64_t a = number_with_digits(rng, options_.min_digits + int64_t(rng() % uint64_t(options_.max_digits - options_.min_digits + 1)));
    int64_t b = number_with_digits(rng, options_.min_digits + int64_t(rng() % uint64_t(options_.max_digits - options_.min_digits + 1)));
    if (op == '-' && a < b) std::swap(a, b);
    const std::string key = fmt::format("{}{}{}", a, op, b);
    if ((hash_text(key) % 10 == 0) != (split == Split::Test)) continue;  // 10% held out
    const std::string sym = op == '*' ? "×" : op == '+' ? "+" : "−";
    const std::string expr = fmt::format("{}{}{}", a, op, b);
    const bool word = rng() % 3 == 0;
    std::string question, answer_fmt;
    if (word) {
      if (op == '*') {
        question = pick(rng, {fmt::format("A warehouse has {} boxes and each box holds {} screws. How many screws are there in all?", a, b),
                              fmt::format("A printer prints {} pages a day for {} days. How many pages does it print?", a, b)});
        answer_fmt = "That makes {} in all.";
      } else if (op == '+') {
        question = pick(rng, {fmt::format("A library had {} books and received {} more. How many books does it have now?", a, b),
                              fmt::format("One city has {} inhabitants and another has {}. How many people live in the two cities together?", a, b)});
        answer_fmt = "The total is {}.";
      } else {
        question = pick(rng, {fmt::format("A reservoir held {} litres and {} litres were drained. How many litres are left?", a, b),
                              fmt::format("A shop had {} euros and spent {} euros. How much money is left?", a, b)});
        answer_fmt = "{} remain.";
      }
    } else {
      question = pick(rng, {fmt::format("What is {} {} {}?", a, sym, b), fmt::format("Compute {} {} {}.", a, sym, b),
                            fmt::format("Calculate {} {} {}, please.", a, op, b)});
    }
    const json args = {{"expression", expr}};
    const agent::ToolResult r = builtin("calculator").run(args);
    BALEINE_CHECK(!r.error && r.content.contains("result"), "agent traces: the calculator failed on {}", expr);
    const std::string result = r.content["result"].get<std::string>();
    const std::string think1 = fmt::format("The question needs {} {} {}. Exact arithmetic on numbers this large is easy to get "
                                           "wrong by hand, so I will use the calculator.", a, sym, b);
    const std::string think2 = fmt::format("The calculator returned {} for {}.", result, expr);
    const std::string content = word ? fmt::vformat(answer_fmt, fmt::make_format_args(result)) : fmt::format("{} {} {} = {}", a, sym, b, result);
    json tools = json::array({tool_json(builtin("calculator").definition)});
    if (rng() % 2) tools.push_back(tool_json(builtin("current_datetime").definition));
    json messages = json::array({{{"role", "user"}, {"content", question}}, call_message(think1, "calculator", args),
                                 tool_message(r), answer_message(think2, content)});
    return {{"kind", "calculator"}, {"messages", messages}, {"tools", tools}};
  }
}

json AgentTraces::retrieval(Split split, uint64_t stream, bool answerable) const {
  std::mt19937_64 rng(stream);
  Fact f;
  if (answerable) {
    f = facts_->fact(split, int64_t(rng() % (1ull << 40)));
  } else {  // a question about a word no entry holds
    const Fact& shape = facts_->fact(split, int64_t(rng() % (1ull << 40)));
    f.family = shape.family;
    std::string w = pseudo_word(rng);
    if (f.family == "acronym") {
      w.clear();
      for (int i = 0, n = 3 + int(rng() % 3); i < n; ++i) w += char('A' + rng() % 26);
    }
    f.subject = w;
    std::string q = shape.question;
    q.replace(q.find(shape.subject), shape.subject.size(), w);
    f.question = q;
  }
  // As /v1/responses registers it: a query that finds nothing falls back to the user's message.
  const agent::RegisteredTool search = agent::retrieval_tool(facts_->document_store(), options_.top_k, f.question);
  const json args = {{"query", f.subject}};
  const agent::ToolResult r = search.run(args);
  // The best-ranked passage that answers the question (a word's synonyms may come from any of its synsets).
  int rank = 0;
  std::string answer;
  const json& passages = r.content["passages"];
  for (size_t i = 0; i < passages.size() && rank == 0; ++i)
    for (const auto& [doc, a] : f.supports)
      if (answerable && passages[i]["document"] == doc) {
        rank = int(i) + 1;
        answer = a;
        break;
      }
  const std::string think1 = fmt::format("This is a question about \"{}\". I should look it up in the documents instead of guessing.", f.subject);
  std::string think2, content;
  if (rank > 0) {
    const std::string cite = fmt::format(" [{}]", rank);
    // The reasoning quotes the words of the passage that answer (a short copy the reply then repeats): the
    // answer is spelled as the passage writes it ("Nephridia"; grading ignores case), so it is a pure copy.
    const std::string plural = f.answer_as_written.empty() ? f.answer : f.answer_as_written;
    std::string evidence;
    if (f.family == "synonym") evidence = fmt::format(" It lists \"{}\".", answer);
    else if (f.family == "pos") evidence = fmt::format(" It marks it ({}).", f.answer);
    else if (f.family == "acronym") evidence = fmt::format(" It says \"{}\".", f.answer);
    else evidence = fmt::format(" It gives the plural \"{}\".", plural);
    think2 = fmt::format("Passage [{}] ({}) is the entry for \"{}\".{}", rank, passages[size_t(rank - 1)]["document"].get<std::string>(), f.subject, evidence);
    if (f.family == "synonym") content = fmt::format("A synonym of \"{}\" is \"{}\"{}.", f.subject, answer, cite);
    else if (f.family == "pos") content = fmt::format("\"{}\" is {} {}{}.", f.subject, f.answer == "adjective" || f.answer == "adverb" ? "an" : "a", f.answer, cite);
    else if (f.family == "acronym") content = fmt::format("{} stands for {}{}.", f.subject, f.answer, cite);
    else content = fmt::format("The plural of \"{}\" is \"{}\"{}.", f.subject, plural, cite);
  } else {
    think2 = passages.empty() ? fmt::format("The search found nothing about \"{}\".", f.subject)
                              : fmt::format("None of the passages is about \"{}\".", f.subject);
    content = pick(rng, {fmt::format("I don't know: the documents do not mention \"{}\".", f.subject),
                         fmt::format("I could not find \"{}\" in the documents, so I don't know.", f.subject)});
  }
  json tools = json::array();
  if (rng() % 2) tools.push_back(tool_json(builtin("calculator").definition));
  if (rng() % 3 == 0) tools.push_back(tool_json(builtin("current_datetime").definition));
  tools.push_back(tool_json(search.definition));
  json messages = json::array({{{"role", "user"}, {"content", f.question}}, call_message(think1, search.definition.name, args),
                               tool_message(r), answer_message(think2, content)});
  return {{"kind", rank > 0 ? "retrieval" : "unanswerable"}, {"messages", messages}, {"tools", tools}};
}

json AgentTraces::plain(uint64_t stream) const {
  std::mt19937_64 rng(stream);
  std::string q, think, a;
  switch (rng() % 4) {
    case 0:
      q = pick(rng, {"Hello!", "Hi there.", "Good morning!", "Hey, how are you?"});
      think = "A greeting; no tool is needed.";
      a = pick(rng, {"Hello! How can I help you today?", "Hi! What can I do for you?"});
      break;
    case 1:
      q = pick(rng, {"What can you do?", "Which tools do you have?", "How can you help me?"});
      think = "The user asks about my abilities; I can answer directly.";
      a = "I can answer questions, do exact arithmetic with the calculator, and search the documents you give me, "
          "citing the passages I use.";
      break;
    case 2:
      q = pick(rng, {"Thank you!", "Thanks, that helps.", "Great, thanks."});
      think = "The user thanks me; no tool is needed.";
      a = pick(rng, {"You're welcome!", "Glad I could help."});
      break;
    default: {
      const int x = 2 + int(rng() % 8), y = 2 + int(rng() % 8);
      const bool add = rng() % 2;
      q = fmt::format("What is {} {} {}?", x, add ? "+" : "×", y);
      think = fmt::format("{} {} {} is small enough to do directly: {}.", x, add ? "+" : "×", y, add ? x + y : x * y);
      a = fmt::format("{} {} {} = {}", x, add ? "+" : "×", y, add ? x + y : x * y);
    }
  }
  json tools = json::array({tool_json(builtin("calculator").definition)});
  if (rng() % 2) tools.push_back(tool_json(builtin("current_datetime").definition));
  json messages = json::array({{{"role", "user"}, {"content", q}}, answer_message(think, a)});
  return {{"kind", "plain"}, {"messages", messages}, {"tools", tools}};
}

}  // namespace baleine::rl
