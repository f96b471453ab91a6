#include "agent/builtin_tools.h"

#include <cctype>
#include <ctime>
#include <set>

#include "agent/retrieval.h"
#include "core/check.h"

namespace baleine::agent {

using nlohmann::json;

namespace {

// Recursive descent over the expression bytes: expr := term (± term)*; term := unary (×÷ unary)*;
// unary := ± unary | power; power := primary (^ unary)?; primary := number | ( expr ).
class Calculator {
 public:
  Calculator(const std::string& s, const CalculatorLimits& l) : s_(s), l_(l) {}

  Rational run() {
    Rational v = expr(0);
    skip();
    BALEINE_CHECK(i_ == s_.size(), "unexpected '{}' at position {}", s_.substr(i_, 8), i_);
    return v;
  }

 private:
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n')) ++i_;
  }
  // Consumes one of the spellings of an operator.
  bool eat(std::initializer_list<const char*> spellings) {
    skip();
    for (const char* sp : spellings) {
      const std::string_view v(sp);
      if (s_.compare(i_, v.size(), v) == 0) {
        i_ += v.size();
        return true;
      }
    }
    return false;
  }
  const Rational& check(const Rational& v) {
    BALEINE_CHECK(v.digits() <= l_.max_digits, "result too large (more than {} digits)", l_.max_digits);
    return v;
  }
  Rational expr(int depth) {
    BALEINE_CHECK(depth <= l_.max_depth, "expression nested too deeply");
    Rational v = term(depth);
    for (;;) {
      if (eat({"+"})) v = check(v + term(depth));
      else if (eat({"-", "\xe2\x88\x92"})) v = check(v - term(depth));
      else return v;
    }
  }
  Rational term(int depth) {
    Rational v = unary(depth);
    for (;;) {
      skip();
      if (s_.compare(i_, 2, "**") == 0) return v;  // power, handled below unary
      if (eat({"*", "\xc3\x97", "\xc2\xb7"})) v = check(v * unary(depth));
      else if (eat({"/", "\xc3\xb7", ":"})) v = check(v / unary(depth));
      else return v;
    }
  }
  Rational unary(int depth) {
    BALEINE_CHECK(depth <= l_.max_depth, "expression nested too deeply");
    if (eat({"-", "\xe2\x88\x92"})) return -unary(depth + 1);
    if (eat({"+"})) return unary(depth + 1);
    return power(depth);
  }
  Rational power(int depth) {
    Rational base = primary(depth);
    if (!eat({"^", "**"})) return base;
    Rational e = unary(depth + 1);
    BALEINE_CHECK(e.is_integer(), "exponent {} is not an integer (only integer powers are exact)", e.to_string());
    BALEINE_CHECK(e.num().digits() <= 6, "exponent too large");
    const int64_t n = std::stoll(e.num().to_string());
    BALEINE_CHECK(std::llabs(n) <= l_.max_exponent, "exponent {} is larger than {}", n, l_.max_exponent);
    const size_t base_digits = std::max(base.num().digits(), base.den().digits());
    const bool trivial = base.num().abs() == BigInt(1) && base.den() == BigInt(1);
    BALEINE_CHECK(trivial || base.num().is_zero() || (base_digits - 1) * size_t(std::llabs(n)) <= l_.max_digits,
                  "result too large (more than {} digits)", l_.max_digits);
    return check(base.pow(n));
  }
  Rational primary(int depth) {
    skip();
    if (eat({"("})) {
      Rational v = expr(depth + 1);
      BALEINE_CHECK(eat({")"}), "missing ')' at position {}", i_);
      return v;
    }
    size_t start = i_;
    while (i_ < s_.size() && ((s_[i_] >= '0' && s_[i_] <= '9') || s_[i_] == '.' || s_[i_] == '_')) ++i_;
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E') && i_ > start) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    }
    BALEINE_CHECK(i_ > start, "expected a number at position {}{}", start, start < s_.size() ? " ('" + s_.substr(start, 8) + "')" : " (end)");
    std::string text = s_.substr(start, i_ - start);
    std::erase(text, '_');
    BALEINE_CHECK(text.size() <= l_.max_digits, "number too long");
    return check(Rational::parse_decimal(text));
  }

