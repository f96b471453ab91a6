// Writes constrained generations for every schema of a fixture file, for an independent validator (ajv, in
// tests/js/json_schema_ajv.mjs): random logits at tight and loose budgets, and the tiny random model through the
// engine. Usage: agent_json_samples SCHEMAS.json OUT.json
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "agent/constraint.h"
#include "agent/tools.h"
#include "agent_test_util.h"

using namespace baleine;
using namespace baleine::agent;
using nlohmann::json;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: agent_json_samples SCHEMAS.json OUT.json\n";
    return 2;
  }
  try {
    json schemas = json::parse(std::ifstream(argv[1]));
    auto tok = agent_test::tiny_tokenizer();
    auto vocab = VocabIndex::build(*tok);
    Engine engine(agent_test::tiny_model(), tok);
    json out = json::array();
    std::mt19937 rng(2024);
    int failed = 0;
    for (size_t si = 0; si < schemas.size(); ++si) {
      const json& s = schemas[si];
      auto grammar = std::make_shared<const Grammar>(s == "json_object" ? json_object_grammar() : json_schema_grammar(s));
      const int64_t need = GrammarConstraint(grammar, vocab).min_tokens_needed();
      for (int k = 0; k < 24; ++k) {
        GrammarConstraintOptions o;
        o.max_tokens = k % 4 == 0 ? need : need + 8 + int64_t(rng() % 120);
        std::string text, source;
        bool ok = true;
        if (k < 20) {
          GrammarConstraint c(grammar, vocab, o);
          text = agent_test::generate_random(c, vocab->vocab_size, o.max_tokens, rng);
          ok = !c.failed() && c.complete();
          source = "random-logits";
        } else {
          auto c = std::make_shared<GrammarConstraint>(grammar, vocab, o);
          GenerationRequest r;
          r.prompt = tok->encode("{\"name\": \"Ada\"");
          r.params.max_tokens = o.max_tokens;
          r.params.sampling.temperature = 1.0f;
          r.params.sampling.seed = uint64_t(k);
          r.params.constraint = c;
          auto h = engine.submit(std::move(r));
          while (auto e = h->next(std::chrono::seconds(60))) {
            text += e->text;
            if (e->finished) {
              ok = ok && e->finish_reason == FinishReason::Stop;
              break;
            }
          }
          ok = ok && !c->failed() && c->complete();
          source = "tiny-model";
        }
        if (!ok) ++failed, std::cerr << "schema " << si << ": constraint did not complete: " << text << "\n";
        out.push_back({{"schema", si}, {"max_tokens", o.max_tokens}, {"source", source}, {"text", text}});
      }
      // The same schema as the parameters of a strict tool under tool_choice "required": the arguments too.
      if (!s.is_object() || s.value("type", "") != "object") continue;
      auto tools = parse_tools(json::array({{{"type", "function"}, {"function", {{"name", "t"}, {"strict", true}, {"parameters", s}}}}}));
      for (int k = 0; k < 8; ++k) {
        ToolConstraintOptions to;
        to.parallel_tool_calls = k % 2 == 0;
        to.max_tokens = 100 + int64_t(rng() % 150);
        auto c = make_tool_constraint(tools, ToolChoice{ToolChoiceMode::Required, ""}, vocab, to);
        std::string text = agent_test::generate_random(*c, vocab->vocab_size, to.max_tokens, rng);
        AssistantTurn turn = parse_assistant_output(text, tools, "stop");
        if (!c->complete() || turn.tool_calls.empty()) ++failed, std::cerr << "schema " << si << ": no tool call: " << text << "\n";
        for (const auto& call : turn.tool_calls)
          out.push_back({{"schema", si}, {"max_tokens", to.max_tokens}, {"source", "tool-call"}, {"text", call.arguments}});
      }
    }
    std::ofstream(argv[2]) << out.dump(1);
    std::cout << "wrote " << out.size() << " samples, " << failed << " incomplete\n";
    return failed ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
