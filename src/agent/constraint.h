// agent/constraint.h — constrained decoding as an engine sampler stage: only tokens whose bytes keep the text a
// prefix of the grammar's language are allowed, and only while the shortest completion still fits in the token
// budget, so the output is always complete and valid.
// defines: VocabIndex, GrammarConstraintOptions, GrammarConstraint, DeferredConstraint, ForbidTokensConstraint,
//          ReasoningBudgetConstraint
//
// Speed: the vocabulary is sorted by bytes once per tokenizer; the mask walks it like a trie (tokens sharing a
// prefix share the automaton steps, and a rejected prefix skips all its extensions), and masks are memoised per
// automaton state (inside a long string the state repeats).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/grammar.h"
#include "agent/matcher.h"
#include "infer/engine.h"
#include "tokenizer/tokenizer.h"

namespace baleine::agent {

// The bytes of every token, precomputed for masking. Build once per tokenizer and share.
struct VocabIndex {
  static std::shared_ptr<const VocabIndex> build(const Tokenizer& tok);
  int64_t vocab_size = 0;
  std::vector<std::string> bytes;  // by id ("" for ids that decode to nothing)
  std::vector<uint8_t> special;    // by id
  std::vector<uint8_t> plain;      // by id: complete UTF-8 characters, none of them '"', '\\' or a control
  std::vector<int32_t> sorted;     // non-special ids with bytes, sorted by bytes
  std::vector<uint32_t> lcp;       // common prefix length of sorted[i] with sorted[i - 1]
  std::vector<int32_t> specials;   // special ids with bytes (matched only against literal grammar text)
  size_t max_len = 0;
  int32_t eos = -1;
  std::unordered_map<std::string_view, int32_t> by_bytes;  // a token with exactly these bytes (special preferred)
  // Fewest tokens that spell text[p..] for every p (size text.size() + 1); huge where impossible.
  std::vector<int64_t> literal_cost(const std::string& text) const;
};

struct GrammarConstraintOptions {
  // The request's max_tokens: a token is allowed only if the shortest completion after it still fits (every
  // byte is a token in byte-level BPE, so it always does). 0: no budget.
  int64_t max_tokens = 0;
  // Allowed once the text is a complete value (EOS); the vocabulary's EOS is added when known.
  std::vector<int32_t> end_tokens;
};

class GrammarConstraint : public TokenConstraint {
 public:
  GrammarConstraint(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const VocabIndex> vocab,
                    GrammarConstraintOptions options = {});
  void mask(std::span<float> logits) override;
  void accept(int32_t token) override;
  bool complete() const override;

  // allowed[id] = 1 for every token allowed now (what mask() applies).
  void allowed(std::vector<uint8_t>& out);
  // Feeds bytes that are already part of the output (a prefix the caller put in the prompt); false if rejected.
  bool feed_text(std::string_view bytes);
  int64_t min_tokens_needed() const;  // tokens of the shortest completion from here (an upper bound)
  bool failed() const { return failed_; }  // a token outside the mask was accepted
  const std::string& text() const { return text_; }
  int64_t generated() const { return generated_; }
  void set_max_tokens(int64_t n) { options_.max_tokens = n; }

 private:
  void compute(std::vector<uint64_t>& bits, int64_t& max_rem, bool& cut, int64_t budget);
  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const VocabIndex> vocab_;
  GrammarConstraintOptions options_;
  GrammarMatcher matcher_;
  MatchState state_;
  std::vector<MatchState> walk_;  // per depth, reused
  std::vector<uint8_t> is_end_;
  std::string text_, key_;
  int64_t generated_ = 0;
  bool failed_ = false, ended_ = false;
  struct Cached {
    std::vector<uint64_t> bits;
    int64_t max_rem = 0;
  };
  std::unordered_map<std::string, Cached> cache_;
};

// Unconstrained until the output contains `trigger` (e.g. "</think>" or the tool-calls marker), then `inner`
// applies to the bytes after it, with the tokens left of `max_tokens`. Before the trigger, tokens that hold the
// trigger with bytes after it are masked (those bytes would escape the inner constraint). force: when the budget
// left only just fits the trigger and the inner value, the trigger's own token is forced (reasoning, then JSON).
struct DeferredOptions {
  int64_t max_tokens = 0;
  bool force = false;
  std::vector<int32_t> forbidden_before;  // never sampled before the trigger
};
class DeferredConstraint : public TokenConstraint {
 public:
  DeferredConstraint(std::string trigger, std::shared_ptr<GrammarConstraint> inner, std::shared_ptr<const VocabIndex> vocab,
                     DeferredOptions options = {});
  void mask(std::span<float> logits) override;
  void accept(int32_t token) override;
  bool complete() const override;
  bool triggered() const { return triggered_; }
  GrammarConstraint& inner() { return *inner_; }

 private:
  std::string trigger_, seen_;
  std::shared_ptr<GrammarConstraint> inner_;
  std::shared_ptr<const VocabIndex> vocab_;
  DeferredOptions options_;
  int32_t trigger_token_ = -1;
  int64_t generated_ = 0;
  bool triggered_ = false;
};

// Never lets these tokens be sampled (tool_choice "none": the tool-call markers).
class ForbidTokensConstraint : public TokenConstraint {
 public:
  explicit ForbidTokensConstraint(std::vector<int32_t> ids) : ids_(std::move(ids)) {}
  void mask(std::span<float> logits) override;
  void accept(int32_t) override {}

 private:
  std::vector<int32_t> ids_;
};

// reasoning_effort made real: the output starts inside <think>; once `budget` tokens of reasoning have been
// sampled without </think> (or a tool-calls block, which also ends it), only the </think> token may come next.
// Everything else, and everything after the reasoning, is `inner`'s (may be null). Without a single </think>
// token in the vocabulary the budget cannot be forced and only `inner` applies.
class ReasoningBudgetConstraint : public TokenConstraint {
 public:
  ReasoningBudgetConstraint(int64_t budget, std::shared_ptr<TokenConstraint> inner, std::shared_ptr<const VocabIndex> vocab);
  void mask(std::span<float> logits) override;
  void accept(int32_t token) override;
  bool complete() const override { return inner_ && inner_->complete(); }
  bool reasoning_closed() const { return closed_; }

 private:
  int64_t budget_, used_ = 0;
  std::shared_ptr<TokenConstraint> inner_;
  std::shared_ptr<const VocabIndex> vocab_;
  int32_t think_end_ = -1;
  std::string tail_;  // the last bytes of the reasoning, to see </think> written over several tokens
  bool closed_ = false;
};

}  // namespace baleine::agent
