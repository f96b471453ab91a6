// agent/grounding.h — grounded quotes: a sampler stage that makes every double-quoted span the model writes a
// verbatim (whole-word, in the agent loop) copy of its sources (the user's messages and the retrieved passages), so a cited answer quotes what
// the documents say instead of a near-miss. Small models copy approximately (asked for "prothallus" the 4 M-parameter
// default model writes "prios"): its distribution already points at the right source words, and the mask turns the
// approximate copy into an exact one — the model still chooses what to quote, where and whether to quote at all.
// Unquoted text, special tokens and everything after a tool-call marker (arguments are JSON) are left free.
// defines: SpanIndex, SubstringIndex, WordSpanIndex, GroundedQuoteConstraint, AllOfConstraint, grounding_sources
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "agent/constraint.h"
#include "tokenizer/chat_template.h"

namespace baleine::agent {

// The spans a quote may hold, as an automaton over bytes: step() extends the span so far (kNone: no such span),
// can_close() says whether a quote may end after it. Each source text is also indexed lower-cased, so a quote may
// change the case of what it copies ("Nephridia" -> "nephridia"); no span crosses from one text into the next.
class SpanIndex {
 public:
  static constexpr int32_t kRoot = 0, kNone = -1;
  virtual ~SpanIndex() = default;
  virtual int32_t step(int32_t state, uint8_t byte) const = 0;
  virtual bool can_close(int32_t state) const = 0;
  bool contains(std::string_view s) const;  // a span that may be closed here
};

// Every substring (a generalised suffix automaton: one transition per byte, linear size).
class SubstringIndex : public SpanIndex {
 public:
  explicit SubstringIndex(const std::vector<std::string>& texts);
  int32_t step(int32_t state, uint8_t byte) const override;
  bool can_close(int32_t state) const override { return state != kNone; }
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

// Whole-word spans: a quote starts where a word of the source starts and may close only where a word ends (letters,
// digits and non-ASCII bytes make words), at most max_bytes long — "Nephridia" or "pl. Nephridia", never "ephr" or
// a lone "s" out of a word. A trie of the spans starting at each word start.
class WordSpanIndex : public SpanIndex {
 public:
  explicit WordSpanIndex(const std::vector<std::string>& texts, size_t max_bytes = 96);
  int32_t step(int32_t state, uint8_t byte) const override;
  bool can_close(int32_t state) const override;
  size_t nodes() const { return nodes_.size(); }

 private:
  struct Node {
    bool word_end = false;
    std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
  };
  std::vector<Node> nodes_;
};

class GroundedQuoteConstraint : public TokenConstraint {
 public:
  GroundedQuoteConstraint(std::shared_ptr<const SpanIndex> sources, std::shared_ptr<const VocabIndex> vocab);
  void mask(std::span<float> logits) override;
  void accept(int32_t token) override;

  struct State {
    bool in_quote = false, off = false;
    int32_t at = SpanIndex::kRoot;       // the quoted text so far, as an automaton state
    int32_t quoted = 0;                  // its length in bytes
  };
  const State& state() const { return state_; }
  // The state after `bytes` from `s`; false when they leave the sources inside a quote (or close an empty one).
  bool advance(State& s, std::string_view bytes) const;

 private:
  std::shared_ptr<const SpanIndex> sources_;
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
