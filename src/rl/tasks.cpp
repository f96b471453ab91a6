#include "rl/tasks.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <numeric>

#include "core/check.h"
#include "data/generators.h"
#include "tokenizer/chat_template.h"

namespace baleine::rl {

namespace {

uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
uint64_t hash_text(std::string_view s) {  // FNV-1a, then mixed
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return mix(h);
}

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(mix(seed)) {}
  uint64_t next() { return mix(s += 0x9E3779B97F4A7C15ULL); }
  int64_t range(int64_t lo, int64_t hi) { return lo + int64_t(next() % uint64_t(hi - lo + 1)); }  // inclusive
  template <typename T> const T& pick(const std::vector<T>& v) { return v[size_t(range(0, int64_t(v.size()) - 1))]; }
};

int64_t random_number(Rng& rng, int digits) {
  if (digits <= 1) return rng.range(0, 9);
  int64_t v = rng.range(1, 9);
  for (int d = 1; d < digits; ++d) v = v * 10 + rng.range(0, 9);
  return v;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// An integer answer: optional sign, digits, optional thousands commas, optional trailing period.
std::optional<int64_t> parse_integer(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  bool neg = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) neg = s.front() == '-', s.remove_prefix(1);
  s = trim(s);
  if (s.empty()) return std::nullopt;
  __int128 v = 0;
  int digits = 0;
  for (char c : s) {
    if (c == ',') continue;
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    v = v * 10 + (c - '0');
    if (++digits > 18) return std::nullopt;
  }
  return int64_t(neg ? -v : v);
}

Grade grade_integer(const Problem& p, std::string_view answer) {
  Grade g;
  g.answer = std::string(trim(answer));
  std::string_view a = g.answer;
  if (auto eq = a.rfind('='); eq != std::string_view::npos) a = a.substr(eq + 1);
  auto v = parse_integer(a);
  g.attempted = !g.answer.empty();
  if (!v) {
    g.why = g.answer.empty() ? "no answer" : "not an integer";
    return g;
  }
  g.correct = *v == p.target;
  if (!g.correct) g.why = fmt::format("value {}, expected {}", *v, p.target);
  return g;
}

// The text between "<think>\n" and "</think>" of a generator's worked solution.
std::string think_body(const std::string& s) {
  const size_t b = s.find("<think>\n"), e = s.find("</think>");
  BALEINE_ASSERT(b != std::string::npos && e != std::string::npos && e > b);
  return s.substr(b + 8, e - b - 8);
}

// ---- suites -------------------------------------------------------------------------------------------------

class ArithmeticSuite final : public TaskSuite {
 public:
  ArithmeticSuite(uint64_t seed, int min_digits, int max_digits, std::string ops, bool short_reasoning)
      : TaskSuite(seed), min_(min_digits), max_(max_digits), ops_(std::move(ops)), short_(short_reasoning) {}
  std::string name() const override { return "arithmetic"; }
  Grade grade(const Problem& p, std::string_view a) const override { return grade_integer(p, a); }

 protected:
  Problem candidate(uint64_t stream) const override {
    Rng rng(stream);
    const char op = ops_[size_t(rng.range(0, int64_t(ops_.size()) - 1))];
    int64_t a = random_number(rng, int(rng.range(min_, max_))), b = random_number(rng, int(rng.range(min_, max_)));
    Problem p;
    p.suite = name();
    p.target = op == '+' ? a + b : op == '-' ? a - b : a * b;
    p.question = fmt::format("What is {} {} {}?", a, op, b);
    p.key = fmt::format("{}{}{}", a, op, b);
    p.answer = std::to_string(p.target);
    p.numbers = {a, b};
    p.op = op;
    data::ArithmeticProblem ap;
    ap.a = a, ap.b = b, ap.op = op, ap.result = p.target;
    p.reasoning = short_ ? short_steps(a, b, op) : think_body(data::render_arithmetic(ap, true, stream));
    return p;
  }

