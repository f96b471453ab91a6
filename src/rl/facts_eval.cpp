#include "rl/facts_eval.h"

#include <httplib.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "agent/agent_loop.h"
#include "agent/builtin_tools.h"
#include "core/check.h"
#include "rl/endpoint.h"

namespace baleine::rl {

using nlohmann::json;

const char* grounding_mode_name(GroundingMode m) {
  switch (m) {
    case GroundingMode::Off: return "off";
    case GroundingMode::Agent: return "agent";
    case GroundingMode::Inject: return "inject";
    case GroundingMode::Rag: return "rag";
  }
  return "?";
}

GroundingMode grounding_mode_from_name(const std::string& n) {
  if (n == "off") return GroundingMode::Off;
  if (n == "agent") return GroundingMode::Agent;
  if (n == "inject") return GroundingMode::Inject;
  if (n == "rag") return GroundingMode::Rag;
  BALEINE_FAIL("unknown retrieval mode '{}' (off, agent, inject, rag)", n);
}

static FactsOutcomes tally(GroundingMode mode, std::vector<FactSample> samples, std::vector<FactSample>* details);

namespace {
// Inject and Rag hand the search result over as the first turn; the model does not choose to search.
bool passages_given(GroundingMode m) { return m == GroundingMode::Inject || m == GroundingMode::Rag; }

// The query a search ran and the rank of the first passage from an entry that answers the question (0: none).
void note_search(FactSample& s, const json& result) {
  s.query = result.value("query", "");
  s.answer_rank = 0;
  if (!result.contains("passages") || !result["passages"].is_array()) return;
  for (size_t k = 0; k < result["passages"].size() && s.answer_rank == 0; ++k)
    for (const auto& [doc, answer] : s.fact->supports)
      if (result["passages"][k].value("document", "") == doc) s.answer_rank = int(k) + 1;
}
}  // namespace

FactsOutcomes evaluate_facts(Engine& engine, std::shared_ptr<const agent::VocabIndex> vocab, const FactSet& facts,
                             GroundingMode mode, const FactsEvalConfig& cfg, std::vector<FactSample>* details) {
  BALEINE_CHECK(cfg.problems >= 1, "facts eval needs problems >= 1");
  BALEINE_CHECK(cfg.concurrency >= 1 && cfg.concurrency <= 64, "facts eval: concurrency must be 1..64");
  const Tokenizer& tok = engine.tokenizer();
  if (mode != GroundingMode::Off)
    BALEINE_CHECK(tok.token_id("<｜tool▁calls▁begin｜>").has_value() && tok.token_id("<｜tool▁outputs▁begin｜>").has_value(),
                  "facts eval with retrieval: the model's tokenizer has no DeepSeek tool-call markers");
  const auto store = mode == GroundingMode::Off ? nullptr : facts.document_store();
  agent::AgentOptions ao;
  ao.format = cfg.format;
  ao.params.max_tokens = cfg.max_new_tokens;
  ao.params.sampling = cfg.sampling;
  ao.max_steps = mode == GroundingMode::Off ? 1 : cfg.max_steps;
  ao.grounded_quotes = cfg.grounded_quotes;
  ao.quote_search = cfg.quote_search;
  for (const char* t : {"<｜User｜>", "<|im_end|>", "<|eot_id|>"})  // as the server stops
    if (auto id = tok.token_id(t)) ao.params.stop_tokens.push_back(*id);

  std::vector<FactSample> samples(size_t(cfg.problems));
  std::atomic<int64_t> next{0};
  std::mutex error_mu;
  std::string error;
  auto worker = [&] {
    for (int64_t i; (i = next.fetch_add(1)) < cfg.problems;) {
      FactSample& s = samples[size_t(i)];
      s.fact = &facts.fact(cfg.split, i);
      // The search tool as /v1/responses registers it: a query that finds nothing falls back to the question.
      agent::ToolRegistry registry;
      if (store) registry.add(agent::retrieval_tool(store, cfg.top_k, s.fact->question));
      agent::AgentLoop loop(engine, vocab, registry, ao);
      std::vector<ChatMessage> conv(1);
      conv[0].role = "user";
      conv[0].content = s.fact->question;
      if (passages_given(mode)) {
        const json query = {{"query", mode == GroundingMode::Inject ? s.fact->subject : s.fact->question}};
        ToolCall call;
        call.id = "call_0";
        call.name = "search_documents";
        call.arguments = query.dump();
        agent::AssistantTurn t;
        t.tool_calls = {call};
        conv.push_back(agent::agent_history_message(t));
        const agent::ToolResult found = registry.find("search_documents")->run(query);
        note_search(s, found.content);
        conv.push_back(agent::agent_tool_message(found, ao.max_result_bytes));
      }
      try {
        agent::AgentResult r = loop.run(conv, [&](const agent::AgentEvent& e) {
          if (e.kind != agent::AgentEventKind::ToolResult) return;
          s.searched = true;
          note_search(s, e.result);
        });
        s.searched = s.searched || passages_given(mode);
        s.reasoning = r.reasoning;
        s.content = r.content;
        s.steps = r.steps;
        s.tokens = r.usage.completion_tokens;
        s.quote_searches = r.quote_searches;
        s.quote_expansions = r.quote_expansions;
        s.outcome = grade_fact(*s.fact, r.content);
      } catch (const std::exception& e) {
        std::lock_guard lock(error_mu);
        if (error.empty()) error = e.what();
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < cfg.concurrency; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  BALEINE_CHECK(error.empty(), "facts eval: {}", error);

  return tally(mode, std::move(samples), details);
}

static FactsOutcomes tally(GroundingMode mode, std::vector<FactSample> samples, std::vector<FactSample>* details) {
  FactsOutcomes o;
  o.mode = mode;
  o.problems = int64_t(samples.size());
  for (const auto& s : samples) {
    const int k = s.outcome == FactOutcome::Correct ? 0 : s.outcome == FactOutcome::Incorrect ? 1 : 2;
    (k == 0 ? o.correct : k == 1 ? o.incorrect : o.not_attempted) += 1;
    o.by_family[s.fact->family][size_t(k)] += 1;
    o.searched += s.searched;
    o.mean_tokens += double(s.tokens);
  }
  o.mean_tokens /= double(o.problems);
  if (details) *details = std::move(samples);
  return o;
}

namespace {

// One JSON request to the endpoint; errors name the path and the status.
class Http {
 public:
  explicit Http(const EndpointConfig& cfg) : cfg_(cfg) {
    const std::string& url = cfg.base_url;
    const size_t scheme = url.find("://");
    BALEINE_CHECK(scheme != std::string::npos, "--endpoint '{}': expected http://host[:port]/path", url);
    const size_t slash = url.find('/', scheme + 3);
    host_ = url.substr(0, slash);
    prefix_ = slash == std::string::npos ? "" : url.substr(slash);
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
  }
  json call(const std::string& method, const std::string& path, const json& body = json()) const {
    httplib::Client cli(host_);
    cli.set_read_timeout(std::chrono::milliseconds(int64_t(cfg_.timeout_s * 1000)));
    httplib::Headers headers;
    if (!cfg_.api_key.empty()) headers.emplace("Authorization", "Bearer " + cfg_.api_key);
    const std::string full = prefix_ + path;
    httplib::Result res = method == "DELETE" ? cli.Delete(full, headers) : cli.Post(full, headers, body.dump(), "application/json");
    BALEINE_CHECK(res, "{}{}: request failed ({})", host_, full, httplib::to_string(res.error()));
    BALEINE_CHECK(res->status == 200, "{}{}: HTTP {}: {}", host_, full, res->status, res->body.substr(0, 200));
    json j = json::parse(res->body, nullptr, false);
    BALEINE_CHECK(!j.is_discarded(), "{}{}: the reply is not JSON", host_, full);
    return j;
  }

 private:
  const EndpointConfig& cfg_;
  std::string host_, prefix_;
};

}  // namespace

FactsOutcomes evaluate_facts_endpoint(const EndpointConfig& ec, const FactSet& facts, GroundingMode mode,
                                      const FactsEvalConfig& cfg, std::vector<FactSample>* details) {
  BALEINE_CHECK(cfg.problems >= 1, "facts eval needs problems >= 1");
  BALEINE_CHECK(!passages_given(mode), "--retrieval-mode {} needs a local --model (an "
                "endpoint runs its own agent loop)", grounding_mode_name(mode));
  const Http http(ec);
  std::string assistant;
  if (mode == GroundingMode::Agent) {
    assistant = http.call("POST", "/assistants", {{"name", "baleine facts eval"}, {"model", ec.model},
                                                  {"tools", json::array({{{"type", "file_search"}}})}})
                    .at("id")
                    .get<std::string>();
    for (const auto& [name, text] : facts.document_texts())
      http.call("POST", "/assistants/" + assistant + "/documents", {{"name", name}, {"text", text}});
  }
  std::vector<FactSample> samples(size_t(cfg.problems));
  std::string error;
  try {
    for (int64_t i = 0; i < cfg.problems; ++i) {
      FactSample& s = samples[size_t(i)];
      s.fact = &facts.fact(cfg.split, i);
      const uint64_t seed = (cfg.sampling.seed ^ uint64_t(i) * 0x9e3779b97f4a7c15ull) & 0x7fffffff;
      if (mode == GroundingMode::Off) {
        const json r = http.call("POST", "/chat/completions",
                                 {{"model", ec.model}, {"max_tokens", cfg.max_new_tokens}, {"temperature", cfg.sampling.temperature},
                                  {"top_p", cfg.sampling.top_p}, {"seed", seed},
                                  {"messages", json::array({{{"role", "user"}, {"content", s.fact->question}}})}});
        BALEINE_CHECK(r.contains("choices") && r["choices"].is_array() && !r["choices"].empty(), "/chat/completions: no choices");
        const json& m = r["choices"][0].at("message");
        s.content = m.value("content", json()).is_string() ? m["content"].get<std::string>() : "";
        if (m.contains("reasoning_content") && m["reasoning_content"].is_string()) s.reasoning = m["reasoning_content"];
        s.steps = 1;
        if (r.contains("usage") && r["usage"].is_object()) s.tokens = r["usage"].value("completion_tokens", int64_t(0));
      } else {
        json body = {{"assistant_id", assistant}, {"input", s.fact->question}, {"max_output_tokens", cfg.max_new_tokens},
                     {"temperature", cfg.sampling.temperature}, {"top_p", cfg.sampling.top_p}, {"max_steps", cfg.max_steps}};
        // baleine extensions, sent only when asked for (another server may refuse unknown fields)
        if (cfg.grounded_quotes || cfg.quote_search) body["grounded_quotes"] = true;
        if (cfg.quote_search) body["quote_search"] = true;
        const json r = http.call("POST", "/responses", body);
        s.content = r.value("output_text", "");
        s.steps = r.value("agent_steps", 0);
        for (const auto& item : r.value("output", json::array()))
          s.searched = s.searched || (item.value("type", "") == "function_call" && item.value("name", "") == "search_documents");
        if (r.contains("usage") && r["usage"].is_object()) s.tokens = r["usage"].value("output_tokens", int64_t(0));
      }
      s.outcome = grade_fact(*s.fact, s.content);
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!assistant.empty()) {
    try {
      http.call("DELETE", "/assistants/" + assistant);
    } catch (const std::exception&) {  // the eval's result matters more than the clean-up
    }
  }
  BALEINE_CHECK(error.empty(), "facts eval: {}", error);
  return tally(mode, std::move(samples), details);
}

json facts_outcomes_json(const FactsOutcomes& o) {
  const double n = double(std::max<int64_t>(o.problems, 1));
  json fam = json::object();
  for (const auto& [f, c] : o.by_family) fam[f] = {{"correct", c[0]}, {"incorrect", c[1]}, {"not_attempted", c[2]}};
  return {{"mode", grounding_mode_name(o.mode)}, {"problems", o.problems}, {"correct", o.correct}, {"incorrect", o.incorrect},
          {"not_attempted", o.not_attempted}, {"correct_rate", double(o.correct) / n}, {"incorrect_rate", double(o.incorrect) / n},
          {"not_attempted_rate", double(o.not_attempted) / n}, {"searched", o.searched}, {"mean_tokens", o.mean_tokens},
          {"by_family", fam}};
}

json grounding_report_json(const FactsOutcomes& off, const FactsOutcomes& on) {
  const double a = double(off.incorrect) / double(std::max<int64_t>(off.problems, 1));
  const double b = double(on.incorrect) / double(std::max<int64_t>(on.problems, 1));
  return {{"off", facts_outcomes_json(off)}, {"on", facts_outcomes_json(on)}, {"incorrect_rate_ratio", off.incorrect > 0 ? json(b / a) : json()}};
}

}  // namespace baleine::rl
