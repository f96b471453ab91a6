#include "agent/constraint.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/check.h"

namespace baleine::agent {

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr size_t kCacheEntries = 64;

// Whole UTF-8 characters (no overlongs, no surrogates), none a quote, a backslash or a control character.
bool plain_string_bytes(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const uint8_t b = uint8_t(s[i]);
    if (b < 0x20 || b == '"' || b == '\\' || b == 0x7f) return false;
    if (b < 0x80) { ++i; continue; }
    int need = 0;
    uint8_t lo = 0x80, hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b == 0xe0) need = 2, lo = 0xa0;
    else if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) need = 2;
    else if (b == 0xed) need = 2, hi = 0x9f;
    else if (b == 0xf0) need = 3, lo = 0x90;
    else if (b >= 0xf1 && b <= 0xf3) need = 3;
    else if (b == 0xf4) need = 3, hi = 0x8f;
    else return false;
    if (i + size_t(need) >= s.size()) return false;
    for (int k = 1; k <= need; ++k) {
      const uint8_t c = uint8_t(s[i + size_t(k)]);
      if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xbf)) return false;
    }
    i += size_t(need) + 1;
  }
  return true;
}
}  // namespace

std::shared_ptr<const VocabIndex> VocabIndex::build(const Tokenizer& tok) {
  auto v = std::make_shared<VocabIndex>();
  v->vocab_size = tok.vocab_size();
  v->bytes.resize(size_t(v->vocab_size));
  v->special.resize(size_t(v->vocab_size));
  v->plain.resize(size_t(v->vocab_size));
  v->eos = tok.eos_id();
  for (int64_t id = 0; id < v->vocab_size; ++id) {
    v->bytes[size_t(id)] = tok.token_bytes(int32_t(id));
    v->special[size_t(id)] = tok.is_special(int32_t(id));
    v->plain[size_t(id)] = !v->special[size_t(id)] && !v->bytes[size_t(id)].empty() && plain_string_bytes(v->bytes[size_t(id)]);
    if (v->bytes[size_t(id)].empty()) continue;
    (v->special[size_t(id)] ? v->specials : v->sorted).push_back(int32_t(id));
    v->max_len = std::max(v->max_len, v->bytes[size_t(id)].size());
  }
  for (int64_t id = 0; id < v->vocab_size; ++id) {
    const std::string& b = v->bytes[size_t(id)];
    if (b.empty()) continue;
    auto [it, fresh] = v->by_bytes.emplace(std::string_view(b), int32_t(id));
    if (!fresh && v->special[size_t(id)]) it->second = int32_t(id);
  }
  std::sort(v->sorted.begin(), v->sorted.end(), [&](int32_t a, int32_t b) { return v->bytes[size_t(a)] < v->bytes[size_t(b)]; });
  v->lcp.resize(v->sorted.size());
  for (size_t i = 1; i < v->sorted.size(); ++i) {
    const std::string &a = v->bytes[size_t(v->sorted[i - 1])], &b = v->bytes[size_t(v->sorted[i])];
    size_t k = 0;
    while (k < a.size() && k < b.size() && a[k] == b[k]) ++k;
    v->lcp[i] = uint32_t(k);
  }
  return v;
}

std::vector<int64_t> VocabIndex::literal_cost(const std::string& text) const {
  constexpr int64_t kHuge = int64_t(1) << 40;
  const size_t n = text.size();
  std::vector<int64_t> cost(n + 1, kHuge);
  cost[n] = 0;
  for (size_t p = n; p-- > 0;)
    for (size_t l = 1; l <= std::min(max_len, n - p); ++l)
      if (cost[p + l] + 1 < cost[p] && by_bytes.count(std::string_view(text).substr(p, l))) cost[p] = cost[p + l] + 1;
  return cost;
}

GrammarConstraint::GrammarConstraint(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const VocabIndex> vocab,
                                     GrammarConstraintOptions options)
    : grammar_(std::move(grammar)), vocab_(std::move(vocab)), options_(std::move(options)),
      matcher_(*grammar_, [v = vocab_.get()](const std::string& text) { return v->literal_cost(text); }) {
  BALEINE_CHECK(grammar_->root, "grammar has no root");
  state_ = matcher_.initial();
  walk_.resize(vocab_->max_len + 1);
  is_end_.assign(size_t(vocab_->vocab_size), 0);
  if (vocab_->eos >= 0) options_.end_tokens.push_back(vocab_->eos);
  for (int32_t t : options_.end_tokens)
    if (t >= 0 && t < vocab_->vocab_size) is_end_[size_t(t)] = 1;
}

