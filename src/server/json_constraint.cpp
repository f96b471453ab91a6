#include "server/json_constraint.h"

#include <algorithm>
#include <limits>

namespace baleine::server {

bool JsonPrefixValidator::whitespace(unsigned char c) {
  if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
  return ++ws_run_ <= max_ws_;
}

bool JsonPrefixValidator::number_can_end() const {
  return num_ == Num::Zero || num_ == Num::Int || num_ == Num::Frac || num_ == Num::ExpInt;
}

bool JsonPrefixValidator::end_value() {
  state_ = stack_.empty() ? State::Done : State::AfterValue;
  return true;
}

bool JsonPrefixValidator::push(std::string_view bytes) {
  for (char c : bytes)
    if (!push(static_cast<unsigned char>(c))) return false;
  return true;
}

bool JsonPrefixValidator::push(unsigned char c) {
  const bool ws = c == ' ' || c == '\t' || c == '\n' || c == '\r';
  if (!ws) ws_run_ = 0;
  switch (state_) {
    case State::Done: return ws && whitespace(c);  // one value (trailing blanks allowed), nothing else
    case State::Value:
      if (ws) return whitespace(c);
      if (object_only_ && stack_.empty() && c != '{') return false;
      switch (c) {
        case '{': stack_ += '{'; state_ = State::ObjectFirst; return true;
        case '[': stack_ += '['; state_ = State::ArrayFirst; return true;
        case '"': state_ = State::String; in_key_ = false; return true;
        case '-': state_ = State::Number; num_ = Num::Minus; return true;
        case 't': state_ = State::Literal; literal_ = "rue"; return true;
        case 'f': state_ = State::Literal; literal_ = "alse"; return true;
        case 'n': state_ = State::Literal; literal_ = "ull"; return true;
        default:
          if (c >= '0' && c <= '9') { state_ = State::Number; num_ = c == '0' ? Num::Zero : Num::Int; return true; }
          return false;
      }
    case State::ArrayFirst:
      if (ws) return whitespace(c);
      if (c == ']') { stack_.pop_back(); return end_value(); }
      state_ = State::Value;
      return push(c);
    case State::ObjectFirst:
      if (ws) return whitespace(c);
      if (c == '}') { stack_.pop_back(); return end_value(); }
      if (c == '"') { state_ = State::String; in_key_ = true; return true; }
      return false;
    case State::ObjectKey:
      if (ws) return whitespace(c);
      if (c == '"') { state_ = State::String; in_key_ = true; return true; }
      return false;
    case State::Colon:
      if (ws) return whitespace(c);
      if (c == ':') { state_ = State::Value; return true; }
      return false;
    case State::AfterValue:
      if (ws) return whitespace(c);
      if (c == ',') {
        state_ = stack_.back() == '{' ? State::ObjectKey : State::Value;
        return true;
      }
      if ((c == '}' && stack_.back() == '{') || (c == ']' && stack_.back() == '[')) {
        stack_.pop_back();
        return end_value();
      }
      return false;
    case State::String:
      if (c == '"') {
        if (in_key_) { state_ = State::Colon; return true; }
        return end_value();
      }
      if (c == '\\') { state_ = State::Escape; return true; }
      if (c < 0x20 || c == 0x7F) return false;  // raw control characters are not allowed in JSON strings
      if (c < 0x80) return true;
      // UTF-8 lead byte: the ranges of RFC 3629 (no overlongs, no surrogates, nothing past U+10FFFF).
      if (c >= 0xC2 && c <= 0xDF) { need_ = 1; lo_ = 0x80; hi_ = 0xBF; }
      else if (c == 0xE0) { need_ = 2; lo_ = 0xA0; hi_ = 0xBF; }
      else if (c == 0xED) { need_ = 2; lo_ = 0x80; hi_ = 0x9F; }
      else if (c >= 0xE1 && c <= 0xEF) { need_ = 2; lo_ = 0x80; hi_ = 0xBF; }
      else if (c == 0xF0) { need_ = 3; lo_ = 0x90; hi_ = 0xBF; }
      else if (c >= 0xF1 && c <= 0xF3) { need_ = 3; lo_ = 0x80; hi_ = 0xBF; }
      else if (c == 0xF4) { need_ = 3; lo_ = 0x80; hi_ = 0x8F; }
      else return false;
      state_ = State::Utf8;
      return true;
    case State::Utf8:
      if (c < lo_ || c > hi_) return false;
      lo_ = 0x80; hi_ = 0xBF;
      if (--need_ == 0) state_ = State::String;
      return true;
    case State::Escape:
      if (c == 'u') { state_ = State::Unicode; need_ = 4; return true; }
      if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
        state_ = State::String;
        return true;
      }
      return false;
    case State::Unicode:
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
      if (--need_ == 0) state_ = State::String;
      return true;
    case State::Literal:
      if (c != static_cast<unsigned char>(*literal_)) return false;
      ++literal_;
      if (*literal_ == '\0') { literal_ = nullptr; return end_value(); }
      return true;
    case State::Number: {
      const bool digit = c >= '0' && c <= '9';
      switch (num_) {
        case Num::Minus:
          if (c == '0') { num_ = Num::Zero; return true; }
          if (digit) { num_ = Num::Int; return true; }
          return false;
        case Num::Zero:
        case Num::Int:
          if (digit && num_ == Num::Int) return true;
          if (c == '.') { num_ = Num::Dot; return true; }
          if (c == 'e' || c == 'E') { num_ = Num::Exp; return true; }
          break;
        case Num::Dot:
          if (digit) { num_ = Num::Frac; return true; }
          return false;
        case Num::Frac:
          if (digit) return true;
          if (c == 'e' || c == 'E') { num_ = Num::Exp; return true; }
          break;
        case Num::Exp:
          if (c == '+' || c == '-') { num_ = Num::ExpSign; return true; }
          if (digit) { num_ = Num::ExpInt; return true; }
          return false;
        case Num::ExpSign:
          if (digit) { num_ = Num::ExpInt; return true; }
          return false;
        case Num::ExpInt:
          if (digit) return true;
          break;
      }
      // The number ends here; a bare top-level number cannot be terminated, so it is never complete.
      if (!number_can_end() || stack_.empty()) return false;
      state_ = State::AfterValue;
      return push(c);
    }
  }
  return false;
}

