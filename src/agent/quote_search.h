// agent/quote_search.h — grounded quotes chosen whole. The grounded-quote mask (agent/grounding.h) decodes a quote
// greedily, one token at a time: a small model that copies roughly commits to a first token ("E" for "prothalli")
// and then walks down whatever source span starts with it, or wanders until its budget ends. Here, when the model
// opens a quote that must copy its sources, a best-first search over the spans the sources allow finds the copy the
// model itself rates most likely as a whole — the sum of its token log-probabilities, closing quote included — and
// the turn goes on after it. The model still decides whether and where to quote; the search only decides which
// source span, by the model's own scores.
// defines: QuoteSearchOptions, QuoteSearchResult, search_grounded_quote, QuoteBreakConstraint
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "agent/constraint.h"
#include "agent/grounding.h"
#include "infer/engine.h"

namespace baleine::agent {

struct QuoteSearchOptions {
  int max_expansions = 48;  // model calls (one token of lookahead each) per quote at most
  int children = 64;        // the most likely allowed next tokens each expansion keeps
  int batch = 4;            // expansions submitted together (the engine batches them)
  int max_tokens = 24;      // tokens of a quote at most, closing quote included
};

struct QuoteSearchResult {
  bool found = false;
  std::vector<int32_t> tokens;  // the quoted span's tokens; the last one holds the closing '"'
  double logprob = 0;           // their summed log-probability under the model
  int expansions = 0;
};

// Best-first (uniform-cost) search: a node is a token path from `start` (a state inside an open quote) that the
// sources allow; expanding it runs the model one token past context + path (the prefix cache keeps that cheap) and
// keeps the `children` most likely tokens the sources allow there. Log-probabilities only fall along a path, so the
// first closed quote taken from the queue is the most likely closed quote of all token paths (exact unless a path
// needs a token outside some step's kept children). Not found: the expansion budget ran out first.
QuoteSearchResult search_grounded_quote(Engine& engine, const std::vector<int32_t>& context,
                                        const GroundedQuoteConstraint& grounding, GroundedQuoteConstraint::State start,
                                        const VocabIndex& vocab, int64_t max_tokens, const QuoteSearchOptions& options = {});

// Wraps a turn's constraint: complete (the engine stops) right after a token that opens a grounded quote, so the
// caller can search the quote; otherwise as the wrapped constraint.
class QuoteBreakConstraint : public TokenConstraint {
 public:
  QuoteBreakConstraint(std::shared_ptr<TokenConstraint> all, std::shared_ptr<GroundedQuoteConstraint> grounding)
      : all_(std::move(all)), grounding_(std::move(grounding)) {}
  void mask(std::span<float> logits) override { all_->mask(logits); }
  void accept(int32_t token) override;
  bool complete() const override { return broke_ || all_->complete(); }
  void arm() { armed_ = true; }  // after replaying the tokens already generated
  bool broke() const { return broke_; }

 private:
  std::shared_ptr<TokenConstraint> all_;
  std::shared_ptr<GroundedQuoteConstraint> grounding_;
  bool armed_ = false, broke_ = false;
};

}  // namespace baleine::agent
