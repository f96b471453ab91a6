// agent/grounding.h — grounded quotes: a sampler stage that makes every double-quoted span the model writes a
// verbatim copy of its sources (the user's messages and the retrieved passages), so a cited answer quotes what
// the documents say instead of a near-miss. Small models copy approximately (asked for "prothallus" the 4 M-parameter
// default model writes "prios"): its distribution already points at the right source words, and the mask turns the
// approximate copy into an exact one — the model still chooses what to quote, where and whether to quote at all.
// Unquoted text, special tokens and everything after a tool-call marker (arguments are JSON) are left free.
// defines: SubstringIndex, GroundedQuoteConstraint, AllOfConstraint, grounding_sources
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "agent/constraint.h"
#include "tokenizer/chat_template.h"

namespace baleine::agent {

// Every substring of a set of texts, as a generalised suffix automaton: extending a candidate substring by a byte is
// one transition (no substring crosses from one text into the next). Each text is also added lower-cased, so a quote
// may change the case of what it copies ("Nephridia" -> "nephridia").
class SubstringIndex {
 public:
  explicit SubstringIndex(const std::vector<std::string>& texts);
  static constexpr int32_t kRoot = 0, kNone = -1;
  int32_t step(int32_t state, uint8_t byte) const;  // kNone when state + byte is no substring
  bool contains(std::string_view s) const;
  size_t states() const { return states_.size(); }

 private:
  struct State {
    int32_t link = -1, len = 0;
    std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
  };
  int32_t find(int32_t state, uint8_t byte) const;
  void set(int32_t state, uint8_t byte, int32_t to);
  int32_t extend(int32_t last, uint8_t byte);
  std::vector<State> states_;
};

class GroundedQuoteConstraint : public TokenConstraint {
 public:
  GroundedQuoteConstraint(std::shared_ptr<const SubstringIndex> sources, std::shared_ptr<const VocabIndex> vocab);
  void mask(std::span<float> logits) override;
  void accept(int32_t token) override;

  struct State {
    bool in_quote = false, off = false;
    int32_t at = SubstringIndex::kRoot;  // the quoted text so far, as an automaton state
    int32_t quoted = 0;                  // its length in bytes
  };
  const State& state() const { return state_; }
  // The state after `bytes` from `s`; false when they leave the sources inside a quote (or close an empty one).
  bool advance(State& s, std::string_view bytes) const;

 private:
  std::shared_ptr<const SubstringIndex> sources_;
  std::shared_ptr<const VocabIndex> vocab_;
  std::vector<uint8_t> has_quote_;  // by id: the token's bytes hold '"'
  State state_;
};

// Applies every constraint's mask; accept() feeds them all; complete when the first one is (the primary, e.g. the
// tool-call grammar, decides when the output is finished). Null entries are skipped.
class AllOfConstraint : public TokenConstraint {
 public:
  explicit AllOfConstraint(std::vector<std::shared_ptr<TokenConstraint>> parts) : parts_(std::move(parts)) {}
  void mask(std::span<float> logits) override;
  void accept(int32_t token) override;
  bool complete() const override;

 private:
  std::vector<std::shared_ptr<TokenConstraint>> parts_;
};

// The texts a grounded answer may quote: every user message, and every string inside the tool messages' JSON (the
// passages, their document names, the query). Empty when no tool message returned passages (nothing to ground on).
std::vector<std::string> grounding_sources(const std::vector<ChatMessage>& conversation);

}  // namespace baleine::agent