 private:
  // Column by column in one line per column, e.g. "7+8=15 w5 c1\n4+3+1=8 w8\n" (w: write, c: carry, b: borrow).
  static std::string short_steps(int64_t a, int64_t b, char op) {
    if (op == '*') return fmt::format("{} * {} = {}\n", a, b, a * b);
    const bool neg = op == '-' && a < b;
    const int64_t x = neg ? b : a, y = neg ? a : b;
    std::string sx = std::to_string(x), sy = std::to_string(y), out = neg ? fmt::format("{} < {}: {} - {}, then negate\n", a, b, x, y) : "";
    int carry = 0;
    auto digit = [](const std::string& d, size_t i) { return i < d.size() ? d[d.size() - 1 - i] - '0' : 0; };
    for (size_t i = 0; i < std::max(sx.size(), sy.size()); ++i) {
      const int dx = digit(sx, i), dy = digit(sy, i);
      if (op == '+') {
        const int v = dx + dy + carry;
        out += carry ? fmt::format("{}+{}+1={}", dx, dy, v) : fmt::format("{}+{}={}", dx, dy, v);
        carry = v / 10;
        out += fmt::format(" w{}{}\n", v % 10, carry ? " c1" : "");
      } else {
        int v = dx - dy - carry;
        out += carry ? fmt::format("{}-{}-1", dx, dy) : fmt::format("{}-{}", dx, dy);
        carry = v < 0;
        if (carry) v += 10;
        out += fmt::format(" w{}{}\n", v, carry ? " b1" : "");
      }
    }
    if (op == '+' && carry) out += "w1\n";
    return out;
  }
  int min_, max_;
  std::string ops_;
  bool short_;
};

class CountdownSuite final : public TaskSuite {
 public:
  CountdownSuite(uint64_t seed, int min_n, int max_n) : TaskSuite(seed), min_(min_n), max_(max_n) {}
  std::string name() const override { return "countdown"; }

  Grade grade(const Problem& p, std::string_view answer) const override {
    Grade g;
    g.answer = std::string(trim(answer));
    std::string_view expr = g.answer;
    // "expr = target" is accepted; the stated right-hand side must then be the target too.
    if (auto eq = expr.rfind('='); eq != std::string_view::npos) {
      auto rhs = parse_integer(expr.substr(eq + 1));
      expr = trim(expr.substr(0, eq));
      if (!rhs || *rhs != p.target) {
        g.attempted = true;
        g.why = "the stated result is not the target";
        return g;
      }
    }
    g.attempted = !expr.empty();
    if (expr.empty()) {
      g.why = "no answer";
      return g;
    }
    ExprValue v = evaluate_countdown(expr);
    if (!v.error.empty()) {
      g.why = v.error;
      return g;
    }
    std::vector<int64_t> used = v.used, given = p.numbers;
    std::sort(used.begin(), used.end());
    std::sort(given.begin(), given.end());
    if (used != given) {
      g.why = "must use each given number exactly once";
      return g;
    }
    g.correct = v.den == 1 && v.num == p.target;
    if (!g.correct) g.why = v.den == 1 ? fmt::format("value {}, expected {}", v.num, p.target)
                                       : fmt::format("value {}/{}, expected {}", v.num, v.den, p.target);
    return g;
  }

 protected:
  Problem candidate(uint64_t stream) const override {
    for (uint64_t attempt = 0;; ++attempt) {
      data::CountdownProblem c = data::make_countdown(stream, int64_t(attempt));
      if (int(c.numbers.size()) < min_ || int(c.numbers.size()) > max_) continue;
      Problem p;
      p.suite = name();
      p.numbers = c.numbers;
      p.target = c.target;
      std::string nums;
      for (size_t i = 0; i < c.numbers.size(); ++i) nums += (i ? ", " : "") + std::to_string(c.numbers[i]);
      p.question = fmt::format("Using the numbers {}, each exactly once, and the operations +, -, * and /, make {}.",
                               nums, c.target);
      std::vector<int64_t> sorted = c.numbers;
      std::sort(sorted.begin(), sorted.end());
      p.key = fmt::format("{}->{}", fmt::join(sorted, ","), c.target);
      p.answer = data::countdown_expression(c);
      p.reasoning = think_body(data::render_countdown(c, true, stream));
      return p;
    }
  }

