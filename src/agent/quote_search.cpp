#include "agent/quote_search.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <queue>

#include "core/check.h"

namespace baleine::agent {

namespace {
struct Node {
  double logprob = 0;
  std::vector<int32_t> path;
  GroundedQuoteConstraint::State state;
  bool closed = false;
};
// One expansion: the mask lets through only tokens that extend the open quote inside the sources or close it (and
// open no other), and it records the log-probability of each of them from the logits it is given (the raw model
// scores: the request has no penalties, and the mask runs before temperature), so an expansion yields every allowed
// child, not only those among a top-k.
class QuoteContinuation : public TokenConstraint {
 public:
  QuoteContinuation(const GroundedQuoteConstraint& g, GroundedQuoteConstraint::State s, const VocabIndex& v, int keep)
      : g_(g), s_(s), v_(v), keep_(keep) {}
  void mask(std::span<float> logits) override {
    const size_t n = std::min(logits.size(), size_t(v_.vocab_size));
    double mx = -std::numeric_limits<double>::infinity(), sum = 0;
    for (size_t id = 0; id < logits.size(); ++id) mx = std::max(mx, double(logits[id]));
    for (size_t id = 0; id < logits.size(); ++id) sum += std::exp(double(logits[id]) - mx);
    const double lse = mx + std::log(sum);
    const bool record = !recorded_;
    recorded_ = true;
    for (size_t id = 0; id < n; ++id) {
      if (!allowed(int32_t(id), nullptr)) logits[id] = -std::numeric_limits<float>::infinity();
      else if (record) children_.push_back({int32_t(id), float(double(logits[id]) - lse)});
    }
    for (size_t id = n; id < logits.size(); ++id) logits[id] = -std::numeric_limits<float>::infinity();
    std::sort(children_.begin(), children_.end(), [](const TokenLogprob& a, const TokenLogprob& b) {
      return a.logprob != b.logprob ? a.logprob > b.logprob : a.token < b.token;
    });
    if (int(children_.size()) > keep_) children_.resize(size_t(keep_));
  }
  void accept(int32_t) override {}
  // The state after `token` when it may extend the quote (closed: the quote ends with it).
  bool allowed(int32_t token, GroundedQuoteConstraint::State* out) const {
    if (token < 0 || token >= v_.vocab_size || v_.special[size_t(token)]) return false;
    const std::string& bytes = v_.bytes[size_t(token)];
    if (bytes.empty()) return false;
    GroundedQuoteConstraint::State s = s_;
    if (!g_.advance(s, bytes)) return false;
    if (!s.in_quote && bytes.find('"') != bytes.rfind('"')) return false;  // closes, then opens another
    if (out) *out = s;
    return true;
  }
  const std::vector<TokenLogprob>& children() const { return children_; }

 private:
  const GroundedQuoteConstraint& g_;
  GroundedQuoteConstraint::State s_;
  const VocabIndex& v_;
  int keep_;
  bool recorded_ = false;
  std::vector<TokenLogprob> children_;  // the allowed tokens, most likely first, at most keep_
};

// Waits for a request's final event (it always comes, cancelled or not).
GenerationEvent final_event(GenerationHandle& h) {
  for (;;)
    if (auto e = h.next(std::chrono::milliseconds(1000)); e && e->finished) return std::move(*e);
}

struct Worse {
  bool operator()(const Node& a, const Node& b) const {
    if (a.logprob != b.logprob) return a.logprob < b.logprob;
    return a.path.size() > b.path.size();  // ties: the shorter path first
  }
};
}  // namespace

QuoteSearchResult search_grounded_quote(Engine& engine, const std::vector<int32_t>& context,
                                        const GroundedQuoteConstraint& grounding, GroundedQuoteConstraint::State start,
                                        const VocabIndex& vocab, int64_t max_tokens, const QuoteSearchOptions& o) {
  QuoteSearchResult r;
  if (!start.in_quote || start.off || max_tokens < 1) return r;
  const int64_t limit = std::min<int64_t>(max_tokens, o.max_tokens);
  std::priority_queue<Node, std::vector<Node>, Worse> open;
  open.push(Node{0, {}, start, false});
  auto best_closed = [&] {  // the queue's best node, when it is a closed quote: the answer
    if (open.empty() || !open.top().closed) return false;
    r.found = true;
    r.tokens = open.top().path;
    r.logprob = open.top().logprob;
    return true;
  };
  while (!open.empty() && r.expansions < o.max_expansions) {
    if (best_closed()) return r;
    // The best few open nodes, expanded together; a closed node stops the batch and waits in the queue for its turn.
    std::vector<Node> batch;
    while (!open.empty() && !open.top().closed && int(batch.size()) < o.batch &&
           r.expansions + int(batch.size()) < o.max_expansions) {
      batch.push_back(open.top());
      open.pop();
    }
    std::vector<std::shared_ptr<GenerationHandle>> handles;
    std::vector<std::shared_ptr<QuoteContinuation>> steps;
    for (const Node& n : batch) {
      GenerationRequest req;
      req.prompt = context;
      req.prompt.insert(req.prompt.end(), n.path.begin(), n.path.end());
      req.params.max_tokens = 1;
      req.params.ignore_eos = true;
      steps.push_back(std::make_shared<QuoteContinuation>(grounding, n.state, vocab, o.children));
      req.params.constraint = steps.back();
      try {
        handles.push_back(engine.submit(std::move(req)));
      } catch (const QueueFullError&) {  // a busy server: stop searching (the mask decodes the quote)
        for (auto& h : handles) {
          h->cancel();
          final_event(*h);  // the requests hold references to `grounding` and `vocab`: wait them out
        }
        r.expansions += int(handles.size());
        return r;
      }
    }
    r.expansions += int(batch.size());
    std::string error;
    for (auto& h : handles) {
      const GenerationEvent e = final_event(*h);
      if (e.finish_reason == FinishReason::Error && error.empty()) error = e.error;
    }
    if (!error.empty()) throw Error("quote search: " + error);
    for (size_t i = 0; i < batch.size(); ++i) {
      const Node& n = batch[i];
      for (const TokenLogprob& t : steps[i]->children()) {
        Node c{n.logprob + t.logprob, n.path, n.state, false};
        if (!std::isfinite(t.logprob) || !steps[i]->allowed(t.token, &c.state)) continue;
        c.closed = !c.state.in_quote;
        c.path.push_back(t.token);
        if (!c.closed && int64_t(c.path.size()) >= limit) continue;
        open.push(std::move(c));
      }
    }
  }
  best_closed();
  return r;
}

void QuoteBreakConstraint::accept(int32_t token) {
  const bool was = grounding_->state().in_quote;
  all_->accept(token);
  if (armed_ && !was && grounding_->state().in_quote && !grounding_->state().off) broke_ = true;
}

}  // namespace baleine::agent
