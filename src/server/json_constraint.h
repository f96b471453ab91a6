// server/json_constraint.h — JSON mode (response_format json_object): a TokenConstraint that lets the model emit
// only tokens whose bytes keep the text a valid prefix of one JSON object, and reports completion at its closing
// brace. Works over the tokenizer's token bytes, so any vocabulary (byte-level BPE) is covered.
// defines: JsonPrefixValidator, JsonTokenTable, JsonObjectConstraint
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "infer/engine.h"
#include "tokenizer/tokenizer.h"

namespace baleine::server {

// An incremental RFC 8259 validator: push() bytes one by one; it refuses the first byte that cannot continue a
// valid JSON text. Strings must be valid UTF-8 without raw control characters. Cheap to copy (the constraint
// copies it to try each token).
class JsonPrefixValidator {
 public:
  // object_only: the top-level value must be an object (json_object mode). max_whitespace: longest run of
  // whitespace outside strings (keeps a sampled model from looping on blanks).
  explicit JsonPrefixValidator(bool object_only = true, int max_whitespace = 32)
      : object_only_(object_only), max_ws_(max_whitespace) {}
  bool push(unsigned char c);
  bool push(std::string_view bytes);  // all or nothing is not promised: stops at the first refused byte
  bool complete() const { return state_ == State::Done; }
  // The shortest bytes that complete the document from here ("" when complete).
  std::string closing() const;
  int64_t depth() const { return int64_t(stack_.size()); }

 private:
  enum class State : uint8_t {
    Value, ArrayFirst, ObjectFirst, ObjectKey, Colon, AfterValue, String, Escape, Unicode, Utf8, Number, Literal, Done
  };
  enum class Num : uint8_t { Minus, Zero, Int, Dot, Frac, Exp, ExpSign, ExpInt };
  bool end_value();            // a value just ended: decide what comes next
  bool number_can_end() const;
  bool whitespace(unsigned char c);

  bool object_only_;
  int max_ws_;
  int ws_run_ = 0;
  State state_ = State::Value;
  std::string stack_;           // '{' or '[' per open container
  bool in_key_ = false;         // the current string is an object key
  Num num_ = Num::Minus;
  uint8_t need_ = 0;            // Unicode: hex digits left; Utf8: continuation bytes left
  uint8_t lo_ = 0x80, hi_ = 0xBF;  // Utf8: the allowed range of the next continuation byte
  const char* literal_ = nullptr;  // Literal: the rest of true/false/null to match
};

// Token bytes of a vocabulary, built once per tokenizer and shared by every JSON-mode request.
struct JsonTokenTable {
  explicit JsonTokenTable(const Tokenizer& tok);
  std::vector<std::string> bytes;  // empty for special tokens (never allowed)
  int32_t eos = -1;
  int64_t max_len = 0;             // longest token, in bytes
};

class JsonObjectConstraint : public TokenConstraint {
 public:
  // budget: the request's max_tokens (0: unbounded); the object is closed within it.
  explicit JsonObjectConstraint(std::shared_ptr<const JsonTokenTable> table, int64_t budget = 0)
      : table_(std::move(table)), budget_(budget) {}
  void mask(std::span<float> logits) override;
  void accept(int32_t token) override;
  bool complete() const override { return state_.complete(); }
  const std::string& text() const { return text_; }

 private:
  std::shared_ptr<const JsonTokenTable> table_;
  JsonPrefixValidator state_;
  std::string text_;
  int64_t budget_ = 0, accepted_ = 0;
};

}  // namespace baleine::server