  const std::string& s_;
  const CalculatorLimits& l_;
  size_t i_ = 0;
};

std::string iso8601(std::chrono::system_clock::time_point t, int offset_minutes) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t) + std::time_t(offset_minutes) * 60;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string s = buf;
  if (offset_minutes == 0) return s + "Z";
  const int a = std::abs(offset_minutes);
  char off[16];
  std::snprintf(off, sizeof off, "%c%02d:%02d", offset_minutes < 0 ? '-' : '+', a / 60, a % 60);
  return s + off;
}

}  // namespace

Rational calculate(const std::string& expression, const CalculatorLimits& limits) {
  BALEINE_CHECK(expression.size() <= limits.max_expression_bytes, "expression longer than {} characters", limits.max_expression_bytes);
  Calculator c(expression, limits);
  return c.run();
}

void ToolRegistry::add(RegisteredTool tool) {
  const std::string name = tool.definition.name;
  BALEINE_CHECK(!tools_.count(name), "tool '{}' registered twice", name);
  tools_.emplace(name, std::move(tool));
  order_.push_back(name);
}

const RegisteredTool* ToolRegistry::find(const std::string& name) const {
  auto it = tools_.find(name);
  return it == tools_.end() ? nullptr : &it->second;
}

std::vector<ToolFunction> ToolRegistry::definitions() const {
  std::vector<ToolFunction> out;
  for (const auto& n : order_) out.push_back(tools_.at(n).definition);
  return out;
}

RegisteredTool calculator_tool(CalculatorLimits limits) {
  RegisteredTool t;
  t.definition.name = "calculator";
  t.definition.description = "Exact arithmetic on rational numbers: + - * / ^ and parentheses, e.g. \"(2+3)*7/4\" or \"2^100\".";
  t.definition.parameters = json::parse(R"({"type":"object","properties":{"expression":{"type":"string","description":"the arithmetic expression"}},
      "required":["expression"],"additionalProperties":false})");
  t.definition.strict = true;
  t.timeout = std::chrono::milliseconds(2000);
  t.run = [limits](const json& args) {
    ToolResult r;
    if (!args.is_object() || !args.contains("expression") || !args["expression"].is_string()) {
      r.error = true;
      r.content = {{"error", "missing string argument 'expression'"}};
      return r;
    }
    const std::string e = args["expression"].get<std::string>();
    try {
      Rational v = calculate(e, limits);
      bool exact = false;
      std::string dec = v.to_decimal(30, &exact);
      r.content = {{"expression", e}, {"result", v.to_string()}, {"decimal", dec}, {"decimal_is_exact", exact}};
    } catch (const Error& err) {
      std::string msg = err.what();
      if (msg.rfind('[', 0) == 0 && msg.find("] ") != std::string::npos) msg = msg.substr(msg.find("] ") + 2);
      r.error = true;
      r.content = {{"expression", e}, {"error", msg}};
    }
    return r;
  };
  return t;
}

