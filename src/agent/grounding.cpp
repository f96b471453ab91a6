// agent/grounding.cpp — grounded quotes (see grounding.h).
#include "agent/grounding.h"

#include <algorithm>
#include <cctype>
#include <limits>

#include <nlohmann/json.hpp>

namespace baleine::agent {

using json = nlohmann::json;

namespace {
bool word_byte(uint8_t c) { return std::isalnum(c) || c >= 0x80; }
// Transitions are kept sorted by byte: the one on `byte`, or kNone.
int32_t find_next(const std::vector<std::pair<uint8_t, int32_t>>& n, uint8_t byte) {
  auto it = std::lower_bound(n.begin(), n.end(), byte, [](const auto& e, uint8_t b) { return e.first < b; });
  return it != n.end() && it->first == byte ? it->second : SpanIndex::kNone;
}
void set_next(std::vector<std::pair<uint8_t, int32_t>>& n, uint8_t byte, int32_t to) {
  auto it = std::lower_bound(n.begin(), n.end(), byte, [](const auto& e, uint8_t b) { return e.first < b; });
  if (it != n.end() && it->first == byte) it->second = to;
  else n.insert(it, {byte, to});
}
}  // namespace

SubstringIndex::SubstringIndex(const std::vector<std::string>& texts) {
  states_.emplace_back();  // the root
  for (const auto& t : texts)
    for (int pass = 0; pass < 2; ++pass) {
      int32_t last = kRoot;
      for (unsigned char c : t) last = extend(last, pass == 0 ? c : uint8_t(std::tolower(c)));
    }
}

int32_t SubstringIndex::find(int32_t state, uint8_t byte) const { return find_next(states_[size_t(state)].next, byte); }

void SubstringIndex::set(int32_t state, uint8_t byte, int32_t to) { set_next(states_[size_t(state)].next, byte, to); }

// The generalised suffix-automaton extension (a text restarts from the root; an existing transition is reused,
// split by a clone when it is not solid).
int32_t SubstringIndex::extend(int32_t last, uint8_t c) {
  auto clone_of = [&](int32_t p, int32_t q) {
    const int32_t clone = int32_t(states_.size());
    State s = states_[size_t(q)];
    s.len = states_[size_t(p)].len + 1;
    states_.push_back(std::move(s));
    while (p != kNone && find(p, c) == q) {
      set(p, c, clone);
      p = states_[size_t(p)].link;
    }
    states_[size_t(q)].link = clone;
    return clone;
  };
  if (const int32_t q = find(last, c); q != kNone) {
    if (states_[size_t(last)].len + 1 == states_[size_t(q)].len) return q;
    return clone_of(last, q);
  }
  const int32_t cur = int32_t(states_.size());
  states_.emplace_back();
  states_[size_t(cur)].len = states_[size_t(last)].len + 1;
  int32_t p = last;
  while (p != kNone && find(p, c) == kNone) {
    set(p, c, cur);
    p = states_[size_t(p)].link;
  }
  if (p == kNone) {
    states_[size_t(cur)].link = kRoot;
  } else {
    const int32_t q = find(p, c);
    if (states_[size_t(p)].len + 1 == states_[size_t(q)].len) {
      states_[size_t(cur)].link = q;
    } else {
      const int32_t clone = clone_of(p, q);
      states_[size_t(cur)].link = clone;
    }
  }
  return cur;
}

int32_t SubstringIndex::step(int32_t state, uint8_t byte) const { return state == kNone ? kNone : find(state, byte); }

bool SpanIndex::contains(std::string_view s) const {
  int32_t at = kRoot;
  for (unsigned char c : s)
    if ((at = step(at, c)) == kNone) return false;
  return can_close(at);
}

WordSpanIndex::WordSpanIndex(const std::vector<std::string>& texts, size_t max_bytes) {
  nodes_.emplace_back();
  for (const auto& original : texts)
    for (int pass = 0; pass < 2; ++pass) {
      std::string t = original;
      if (pass == 1)
        for (char& ch : t) ch = char(std::tolower(uint8_t(ch)));
      for (size_t i = 0; i < t.size(); ++i) {
        if (!word_byte(uint8_t(t[i])) || (i > 0 && word_byte(uint8_t(t[i - 1])))) continue;  // not a word start
        int32_t at = kRoot;
        for (size_t j = i; j < t.size() && j - i < max_bytes; ++j) {
          const uint8_t b = uint8_t(t[j]);
          int32_t to = find_next(nodes_[size_t(at)].next, b);
          if (to == kNone) {
            to = int32_t(nodes_.size());
            nodes_.emplace_back();
            set_next(nodes_[size_t(at)].next, b, to);
          }
          at = to;
          // a span may close where the source's word ends: after a word byte that the next byte does not continue
          if (word_byte(b) && (j + 1 == t.size() || !word_byte(uint8_t(t[j + 1])))) nodes_[size_t(at)].word_end = true;
        }
      }
    }
}

int32_t WordSpanIndex::step(int32_t state, uint8_t byte) const {
  return state == kNone ? kNone : find_next(nodes_[size_t(state)].next, byte);
}

bool WordSpanIndex::can_close(int32_t state) const { return state != kNone && state != kRoot && nodes_[size_t(state)].word_end; }

GroundedQuoteConstraint::GroundedQuoteConstraint(std::shared_ptr<const SpanIndex> sources,
                                                 std::shared_ptr<const VocabIndex> vocab)
    : sources_(std::move(sources)), vocab_(std::move(vocab)) {
  has_quote_.resize(size_t(vocab_->vocab_size));
  for (size_t id = 0; id < has_quote_.size(); ++id)
    has_quote_[id] = vocab_->bytes[id].find('"') != std::string::npos;
}

bool GroundedQuoteConstraint::advance(State& s, std::string_view bytes) const {
  if (s.off) return true;
  for (unsigned char b : bytes) {
    if (!s.in_quote) {
      if (b == '"') s = State{true, false, SpanIndex::kRoot, 0};
    } else if (b == '"') {
      if (s.quoted == 0 || !sources_->can_close(s.at)) return false;  // empty, or not a span the sources end here
      s.in_quote = false;
    } else {
      s.at = sources_->step(s.at, b);
      if (s.at == SpanIndex::kNone) return false;
      ++s.quoted;
    }
  }
  return true;
}

void GroundedQuoteConstraint::mask(std::span<float> logits) {
  if (state_.off) return;
  const float off = -std::numeric_limits<float>::infinity();
  const size_t n = std::min(logits.size(), has_quote_.size());
  for (size_t id = 0; id < n; ++id) {
    if (vocab_->special[id] || (!state_.in_quote && !has_quote_[id])) continue;  // free
    State s = state_;
    if (!advance(s, vocab_->bytes[id])) logits[id] = off;
  }
}

void GroundedQuoteConstraint::accept(int32_t token) {
  if (state_.off || token < 0 || size_t(token) >= has_quote_.size()) return;
  const std::string& b = vocab_->bytes[size_t(token)];
  if (vocab_->special[size_t(token)]) {
    // </think> and the like end any open quote; a tool-call marker starts JSON arguments, free from here on.
    state_.in_quote = false;
    if (b.find("tool") != std::string::npos) state_.off = true;
    return;
  }
  State s = state_;
  if (advance(s, b)) state_ = s;
  else state_.in_quote = false;  // a token outside the mask (the caller forced it): stop tracking this quote
}

void AllOfConstraint::mask(std::span<float> logits) {
  for (auto& p : parts_)
    if (p) p->mask(logits);
}

void AllOfConstraint::accept(int32_t token) {
  for (auto& p : parts_)
    if (p) p->accept(token);
}

bool AllOfConstraint::complete() const {
  for (const auto& p : parts_)
    if (p) return p->complete();
  return false;
}

namespace {
void collect_strings(const json& j, std::vector<std::string>& out) {
  if (j.is_string()) out.push_back(j.get<std::string>());
  else if (j.is_array() || j.is_object())
    for (const auto& v : j) collect_strings(v, out);
}
}  // namespace

std::vector<std::string> grounding_sources(const std::vector<ChatMessage>& conversation) {
  std::vector<std::string> out;
  bool passages = false;
  for (const auto& m : conversation) {
    if (m.role == "user") {
      out.push_back(m.content);
    } else if (m.role == "tool") {
      const json j = json::parse(m.content, nullptr, false);
      if (j.is_discarded()) {  // a tool result cut to size: its text as is
        if (m.content.find("\"passages\":[{") != std::string::npos) passages = true;
        out.push_back(m.content);
        continue;
      }
      if (j.is_object() && j.contains("passages") && j["passages"].is_array() && !j["passages"].empty()) passages = true;
      collect_strings(j, out);
    }
  }
  if (!passages) out.clear();
  return out;
}

}  // namespace baleine::agent
