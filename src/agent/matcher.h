// agent/matcher.h — a byte-level pushdown automaton over a Grammar: feed bytes, ask whether the text so far can
// still become a complete value, whether it already is one, and how many bytes its shortest completion needs.
// defines: MatchFrame, MatchStack, MatchState, GrammarMatcher
//
// Nondeterminism (anyOf, enum values sharing a prefix, choices between tool names) is kept as a small set of
// stacks, one per live alternative; identical stacks are merged. States are plain values (vectors of POD frames),
// so the token mask can copy them cheaply while it walks the vocabulary.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/grammar.h"

namespace baleine::agent {

struct MatchFrame {
  const GrammarNode* node = nullptr;
  uint32_t phase = 0;  // kind-specific parse position
  uint32_t count = 0;  // literal position / items so far / key index / UTF-8 expectation / number length
  uint64_t seen = 0;   // object: keys used so far
  bool operator==(const MatchFrame&) const = default;
};

struct MatchStack {
  std::vector<MatchFrame> frames;  // innermost last; empty: a complete value
  uint32_t ws = 0;                 // consecutive whitespace bytes just consumed
  bool operator==(const MatchStack&) const = default;
};

struct MatchState {
  std::vector<MatchStack> stacks;  // live alternatives; none: dead (the text can never match)
  size_t n = 0;                    // stacks[0..n) are live (the vector keeps capacity for reuse)
};

class GrammarMatcher {
 public:
  static constexpr uint32_t kMaxWhitespace = 12;  // consecutive whitespace bytes allowed between JSON tokens
  static constexpr size_t kMaxDepth = 64;         // nesting limit of frames per stack
  static constexpr uint32_t kMaxNumberLen = 20;   // characters of a number (keeps values finite)
  static constexpr uint32_t kMaxIntegerLen = 16;  // characters of an integer: |n| < 10^15, exact as a double

  // Cost of a literal's remaining text from each position (size text.size() + 1, last entry 0): in bytes by
  // default; in tokens when the vocabulary is known (markers are one special token, not twenty bytes).
  using LiteralCost = std::function<std::vector<int64_t>(const std::string&)>;
  explicit GrammarMatcher(const Grammar& g, const LiteralCost& cost = nullptr);
  MatchState initial() const;
  // out = in after byte b; false (out dead) when no alternative accepts it. literal_only: only bytes that belong
  // to Literal nodes are accepted (special tokens must never appear inside a JSON string).
  bool step(const MatchState& in, uint8_t b, MatchState& out, bool literal_only = false) const;
  bool feed(MatchState& s, std::string_view bytes, bool literal_only = false) const;
  // Some alternative is a complete value (end of text allowed here).
  bool accepting(const MatchState& s) const;
  // Some alternative can take more bytes.
  bool can_continue(const MatchState& s) const;
  // Cost (bytes; literal text per LiteralCost) of the shortest completion over all alternatives (0 when
  // accepting; huge when dead).
  int64_t min_remaining(const MatchState& s) const;
  // Every alternative is inside a JSON string between characters: plain text bytes leave the state unchanged.
  bool in_plain_string(const MatchState& s) const;
  // A canonical byte string identifying the state (for memoising masks).
  static void key(const MatchState& s, std::string& out);

 private:
  void step_stack(MatchStack st, uint8_t b, MatchState& out, bool literal_only, int depth) const;
  void push_out(MatchState& out, MatchStack&& st) const;
  int64_t stack_remaining(const MatchStack& st) const;
  int64_t frame_remaining(const MatchFrame& f) const;
  int64_t object_rest(const GrammarNode& n, uint64_t seen) const;
  int64_t mn(const GrammarNode* n) const { return min_[n->id]; }
  const Grammar& g_;
  std::vector<std::vector<int64_t>> lit_cost_;  // by node id (literals only)
  std::vector<int64_t> min_;                    // shortest serialisation cost by node id
};

}  // namespace baleine::agent
