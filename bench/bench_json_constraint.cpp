// Constrained-decoding cost per token on a real vocabulary: builds the vocabulary index, then generates from
// random logits under a JSON schema and times mask() (median and worst, memo hits included, as in serving).
// Usage: bench_json_constraint TOKENIZER_DIR [TOKENS]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "agent/constraint.h"

using namespace baleine;
using namespace baleine::agent;
using Clock = std::chrono::steady_clock;

static double ms(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: bench_json_constraint TOKENIZER_DIR [TOKENS]\n";
    return 2;
  }
  const int tokens = argc > 2 ? std::atoi(argv[2]) : 200;
  Tokenizer tok = Tokenizer::load(argv[1]);
  auto t0 = Clock::now();
  auto vocab = VocabIndex::build(tok);
  auto t1 = Clock::now();
  std::cout << "vocabulary " << vocab->vocab_size << " tokens, index built in " << ms(t0, t1) << " ms\n";
  auto schema = nlohmann::json::parse(R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
    "tags":{"type":"array","items":{"type":"string"}},"address":{"type":"object","properties":{"city":{"type":"string"},
    "zip":{"type":"string"}},"required":["city","zip"],"additionalProperties":false}},"required":["name","age","tags","address"],
    "additionalProperties":false})");
  for (const char* mode : {"json_schema", "json_object"}) {
    auto g = std::make_shared<const Grammar>(std::string(mode) == "json_object" ? json_object_grammar() : json_schema_grammar(schema));
    GrammarConstraintOptions o;
    o.max_tokens = tokens;
    GrammarConstraint c(g, vocab, o);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0, 2);
    std::vector<float> logits(size_t(vocab->vocab_size));
    std::vector<double> times;
    int n = 0;
    for (; n < tokens && !c.complete(); ++n) {
      for (auto& l : logits) l = nd(rng);
      auto a = Clock::now();
      c.mask(logits);
      times.push_back(ms(a, Clock::now()));
      int32_t best = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      c.accept(best);
    }
    std::sort(times.begin(), times.end());
    std::cout << mode << ": " << n << " tokens, mask median " << times[times.size() / 2] << " ms, p90 "
              << times[times.size() * 9 / 10] << " ms, max " << times.back() << " ms, valid="
              << (!c.failed() && c.complete()) << "\n";
  }
}