std::string JsonPrefixValidator::closing() const {
  JsonPrefixValidator v = *this;
  std::string out;
  auto add = [&](std::string_view s) {
    for (char c : s) {
      v.push(static_cast<unsigned char>(c));
      out += c;
    }
  };
  v.ws_run_ = 0;
  for (int guard = 0; guard < 1 << 20 && v.state_ != State::Done; ++guard) {
    switch (v.state_) {
      case State::Utf8: add(std::string(1, char(v.lo_))); break;
      case State::Escape: add("n"); break;
      case State::Unicode: add("0"); break;
      case State::String: add(v.in_key_ ? "\":0" : "\""); break;
      case State::Number:
        if (v.number_can_end() && v.stack_.empty()) return out;  // a bare top-level number never completes
        add(v.number_can_end() ? (v.stack_.back() == '{' ? "}" : "]") : "0");
        break;
      case State::Literal: add(v.literal_); break;
      case State::Value: add(v.stack_.empty() ? "{}" : "0"); break;
      case State::ArrayFirst: add("]"); break;
      case State::ObjectFirst: add("}"); break;
      case State::ObjectKey: add("\"\":0"); break;
      case State::Colon: add(":0"); break;
      case State::AfterValue: add(v.stack_.back() == '{' ? "}" : "]"); break;
      case State::Done: break;
    }
  }
  return out;
}

JsonTokenTable::JsonTokenTable(const Tokenizer& tok) : eos(tok.eos_id()) {
  const int64_t V = tok.vocab_size();
  bytes.resize(size_t(V));
  for (int64_t i = 0; i < V; ++i)
    if (!tok.is_special(int32_t(i))) {
      bytes[size_t(i)] = tok.token_bytes(int32_t(i));
      max_len = std::max(max_len, int64_t(bytes[size_t(i)].size()));
    }
}

void JsonObjectConstraint::mask(std::span<float> logits) {
  constexpr float kNeg = -std::numeric_limits<float>::infinity();
  bool any = false;
  const size_t n = std::min(logits.size(), table_->bytes.size());
  // Within the token budget: a token is allowed only if the shortest closing text after it still fits in the
  // tokens left, so the object is always complete by the last token (every byte is a token in a byte-level
  // vocabulary, and the first byte of the closing text shortens it by one). One byte changes the closing text by
  // at most 4 bytes, so the check is needed only near the end.
  const int64_t left_after = budget_ - accepted_ - 1;
  const bool near_end = budget_ > 0 && left_after < int64_t(state_.closing().size()) + 4 * table_->max_len + 4;
  for (size_t i = 0; i < logits.size(); ++i) {
    bool ok = false;
    if (i < n && !table_->bytes[i].empty()) {
      JsonPrefixValidator v = state_;
      ok = v.push(table_->bytes[i]) && (!near_end || int64_t(v.closing().size()) <= left_after);
    }
    if (ok) any = true;
    else logits[i] = kNeg;
  }
  // Nothing can continue (cannot happen with a byte-level vocabulary): let the model end rather than sample -inf.
  if (!any && table_->eos >= 0 && size_t(table_->eos) < logits.size()) logits[size_t(table_->eos)] = 0.0f;
}

void JsonObjectConstraint::accept(int32_t token) {
  ++accepted_;
  if (token < 0 || size_t(token) >= table_->bytes.size()) return;
  const std::string& b = table_->bytes[size_t(token)];
  if (state_.push(b)) text_ += b;
}

}  // namespace baleine::server