 private:
  int min_, max_;
};

// Grade-school word problems: a handful of templates, each with its exact integer answer.
class WordSuite final : public TaskSuite {
 public:
  explicit WordSuite(uint64_t seed) : TaskSuite(seed) {}
  std::string name() const override { return "word"; }
  Grade grade(const Problem& p, std::string_view a) const override { return grade_integer(p, a); }

 protected:
  Problem candidate(uint64_t stream) const override {
    static const std::vector<std::string> names = {"Alice", "Bob", "Chen", "Dana", "Emil", "Fatima", "Goran", "Hana",
                                                   "Ines", "Jonas", "Kofi", "Lena", "Marek", "Nora", "Omar", "Priya"};
    static const std::vector<std::string> items = {"apples", "marbles", "stickers", "pencils", "cards", "stamps",
                                                   "shells", "books", "coins", "eggs"};
    static const std::vector<std::string> boxes = {"box", "bag", "crate", "basket", "jar", "tray"};
    Rng rng(stream);
    const std::string& n1 = rng.pick(names);
    std::string n2 = rng.pick(names);
    if (n2 == n1) n2 = n1 == "Alice" ? "Bob" : "Alice";
    const std::string& it = rng.pick(items);
    Problem p;
    p.suite = name();
    const int64_t kind = rng.range(0, 4);
    int64_t a = 0, b = 0, c = 0;
    switch (kind) {
      case 0:
        a = rng.range(5, 99), b = rng.range(2, 50), c = rng.range(1, a + b);
        p.target = a + b - c;
        p.question = fmt::format("{} has {} {}. {} gets {} more and then gives {} to {}. How many {} does {} have now?",
                                 n1, a, it, n1, b, c, n2, it, n1);
        p.reasoning = fmt::format("{} starts with {} {}.\nGetting {} more: {} + {} = {}.\nGiving {} away: {} - {} = {}.\n",
                                  n1, a, it, b, a, b, a + b, c, a + b, c, p.target);
        break;
      case 1: {
        const std::string& bx = rng.pick(boxes);
        a = rng.range(2, 24), b = rng.range(2, 15);
        p.target = a * b;
        p.question = fmt::format("Each {} holds {} {}. How many {} are there in {} {}?", bx, a, it, it, b,
                                 bx == "box" ? std::string("boxes") : bx + "s");
        p.reasoning = fmt::format("Each {} has {} {}, and there are {} of them.\n{} * {} = {}.\n", bx, a, it, b, a, b, p.target);
        break;
      }
      case 2:
        a = rng.range(3, 40), b = rng.range(2, 12), c = rng.range(1, 30);
        p.target = a * b + c;
        p.question = fmt::format("{} reads {} pages every day for {} days, then {} more pages on the last evening. "
                                 "How many pages does {} read in total?", n1, a, b, c, n1);
        p.reasoning = fmt::format("{} pages a day for {} days: {} * {} = {}.\nThen {} more: {} + {} = {}.\n", a, b, a, b,
                                  a * b, c, a * b, c, p.target);
        break;
      case 3:
        b = rng.range(2, 9), c = rng.range(2, 20), a = b * c;
        p.target = c;
        p.question = fmt::format("{} shares {} {} equally among {} friends. How many {} does each friend get?", n1, a,
                                 it, b, it);
        p.reasoning = fmt::format("{} {} shared by {} friends: {} / {} = {}.\nCheck: {} * {} = {}.\n", a, it, b, a, b, c, b, c, a);
        break;
      default:
        a = rng.range(20, 200), b = rng.range(1, a / 2), c = rng.range(1, a - b);
        p.target = a - b - c;
        p.question = fmt::format("{} had {} dollars, spent {} dollars on lunch and {} dollars on a ticket. How many "
                                 "dollars does {} have left?", n1, a, b, c, n1);
        p.reasoning = fmt::format("{} starts with {} dollars.\nAfter lunch: {} - {} = {}.\nAfter the ticket: {} - {} = {}.\n",
                                  n1, a, a, b, a - b, a - b, c, p.target);
        break;
    }
    p.key = fmt::format("{}:{}:{}:{}", kind, a, b, c);
    p.answer = std::to_string(p.target);
    return p;
  }
};

// ---- exact expression evaluation ----------------------------------------------------------------------------

struct Frac {
  __int128 n = 0, d = 1;
};
constexpr __int128 kLimit = __int128(1) << 62;

struct Parser {
  std::string_view s;
  size_t at = 0;
  std::vector<int64_t> used;
  std::string error;

