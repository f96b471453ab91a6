#include "agent/matcher.h"

#include <algorithm>
#include <cstring>

namespace baleine::agent {

namespace {

constexpr int64_t kDead = int64_t(1) << 50;

// Phases; 0 is "value not started yet" for every kind.
constexpr uint32_t kPending = 0;
constexpr uint32_t O_FIRST = 1, O_NEXT_KEY = 2, O_COLON = 3, O_AFTER_VALUE = 4, O_DONE = 5;
constexpr uint32_t A_FIRST = 1, A_AFTER = 2, A_NEXT = 3, A_DONE = 4;
constexpr uint32_t S_BODY = 1, S_ESC = 2, S_U0 = 3, S_U1 = 4, S_U2 = 5, S_U3 = 6, S_DONE = 7;
constexpr uint32_t N_MINUS = 1, N_ZERO = 2, N_INT = 3, N_DOT = 4, N_FRAC = 5, N_E = 6, N_ESIGN = 7, N_EXP = 8;
constexpr uint32_t L_STARTED = 1;
constexpr uint32_t kGenericKey = 0xffffffffu;

// The key of an object with generic keys is an ordinary JSON string.
const GrammarNode& key_string_node() {
  static const GrammarNode n = [] {
    GrammarNode k;
    k.kind = GrammarNodeKind::String;
    k.min_len = 2;
    return k;
  }();
  return n;
}

bool is_ws(uint8_t b) { return b == ' ' || b == '\n' || b == '\t'; }
bool is_digit(uint8_t b) { return b >= '0' && b <= '9'; }
bool is_hex(uint8_t b) { return is_digit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F'); }
bool number_accepting(uint32_t phase) { return phase == N_ZERO || phase == N_INT || phase == N_FRAC || phase == N_EXP; }

// UTF-8 expectation packed in MatchFrame::count: bytes still needed | lowest allowed next byte << 8 | highest << 16.
uint32_t utf8_expect(uint32_t need, uint32_t lo, uint32_t hi) { return need | lo << 8 | hi << 16; }

bool frame_done(const MatchFrame& f) {
  const GrammarNode& n = *f.node;
  switch (n.kind) {
    case GrammarNodeKind::Literal: return f.phase == L_STARTED && f.count == n.text.size();
    case GrammarNodeKind::Object: return f.phase == O_DONE;
    case GrammarNodeKind::Array: return f.phase == A_DONE;
    case GrammarNodeKind::String: return f.phase == S_DONE;
    case GrammarNodeKind::Seq: return f.phase != kPending && f.phase - 1 == n.children.size();
    default: return false;
  }
}

void normalize(MatchStack& st) {
  while (!st.frames.empty() && frame_done(st.frames.back())) st.frames.pop_back();
}

const GrammarNode* object_value(const GrammarNode& n, uint32_t key) {
  return key == kGenericKey ? n.generic_value : n.values[key];
}

bool object_can_add_key(const GrammarNode& n, uint64_t seen) {
  if (n.generic_value) return true;
  for (size_t i = 0; i < n.keys.size(); ++i)
    if (!(seen >> i & 1)) return true;
  return false;
}

}  // namespace

GrammarMatcher::GrammarMatcher(const Grammar& g, const LiteralCost& cost) : g_(g) {
  lit_cost_.resize(g.size());
  for (size_t id = 0; id < g.size(); ++id) {
    const GrammarNode& n = g.node(id);
    if (n.kind != GrammarNodeKind::Literal) continue;
    if (cost) {
      lit_cost_[id] = cost(n.text);
    } else {
      lit_cost_[id].resize(n.text.size() + 1);
      for (size_t p = 0; p <= n.text.size(); ++p) lit_cost_[id][p] = int64_t(n.text.size() - p);
    }
  }
  min_ = grammar_min_lengths(g, [&](const GrammarNode& n) { return lit_cost_[n.id][0]; });
}

MatchState GrammarMatcher::initial() const {
  MatchState s;
  s.stacks.resize(1);
  s.stacks[0].frames.push_back({g_.root, kPending, 0, 0});
  s.n = 1;
  return s;
}

void GrammarMatcher::push_out(MatchState& out, MatchStack&& st) const {
  for (size_t i = 0; i < out.n; ++i)
    if (out.stacks[i] == st) return;
  if (out.n < out.stacks.size()) out.stacks[out.n] = std::move(st);
  else out.stacks.push_back(std::move(st));
  ++out.n;
}

bool GrammarMatcher::step(const MatchState& in, uint8_t b, MatchState& out, bool literal_only) const {
  out.n = 0;
  for (size_t i = 0; i < in.n; ++i) step_stack(in.stacks[i], b, out, literal_only, 0);
  return out.n > 0;
}

bool GrammarMatcher::feed(MatchState& s, std::string_view bytes, bool literal_only) const {
  MatchState tmp;
  for (char c : bytes) {
    if (!step(s, uint8_t(c), tmp, literal_only)) {
      s.n = 0;
      return false;
    }
    std::swap(s, tmp);
  }
  return true;
}

// Advances one alternative by byte b, adding the resulting stacks (zero, one, or several) to `out`.
void GrammarMatcher::step_stack(MatchStack st, uint8_t b, MatchState& out, bool lit_only, int depth) const {
  if (depth > 256) return;
  const bool ws = is_ws(b);
  auto take = [&](MatchStack& s) {  // b consumed by s's top frame
    if (!ws) s.ws = 0;
    normalize(s);
    push_out(out, std::move(s));
  };
  auto take_ws = [&](MatchStack& s) {  // b is structural whitespace
    if (lit_only || s.ws >= kMaxWhitespace) return;
    ++s.ws;
    push_out(out, std::move(s));
  };
  auto push = [&](MatchStack& s, const GrammarNode* node, uint32_t phase, uint32_t count) {
    if (s.frames.size() >= kMaxDepth) return false;
    s.frames.push_back({node, phase, count, 0});
    return true;
  };
  if (st.frames.empty()) return;
  MatchFrame& f = st.frames.back();
  const GrammarNode& n = *f.node;

  if (f.phase == kPending) {
    if (ws && n.json) return take_ws(st);
    switch (n.kind) {
      case GrammarNodeKind::AnyOf:
        for (const GrammarNode* c : n.children) {
          MatchStack alt = st;
          alt.frames.back() = {c, kPending, 0, 0};
          step_stack(std::move(alt), b, out, lit_only, depth + 1);
        }
        return;
      case GrammarNodeKind::Literal:
        if (n.text.empty()) {
          st.frames.pop_back();
          normalize(st);
          return step_stack(std::move(st), b, out, lit_only, depth + 1);
        }
        f.phase = L_STARTED;
        f.count = 0;
        break;  // matched below
      case GrammarNodeKind::Seq:
        f.phase = 1;
        if (n.children.empty()) {
          st.frames.pop_back();
          normalize(st);
          return step_stack(std::move(st), b, out, lit_only, depth + 1);
        }
        break;  // first part pushed below
      case GrammarNodeKind::Array:
        f.phase = A_FIRST;
        if (!push(st, n.open, kPending, 0)) return;
        return step_stack(std::move(st), b, out, lit_only, depth + 1);
      case GrammarNodeKind::Object:
        if (lit_only || b != '{') return;
        f.phase = O_FIRST;
        return take(st);
      case GrammarNodeKind::String:
        if (lit_only || b != '"') return;
        f.phase = S_BODY;
        f.count = 0;
        return take(st);
      case GrammarNodeKind::Number:
      case GrammarNodeKind::Integer:
        if (lit_only) return;
        if (b == '-') f.phase = N_MINUS;
        else if (b == '0') f.phase = N_ZERO;
        else if (b >= '1' && b <= '9') f.phase = N_INT;
        else return;
        f.count = 1;
        return take(st);
    }
  }

  switch (n.kind) {
    case GrammarNodeKind::Literal:
      if (f.count < n.text.size() && uint8_t(n.text[f.count]) == b) {
        ++f.count;
        take(st);
      }
      return;
    case GrammarNodeKind::Seq: {
      const uint32_t idx = f.phase - 1;
      if (idx >= n.children.size()) return;
      ++f.phase;
      if (!push(st, n.children[idx], kPending, 0)) return;
      return step_stack(std::move(st), b, out, lit_only, depth + 1);
    }
    case GrammarNodeKind::Array: {
      const bool json_ws = ws && n.json;
      const int64_t c = f.count;
      if (f.phase == A_FIRST || f.phase == A_AFTER) {
        if (json_ws) return take_ws(st);
        const bool first = f.phase == A_FIRST;
        if (first ? n.min_items == 0 : c >= n.min_items) {  // close
          MatchStack s = st;
          s.frames.back().phase = A_DONE;
          if (push(s, n.close, kPending, 0)) step_stack(std::move(s), b, out, lit_only, depth + 1);
        }
        if (first ? n.max_items != 0 : (n.max_items < 0 || c < n.max_items)) {
          MatchStack s = std::move(st);
          MatchFrame& sf = s.frames.back();
          if (first) {
            sf.phase = A_AFTER;
            sf.count = 1;
            if (push(s, n.items, kPending, 0)) step_stack(std::move(s), b, out, lit_only, depth + 1);
          } else {
            sf.phase = A_NEXT;
            if (push(s, n.sep, kPending, 0)) step_stack(std::move(s), b, out, lit_only, depth + 1);
          }
        }
        return;
      }
      if (f.phase == A_NEXT) {
        f.phase = A_AFTER;
        ++f.count;
        if (!push(st, n.items, kPending, 0)) return;
        return step_stack(std::move(st), b, out, lit_only, depth + 1);
      }
      return;
    }
    case GrammarNodeKind::Object: {
      if (lit_only) return;
      if (ws) {
        if (f.phase != O_DONE) take_ws(st);
        return;
      }
      const bool all_required = (n.required & ~f.seen) == 0;
      switch (f.phase) {
        case O_FIRST:
        case O_NEXT_KEY:
          if (b == '}' && f.phase == O_FIRST && all_required) {
            f.phase = O_DONE;
            return take(st);
          }
          if (b != '"') return;
          if (n.generic_value) {
            f.phase = O_COLON;
            f.count = kGenericKey;
            if (push(st, &key_string_node(), S_BODY, 0)) take(st);
            return;
          }
          for (size_t i = 0; i < n.keys.size(); ++i) {
            if (f.seen >> i & 1) continue;
            MatchStack s = st;
            MatchFrame& sf = s.frames.back();
            sf.phase = O_COLON;
            sf.count = uint32_t(i);
            sf.seen |= uint64_t(1) << i;
            if (push(s, n.key_nodes[i], L_STARTED, 1)) take(s);
          }
          return;
        case O_COLON:
          if (b != ':') return;
          f.phase = O_AFTER_VALUE;
          if (push(st, object_value(n, f.count), kPending, 0)) take(st);
          return;
        case O_AFTER_VALUE:
          if (b == ',' && object_can_add_key(n, f.seen)) {
            f.phase = O_NEXT_KEY;
            return take(st);
          }
          if (b == '}' && all_required) {
            f.phase = O_DONE;
            return take(st);
          }
          return;
        default: return;
      }
    }
    case GrammarNodeKind::String: {
      if (lit_only) return;
      if (f.phase == S_BODY) {
        const uint32_t need = f.count & 0xff;
        if (need > 0) {
          if (b < ((f.count >> 8) & 0xff) || b > ((f.count >> 16) & 0xff)) return;
          f.count = need == 1 ? 0 : utf8_expect(need - 1, 0x80, 0xbf);
        } else if (b == '"') {
          f.phase = S_DONE;
        } else if (b == '\\') {
          f.phase = S_ESC;
        } else if (b < 0x20) {
          return;
        } else if (b < 0x80) {
        } else if (b >= 0xc2 && b <= 0xdf) {
          f.count = utf8_expect(1, 0x80, 0xbf);
        } else if (b == 0xe0) {
          f.count = utf8_expect(2, 0xa0, 0xbf);
        } else if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) {
          f.count = utf8_expect(2, 0x80, 0xbf);
        } else if (b == 0xed) {
          f.count = utf8_expect(2, 0x80, 0x9f);
        } else if (b == 0xf0) {
          f.count = utf8_expect(3, 0x90, 0xbf);
        } else if (b >= 0xf1 && b <= 0xf3) {
          f.count = utf8_expect(3, 0x80, 0xbf);
        } else if (b == 0xf4) {
          f.count = utf8_expect(3, 0x80, 0x8f);
        } else {
          return;
        }
        st.ws = 0;
        normalize(st);
        return push_out(out, std::move(st));
      }
      if (f.phase == S_ESC) {
        if (b == 'u') f.phase = S_U0;
        else if (std::strchr("\"\\/bfnrt", b) && b != 0) f.phase = S_BODY;
        else return;
        return take(st);
      }
      if (f.phase >= S_U0 && f.phase <= S_U3) {
        // No \uD800-\uDFFF: a lone surrogate is legal JSON but not a character.
        if (!is_hex(b) || (f.phase == S_U0 && (b == 'd' || b == 'D'))) return;
        f.phase = f.phase == S_U3 ? S_BODY : f.phase + 1;
        return take(st);
      }
      return;
    }
    case GrammarNodeKind::Number:
    case GrammarNodeKind::Integer: {
      const bool integer = n.kind == GrammarNodeKind::Integer;
      uint32_t next = 0;
      // The length limit only stops accepting numbers from growing, so a started exponent can always finish.
      const uint32_t max_len = integer ? kMaxIntegerLen : kMaxNumberLen;
      if (!lit_only && (f.count < max_len || !number_accepting(f.phase))) {
        switch (f.phase) {
          case N_MINUS: next = b == '0' ? N_ZERO : (b >= '1' && b <= '9') ? N_INT : 0; break;
          case N_ZERO:
          case N_INT:
            if (f.phase == N_INT && is_digit(b)) next = N_INT;
            else if (!integer && b == '.') next = N_DOT;
            else if (!integer && (b == 'e' || b == 'E')) next = N_E;
            break;
          case N_DOT: next = is_digit(b) ? N_FRAC : 0; break;
          case N_FRAC: next = is_digit(b) ? N_FRAC : (b == 'e' || b == 'E') ? N_E : 0; break;
          case N_E: next = (b == '+' || b == '-') ? N_ESIGN : is_digit(b) ? N_EXP : 0; break;
          case N_ESIGN: next = is_digit(b) ? N_EXP : 0; break;
          case N_EXP: next = is_digit(b) && f.seen < 2 ? N_EXP : 0; break;
          default: break;
        }
      }
      if (next) {
        if (next == N_EXP) ++f.seen;
        f.phase = next;
        ++f.count;
        return take(st);
      }
      if (!number_accepting(f.phase)) return;
      st.frames.pop_back();  // the number ends here; b belongs to what follows
      normalize(st);
      return step_stack(std::move(st), b, out, lit_only, depth + 1);
    }
    case GrammarNodeKind::AnyOf: return;  // replaced by an alternative when the value starts
  }
}

bool GrammarMatcher::accepting(const MatchState& s) const {
  for (size_t i = 0; i < s.n; ++i)
    if (stack_remaining(s.stacks[i]) == 0) return true;
  return false;
}

bool GrammarMatcher::in_plain_string(const MatchState& s) const {
  for (size_t i = 0; i < s.n; ++i) {
    const MatchStack& st = s.stacks[i];
    if (st.frames.empty() || st.ws != 0) return false;
    const MatchFrame& f = st.frames.back();
    if (f.node->kind != GrammarNodeKind::String || f.phase != S_BODY || (f.count & 0xff) != 0) return false;
  }
  return s.n > 0;
}

bool GrammarMatcher::can_continue(const MatchState& s) const {
  for (size_t i = 0; i < s.n; ++i)
    if (!s.stacks[i].frames.empty()) return true;
  return false;
}

int64_t GrammarMatcher::min_remaining(const MatchState& s) const {
  int64_t best = kDead;
  for (size_t i = 0; i < s.n; ++i) best = std::min(best, stack_remaining(s.stacks[i]));
  return best;
}

int64_t GrammarMatcher::stack_remaining(const MatchStack& st) const {
  int64_t r = 0;
  for (const auto& f : st.frames) r += frame_remaining(f);
  return r;
}

// Bytes an object needs after a value (or before its first key) to close: every missing required key, each
// preceded by a comma, then '}'.
int64_t GrammarMatcher::object_rest(const GrammarNode& n, uint64_t seen) const {
  int64_t r = 1;
  for (size_t i = 0; i < n.keys.size(); ++i)
    if ((n.required >> i & 1) && !(seen >> i & 1)) r += 1 + mn(n.key_nodes[i]) + 1 + mn(n.values[i]);
  return r;
}

int64_t GrammarMatcher::frame_remaining(const MatchFrame& f) const {
  const GrammarNode& n = *f.node;
  if (f.phase == kPending) return mn(&n);
  switch (n.kind) {
    case GrammarNodeKind::Literal: return lit_cost_[n.id][f.count];
    case GrammarNodeKind::Seq: {
      int64_t r = 0;
      for (size_t i = f.phase - 1; i < n.children.size(); ++i) r += mn(n.children[i]);
      return r;
    }
    case GrammarNodeKind::Array: {
      const int64_t item = mn(n.sep) + mn(n.items);
      const int64_t close = mn(n.close);
      switch (f.phase) {
        case A_FIRST: return n.min_items == 0 ? close : mn(n.items) + (n.min_items - 1) * item + close;
        case A_AFTER: return std::max<int64_t>(0, n.min_items - f.count) * item + close;
        case A_NEXT: return mn(n.items) + std::max<int64_t>(0, n.min_items - f.count - 1) * item + close;
        default: return 0;
      }
    }
    case GrammarNodeKind::Object: {
      const bool missing = (n.required & ~f.seen) != 0;
      switch (f.phase) {
        case O_FIRST: return missing ? object_rest(n, f.seen) - 1 : 1;  // no comma before the first key
        case O_NEXT_KEY: {
          if (missing) return object_rest(n, f.seen) - 1;
          int64_t best = n.generic_value ? 2 + 1 + mn(n.generic_value) : kDead;
          for (size_t i = 0; i < n.keys.size(); ++i)
            if (!(f.seen >> i & 1)) best = std::min(best, mn(n.key_nodes[i]) + 1 + mn(n.values[i]));
          return best + 1;
        }
        case O_COLON: return 1 + mn(object_value(n, f.count)) + object_rest(n, f.seen);
        case O_AFTER_VALUE: return object_rest(n, f.seen);
        default: return 0;
      }
    }
    case GrammarNodeKind::String:
      switch (f.phase) {
        case S_BODY: return 1 + (f.count & 0xff);
        case S_ESC: return 2;
        case S_DONE: return 0;
        default: return int64_t(S_U3 - f.phase) + 2;
      }
    case GrammarNodeKind::Number:
    case GrammarNodeKind::Integer: return number_accepting(f.phase) ? 0 : 1;
    case GrammarNodeKind::AnyOf: return mn(&n);
  }
  return 0;
}

void GrammarMatcher::key(const MatchState& s, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.n; ++i) {
    const MatchStack& st = s.stacks[i];
    out.append(reinterpret_cast<const char*>(&st.ws), sizeof st.ws);
    for (const auto& f : st.frames) {
      out.append(reinterpret_cast<const char*>(&f.node), sizeof f.node);
      out.append(reinterpret_cast<const char*>(&f.phase), sizeof f.phase);
      out.append(reinterpret_cast<const char*>(&f.count), sizeof f.count);
      out.append(reinterpret_cast<const char*>(&f.seen), sizeof f.seen);
    }
    out.push_back('|');
  }
}

}  // namespace baleine::agent
