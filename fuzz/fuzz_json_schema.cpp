// Fuzz target: the JSON-schema compiler and the grammar matcher. Input: a schema (JSON text), a NUL byte, then
// bytes fed to the matcher one at a time. The compiler must refuse what it cannot honour with baleine::Error; the
// matcher must stay within its bounds on any bytes, and whatever it accepts as complete must parse as JSON.
#include <nlohmann/json.hpp>

#include "agent/grammar.h"
#include "agent/matcher.h"
#include "core/check.h"
#include "fuzz_common.h"

using namespace baleine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view rest = fuzz::as_text(data, size);
  const std::string_view schema_text = fuzz::next_piece(rest);
  nlohmann::json schema = nlohmann::json::parse(schema_text, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded() || !schema.is_object()) return 0;
  try {
    agent::SchemaOptions opt;
    opt.strict = !rest.empty() && (rest[0] & 1);
    agent::Grammar g = agent::json_schema_grammar(schema, opt);
    agent::GrammarMatcher m(g);
    agent::MatchState s = m.initial();
    size_t fed = 0;
    for (char c : rest) {
      agent::MatchState next;
      if (!m.step(s, uint8_t(c), next)) break;
      s = std::move(next);
      ++fed;
      (void)m.min_remaining(s);
    }
    if (fed > 0 && m.accepting(s)) {
      const auto out = nlohmann::json::parse(rest.substr(0, fed), nullptr, false);
      if (out.is_discarded()) __builtin_trap();  // the grammar accepted text that is not JSON
    }
  } catch (const Error&) {
  }
  return 0;
}