  void skip() { while (at < s.size() && std::isspace(static_cast<unsigned char>(s[at]))) ++at; }
  bool fail(std::string e) { if (error.empty()) error = std::move(e); return false; }
  static Frac norm(Frac f) {
    if (f.d < 0) f.n = -f.n, f.d = -f.d;
    __int128 a = f.n < 0 ? -f.n : f.n, b = f.d;
    while (b) { __int128 t = a % b; a = b; b = t; }
    if (a > 1) f.n /= a, f.d /= a;
    return f;
  }
  bool check(const Frac& f) {
    if (f.n > kLimit || f.n < -kLimit || f.d > kLimit) return fail("numbers too large");
    return true;
  }
  bool primary(Frac& out) {
    skip();
    if (at >= s.size()) return fail("expression ends early");
    if (s[at] == '(') {
      ++at;
      if (!expr(out)) return false;
      skip();
      if (at >= s.size() || s[at] != ')') return fail("missing ')'");
      ++at;
      return true;
    }
    if (!std::isdigit(static_cast<unsigned char>(s[at]))) return fail(fmt::format("unexpected '{}'", s[at]));
    int64_t v = 0;
    int digits = 0;
    while (at < s.size() && std::isdigit(static_cast<unsigned char>(s[at]))) {
      if (++digits > 12) return fail("number too long");
      v = v * 10 + (s[at++] - '0');
    }
    used.push_back(v);
    out = {v, 1};
    return true;
  }
  bool term(Frac& out) {
    if (!primary(out)) return false;
    for (;;) {
      skip();
      if (at >= s.size() || (s[at] != '*' && s[at] != '/')) return true;
      char op = s[at++];
      Frac r;
      if (!primary(r)) return false;
      if (op == '*') out = norm({out.n * r.n, out.d * r.d});
      else if (r.n == 0) return fail("division by zero");
      else out = norm({out.n * r.d, out.d * r.n});
      if (!check(out)) return false;
    }
  }
  bool expr(Frac& out) {
    if (!term(out)) return false;
    for (;;) {
      skip();
      if (at >= s.size() || (s[at] != '+' && s[at] != '-')) return true;
      char op = s[at++];
      Frac r;
      if (!term(r)) return false;
      out = norm({out.n * r.d + (op == '+' ? 1 : -1) * r.n * out.d, out.d * r.d});
      if (!check(out)) return false;
    }
  }
};

}  // namespace

Split split_from_name(const std::string& name) {
  if (name == "train") return Split::Train;
  if (name == "test" || name == "heldout" || name == "held-out") return Split::Test;
  BALEINE_FAIL("unknown split '{}' (train or test)", name);
}

Problem TaskSuite::problem(Split split, int64_t index) const {
  BALEINE_CHECK(index >= 0, "problem index {} is negative", index);
  const uint64_t salt = split == Split::Test ? 0x7e57ull : 0x7a1full;
  for (uint64_t attempt = 0;; ++attempt) {
    Problem p = candidate(mix(seed_ ^ mix(salt + uint64_t(index) * 0x100000001b3ull + attempt * 0x9e37ull)));
    // One problem in eight (by its key) is held out; the other seven are for training.
    const bool held_out = hash_text(p.suite + "|" + p.key) % 8 == 0;
    if (held_out == (split == Split::Test)) return p;
  }
}

ExprValue evaluate_countdown(std::string_view text) {
  Parser ps;
  ps.s = text;
  Frac f;
  ExprValue v;
  bool ok = ps.expr(f);
  ps.skip();
  if (ok && ps.at != text.size()) ok = ps.fail(fmt::format("unexpected '{}'", text[ps.at]));
  v.used = ps.used;
  if (!ok) {
    v.error = ps.error;
    return v;
  }
  v.num = int64_t(f.n), v.den = int64_t(f.d);
  return v;
}