int64_t GrammarConstraint::min_tokens_needed() const { return matcher_.min_remaining(state_); }

bool GrammarConstraint::feed_text(std::string_view bytes) {
  text_ += bytes;
  if (!matcher_.feed(state_, bytes)) failed_ = true;
  return !failed_;
}

// bits: the allowed tokens for state_ given `budget` tokens left after the next one; max_rem: the largest
// shortest-completion among allowed tokens (the cached mask stays right for any budget at least that large).
void GrammarConstraint::compute(std::vector<uint64_t>& bits, int64_t& max_rem, bool& cut, int64_t budget) {
  const VocabIndex& v = *vocab_;
  bits.assign(size_t((v.vocab_size + 63) / 64), 0);
  max_rem = 0;
  cut = false;
  auto allow = [&](int32_t id, int64_t rem) {
    if (rem > budget) {
      cut = true;
      return;
    }
    bits[size_t(id) >> 6] |= uint64_t(1) << (id & 63);
    max_rem = std::max(max_rem, rem);
  };
  // Inside a string, plain-text tokens leave the state as it is: allowed without walking.
  const bool plain_ok = matcher_.in_plain_string(state_);
  const int64_t rem_now = matcher_.min_remaining(state_);
  walk_[0] = state_;
  size_t valid = 0;                       // walk_[0..valid]: states after the first bytes of this token
  size_t fail_len = SIZE_MAX, with_fail = 0;  // a rejected prefix, and how much of it this token shares
  for (size_t i = 0; i < v.sorted.size(); ++i) {
    const int32_t id = v.sorted[i];
    const std::string& t = v.bytes[size_t(id)];
    const size_t l = i == 0 ? 0 : v.lcp[i];
    valid = std::min(valid, l);
    with_fail = std::min(with_fail, l);
    if (with_fail >= fail_len) continue;  // starts with a prefix already rejected
    if (plain_ok && v.plain[size_t(id)]) {
      allow(id, rem_now);
      continue;
    }
    size_t k = valid;
    while (k < t.size() && matcher_.step(walk_[k], uint8_t(t[k]), walk_[k + 1])) ++k;
    valid = k;
    if (k < t.size()) {
      fail_len = k + 1;
      with_fail = t.size();
      continue;
    }
    allow(id, matcher_.min_remaining(walk_[k]));
  }
  MatchState s;
  for (int32_t id : v.specials) {
    if (is_end_[size_t(id)]) continue;
    s = state_;
    if (!matcher_.feed(s, v.bytes[size_t(id)], true)) continue;
    allow(id, matcher_.min_remaining(s));
  }
  if (matcher_.accepting(state_))
    for (int32_t t : options_.end_tokens)
      if (t >= 0 && t < v.vocab_size) allow(t, 0);
}

void GrammarConstraint::allowed(std::vector<uint8_t>& out) {
  const int64_t budget = options_.max_tokens > 0 ? options_.max_tokens - generated_ - 1 : std::numeric_limits<int64_t>::max() / 2;
  GrammarMatcher::key(state_, key_);
  auto it = cache_.find(key_);
  std::vector<uint64_t> bits;
  if (it != cache_.end() && it->second.max_rem <= budget) {
    bits = it->second.bits;
  } else {
    int64_t max_rem = 0;
    bool cut = false;
    compute(bits, max_rem, cut, budget);
    // Only a mask the budget did not cut can be reused later (budgets only shrink).
    if (!cut) {
      if (cache_.size() >= kCacheEntries) cache_.clear();
      cache_[key_] = {bits, max_rem};
    }
  }
  out.assign(size_t(vocab_->vocab_size), 0);
  bool any = false;
  for (int64_t id = 0; id < vocab_->vocab_size; ++id)
    if (bits[size_t(id) >> 6] >> (id & 63) & 1) out[size_t(id)] = 1, any = true;
  if (!any) {  // cannot happen if the budget was large enough at the start; end the output rather than loop
    failed_ = true;
    for (int32_t t : options_.end_tokens)
      if (t >= 0 && t < vocab_->vocab_size) out[size_t(t)] = 1;
  }
}

void GrammarConstraint::mask(std::span<float> logits) {
  std::vector<uint8_t> ok;
  allowed(ok);
  for (size_t i = 0; i < logits.size(); ++i)
    if (i >= ok.size() || !ok[i]) logits[i] = kNegInf;
}