RegisteredTool datetime_tool(std::function<std::chrono::system_clock::time_point()> now) {
  RegisteredTool t;
  t.definition.name = "current_datetime";
  t.definition.description = "The current date and time (UTC, or shifted by a UTC offset in minutes).";
  t.definition.parameters = json::parse(R"({"type":"object","properties":{"utc_offset_minutes":{"type":"integer"}},"additionalProperties":false})");
  t.definition.strict = true;
  t.timeout = std::chrono::milliseconds(1000);
  if (!now) now = [] { return std::chrono::system_clock::now(); };
  t.run = [now](const json& args) {
    ToolResult r;
    int64_t offset = 0;
    if (args.is_object() && args.contains("utc_offset_minutes") && args["utc_offset_minutes"].is_number_integer())
      offset = args["utc_offset_minutes"].get<int64_t>();
    if (std::llabs(offset) > 14 * 60) {
      r.error = true;
      r.content = {{"error", "utc_offset_minutes must be between -840 and 840"}};
      return r;
    }
    const auto tp = now();
    const std::time_t secs = std::chrono::system_clock::to_time_t(tp) + std::time_t(offset) * 60;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    static const char* kDays[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
    r.content = {{"datetime", iso8601(tp, int(offset))}, {"weekday", kDays[tm.tm_wday]},
                 {"unix_seconds", int64_t(std::chrono::system_clock::to_time_t(tp))}};
    return r;
  };
  return t;
}

namespace {
// A query worth running: holds a word of at least two ASCII letters or digits (or any non-ASCII letters).
bool usable_query(const std::string& q) {
  int run = 0;
  for (unsigned char c : q) {
    run = (std::isalnum(c) || c >= 0x80) ? run + 1 : 0;
    if (run >= 2) return true;
  }
  return false;
}

// The lower-cased words (runs of letters, digits or non-ASCII bytes) of s.
std::set<std::string> query_words(const std::string& s) {
  std::set<std::string> out;
  std::string w;
  for (unsigned char c : s + " ") {
    if (std::isalnum(c) || c >= 0x80) {
      w += char(std::tolower(c));
    } else {
      if (w.size() >= 2) out.insert(w);
      w.clear();
    }
  }
  return out;
}

// True when some word of the model's query occurs in the user's message (or either has no words).
bool shares_a_word(const std::string& query, const std::string& message) {
  const auto q = query_words(query), m = query_words(message);
  if (q.empty() || m.empty()) return true;
  for (const auto& w : q)
    if (m.count(w)) return true;
  return false;
}
}  // namespace

RegisteredTool retrieval_tool(std::shared_ptr<DocumentStore> store, int top_k, std::string fallback_query) {
  RegisteredTool t;
  t.definition.name = "search_documents";
  t.definition.description = "Searches the assistant's documents and returns the most relevant passages with their source.";
  t.definition.parameters = json::parse(R"({"type":"object","properties":{"query":{"type":"string","description":"what to look for"}},
      "required":["query"],"additionalProperties":false})");
  t.definition.strict = true;
  t.timeout = std::chrono::milliseconds(5000);
  t.run = [store, top_k, fallback_query](const json& args) {
    ToolResult r;
    const bool has_query = args.is_object() && args.contains("query") && args["query"].is_string();
    if (!has_query && fallback_query.empty()) {
      r.error = true;
      r.content = {{"error", "missing string argument 'query'"}};
      return r;
    }
    std::string query = has_query ? args["query"].get<std::string>() : "";
    std::string source = "model";
    std::vector<Passage> hits;
    if (usable_query(query)) hits = store->search(query, top_k);
    if (hits.empty() && usable_query(fallback_query)) {
      query = fallback_query;
      source = "fallback";
      hits = store->search(query, top_k);
    } else if (usable_query(fallback_query) && !shares_a_word(query, fallback_query)) {
      // The query is nowhere in the user's message: rank the user's own words' passages first, then the model's.
      std::vector<Passage> user = store->search(fallback_query, top_k), merged;
      std::set<std::pair<std::string, int64_t>> seen;
      for (size_t i = 0; merged.size() < size_t(top_k) && (i < user.size() || i < hits.size()); ++i)
        for (const auto* list : {&user, &hits})
          if (i < list->size() && merged.size() < size_t(top_k) &&
              seen.insert({(*list)[i].document, int64_t((*list)[i].offset)}).second)
            merged.push_back((*list)[i]);
      hits = std::move(merged);
      query = fallback_query + " | " + query;
      source = "model+fallback";
    }
    json passages = json::array();
    for (const auto& p : hits) {
      json c = {{"document", p.document}, {"offset", p.offset}, {"text", p.text}};
      r.citations.push_back(c);
      c["score"] = p.score;
      passages.push_back(c);
    }
    r.content = {{"query", query}, {"query_source", source}, {"passages", passages}};
    return r;
  };
  return t;
}

}  // namespace baleine::agent