nlohmann::json suite_spec_from_arg(const std::string& arg, const std::string& where) {
  if (arg.find('{') == std::string::npos) return nlohmann::json(arg);
  try {
    return nlohmann::json::parse(arg);
  } catch (const nlohmann::json::parse_error& e) {
    BALEINE_FAIL("{}: invalid JSON suite spec at byte {}", where, e.byte);
  }
}

std::unique_ptr<TaskSuite> make_suite(const nlohmann::json& spec, uint64_t seed, const std::string& where) {
  nlohmann::json j = spec.is_string() ? nlohmann::json{{"name", spec}} : spec;
  BALEINE_CHECK(j.is_object() && j.contains("name") && j["name"].is_string(),
                "{}: a task suite is a name or an object with 'name'", where);
  const std::string name = j["name"].get<std::string>();
  auto int_key = [&](const char* key, int def, int lo, int hi) {
    if (!j.contains(key)) return def;
    BALEINE_CHECK(j[key].is_number_integer(), "{}: suite key '{}' must be an integer", where, key);
    int v = j[key].get<int>();
    BALEINE_CHECK(v >= lo && v <= hi, "{}: suite key '{}' = {} is outside [{}, {}]", where, key, v, lo, hi);
    return v;
  };
  auto allow = [&](std::initializer_list<const char*> keys) {
    for (auto& [k, v] : j.items())
      BALEINE_CHECK(k == "name" || std::any_of(keys.begin(), keys.end(), [&](const char* a) { return k == a; }),
                    "{}: unknown key '{}' for suite '{}'", where, k, name);
  };
  if (name == "arithmetic") {
    allow({"min_digits", "max_digits", "ops", "reasoning"});
    int lo = int_key("min_digits", 1, 1, 9), hi = int_key("max_digits", 3, 1, 9);
    BALEINE_CHECK(lo <= hi, "{}: min_digits {} > max_digits {}", where, lo, hi);
    std::string ops = j.value("ops", std::string("+-*"));
    BALEINE_CHECK(!ops.empty() && ops.find_first_not_of("+-*") == std::string::npos,
                  "{}: suite key 'ops' = '{}' must be made of + - *", where, ops);
    const std::string reasoning = j.value("reasoning", std::string("steps"));
    BALEINE_CHECK(reasoning == "steps" || reasoning == "short", "{}: suite key 'reasoning' = '{}' (steps or short)", where, reasoning);
    return std::make_unique<ArithmeticSuite>(seed, lo, hi, ops, reasoning == "short");
  }
  if (name == "countdown") {
    allow({"min_numbers", "max_numbers"});
    int lo = int_key("min_numbers", 3, 3, 5), hi = int_key("max_numbers", 4, 3, 5);
    BALEINE_CHECK(lo <= hi, "{}: min_numbers {} > max_numbers {}", where, lo, hi);
    return std::make_unique<CountdownSuite>(seed, lo, hi);
  }
  if (name == "word") {
    allow({});
    return std::make_unique<WordSuite>(seed);
  }
  BALEINE_FAIL("{}: unknown task suite '{}' (arithmetic, countdown, word)", where, name);
}

// ---- prompts, answers, format --------------------------------------------------------------------------------

PromptFormat prompt_format_from_name(const std::string& name) {
  if (name == "r1zero" || name == "r1-zero") return PromptFormat::R1Zero;
  if (name == "plain") return PromptFormat::Plain;
  if (name == "chat") return PromptFormat::Chat;
  BALEINE_FAIL("unknown prompt format '{}' (r1zero, plain or chat)", name);
}

AnswerFormat answer_format_of(PromptFormat f) { return f == PromptFormat::Plain ? AnswerFormat::FinalLine : AnswerFormat::Tags; }

std::string chat_user_message(const Problem& p) {
  return p.question + " Think step by step, then give the final answer inside <answer> </answer> tags.";
}