void GrammarConstraint::accept(int32_t token) {
  ++generated_;
  if (token < 0 || token >= vocab_->vocab_size) {
    failed_ = true;
    return;
  }
  if (is_end_[size_t(token)]) {
    if (!matcher_.accepting(state_)) failed_ = true;
    ended_ = true;
    return;
  }
  const std::string& b = vocab_->bytes[size_t(token)];
  text_ += b;
  if (!matcher_.feed(state_, b, vocab_->special[size_t(token)] != 0)) failed_ = true;
}

bool GrammarConstraint::complete() const {
  if (ended_ || failed_) return true;
  if (!matcher_.accepting(state_)) return false;
  return !matcher_.can_continue(state_) || (options_.max_tokens > 0 && generated_ >= options_.max_tokens);
}

DeferredConstraint::DeferredConstraint(std::string trigger, std::shared_ptr<GrammarConstraint> inner,
                                       std::shared_ptr<const VocabIndex> vocab, DeferredOptions options)
    : trigger_(std::move(trigger)), inner_(std::move(inner)), vocab_(std::move(vocab)), options_(std::move(options)) {
  if (options_.force && vocab_->eos >= 0) options_.forbidden_before.push_back(vocab_->eos);  // the value must come
  for (int64_t id = 0; id < vocab_->vocab_size; ++id) {
    const std::string& b = vocab_->bytes[size_t(id)];
    if (b == trigger_ && (trigger_token_ < 0 || vocab_->special[size_t(id)])) trigger_token_ = int32_t(id);
    // A token that holds the trigger and more bytes after it: those bytes would bypass the inner constraint.
    size_t p = b.find(trigger_);
    if (p != std::string::npos && p + trigger_.size() < b.size()) options_.forbidden_before.push_back(int32_t(id));
  }
}

void DeferredConstraint::mask(std::span<float> logits) {
  if (triggered_) return inner_->mask(logits);
  for (int32_t id : options_.forbidden_before)
    if (id >= 0 && size_t(id) < logits.size()) logits[size_t(id)] = kNegInf;
  const int64_t left = options_.max_tokens - generated_;
  if (options_.force && trigger_token_ >= 0 && options_.max_tokens > 0 && left <= inner_->min_tokens_needed() + 2) {
    for (size_t i = 0; i < logits.size(); ++i)
      if (int32_t(i) != trigger_token_) logits[i] = kNegInf;
  }
}

void DeferredConstraint::accept(int32_t token) {
  ++generated_;
  if (triggered_) return inner_->accept(token);
  if (token < 0 || size_t(token) >= vocab_->bytes.size()) return;
  seen_ += vocab_->bytes[size_t(token)];
  size_t p = seen_.find(trigger_);
  if (p == std::string::npos) return;
  triggered_ = true;
  if (options_.max_tokens > 0) inner_->set_max_tokens(options_.max_tokens - generated_);
  std::string rest = seen_.substr(p + trigger_.size());
  if (!rest.empty()) inner_->feed_text(rest);
}

bool DeferredConstraint::complete() const { return triggered_ && inner_->complete(); }

void ForbidTokensConstraint::mask(std::span<float> logits) {
  for (int32_t id : ids_)
    if (id >= 0 && size_t(id) < logits.size()) logits[size_t(id)] = kNegInf;
}

ReasoningBudgetConstraint::ReasoningBudgetConstraint(int64_t budget, std::shared_ptr<TokenConstraint> inner,
                                                     std::shared_ptr<const VocabIndex> vocab)
    : budget_(budget), inner_(std::move(inner)), vocab_(std::move(vocab)) {
  if (auto it = vocab_->by_bytes.find("</think>"); it != vocab_->by_bytes.end()) think_end_ = it->second;
}

void ReasoningBudgetConstraint::mask(std::span<float> logits) {
  if (!closed_ && think_end_ >= 0 && used_ >= budget_ && size_t(think_end_) < logits.size()) {
    for (size_t i = 0; i < logits.size(); ++i)
      if (int32_t(i) != think_end_) logits[i] = -std::numeric_limits<float>::infinity();
    if (!std::isfinite(logits[size_t(think_end_)])) logits[size_t(think_end_)] = 0.0f;
    return;
  }
  if (inner_) inner_->mask(logits);
}

void ReasoningBudgetConstraint::accept(int32_t token) {
  if (!closed_) {
    ++used_;
    if (token >= 0 && token < vocab_->vocab_size) tail_ += vocab_->bytes[size_t(token)];
    if (tail_.find("</think>") != std::string::npos || tail_.find("<｜tool▁calls▁begin｜>") != std::string::npos) closed_ = true;
    if (tail_.size() > 64) tail_.erase(0, tail_.size() - 64);
  }
  if (inner_) inner_->accept(token);
}

}  // namespace baleine::agent