std::string render_prompt(const Problem& p, PromptFormat f) {
  switch (f) {
    case PromptFormat::R1Zero:
      return "A conversation between User and Assistant. The User asks a question and the Assistant solves it. The "
             "Assistant first thinks about the reasoning process and then gives the User the answer. The reasoning "
             "process and the answer are enclosed within <think> </think> and <answer> </answer> tags, that is, "
             "<think> reasoning here </think> <answer> answer here </answer>.\nUser: " + p.question + "\nAssistant: <think>";
    case PromptFormat::Plain:
      return "Problem: " + p.question + "\n<think>\n";
    case PromptFormat::Chat: {
      ChatMessage user;
      user.role = "user";
      user.content = chat_user_message(p);
      return apply_chat_template(ChatFormat::DeepSeekR1, {user});
    }
  }
  return "";
}

std::string render_solution(const Problem& p, PromptFormat f) {
  const std::string final_line = p.suite == "countdown" ? fmt::format("{} = {}", p.answer, p.target)
                                 : p.suite == "arithmetic" ? fmt::format("{} {} {} = {}", p.numbers.at(0), p.op, p.numbers.at(1), p.target)
                                                           : p.answer;
  switch (f) {
    case PromptFormat::Plain: return p.reasoning + "</think>\n" + final_line;
    case PromptFormat::R1Zero: return "\n" + p.reasoning + "</think>\n<answer>" + p.answer + "</answer>";
    case PromptFormat::Chat: return p.reasoning + "</think>\n<answer>" + p.answer + "</answer>";
  }
  return "";
}

std::optional<std::string> extract_answer(std::string_view text, AnswerFormat f, bool keep_equation) {
  const size_t close = text.rfind("</think>");
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view after = text.substr(close + 8);
  if (f == AnswerFormat::Tags) {
    const size_t b = after.rfind("<answer>");
    if (b == std::string_view::npos) return std::nullopt;
    const size_t e = after.find("</answer>", b);
    if (e == std::string_view::npos) return std::nullopt;
    std::string_view a = trim(after.substr(b + 8, e - b - 8));
    if (a.empty()) return std::nullopt;
    return std::string(a);
  }
  after = trim(after);
  if (after.empty()) return std::nullopt;
  if (auto nl = after.rfind('\n'); nl != std::string_view::npos) after = trim(after.substr(nl + 1));
  if (!keep_equation)
    if (auto eq = after.rfind('='); eq != std::string_view::npos) after = trim(after.substr(eq + 1));
  if (after.empty()) return std::nullopt;
  return std::string(after);
}

bool format_ok(std::string_view text, AnswerFormat f) {
  std::string_view t = trim(text);
  if (t.substr(0, 7) != "<think>") return false;
  const size_t close = t.find("</think>");
  if (close == std::string_view::npos || t.find("</think>", close + 1) != std::string_view::npos) return false;
  if (t.find("<think>", 1) != std::string_view::npos) return false;
  if (trim(t.substr(7, close - 7)).empty()) return false;  // some reasoning
  std::string_view rest = trim(t.substr(close + 8));
  if (f == AnswerFormat::Tags) {
    if (rest.substr(0, 8) != "<answer>") return false;
    const size_t e = rest.find("</answer>");
    if (e == std::string_view::npos || trim(rest.substr(8, e - 8)).empty()) return false;
    if (rest.find("<answer>", 8) != std::string_view::npos) return false;
    return trim(rest.substr(e + 9)).empty();
  }
  return !rest.empty() && rest.find('\n') == std::string_view::npos;
}

Scored score_response(const TaskSuite& suite, const Problem& p, std::string_view text, AnswerFormat f,
                      const RewardConfig& rc) {
  Scored s;
  s.formatted = format_ok(text, f);
  auto ans = extract_answer(text, f, /*keep_equation=*/suite.name() == "countdown");
  if (ans) {
    s.grade = suite.grade(p, *ans);
  } else {
    s.grade.why = "no answer";
  }
  s.reward = s.grade.correct ? rc.correct : s.formatted ? rc.formatted : rc.otherwise;
  return s;
}

}  // namespace baleine::rl
