#include "data/generators.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "core/check.h"
#include "core/threadpool.h"
#include "data/text.h"

namespace baleine::data {

namespace {

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(mix64(seed)) {}
  uint64_t next() {
    s += 0x9E3779B97F4A7C15ULL;
    return mix64(s);
  }
  int64_t range(int64_t lo, int64_t hi) { return lo + int64_t(next() % uint64_t(hi - lo + 1)); }  // inclusive
  bool chance(int percent) { return range(0, 99) < percent; }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[size_t(range(0, int64_t(v.size()) - 1))];
  }
};

Rng problem_rng(uint64_t seed, int64_t index, uint64_t salt) { return Rng(mix64(seed ^ salt) + uint64_t(index) * 0x632BE59BD9B4E019ULL); }

int64_t random_number(Rng& rng, int digits) {
  int64_t v = rng.range(1, 9);
  for (int d = 1; d < digits; ++d) v = v * 10 + rng.range(0, 9);
  return v;
}

const char* place_name(size_t i) {
  static const char* names[] = {"ones",          "tens",          "hundreds",     "thousands",
                                "ten-thousands", "hundred-thousands", "millions", "ten-millions",
                                "hundred-millions", "billions",   "ten-billions", "hundred-billions",
                                "trillions",     "ten-trillions", "hundred-trillions", "quadrillions"};
  return i < std::size(names) ? names[i] : "next";
}

std::string cap(std::string s) {
  if (!s.empty()) s[0] = char(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

std::string digits_of(int64_t v) { return std::to_string(v); }
int digit_at(const std::string& s, size_t place) {  // place 0 = ones
  return place < s.size() ? s[s.size() - 1 - place] - '0' : 0;
}

const char* shift_words(size_t places) {
  static const char* w[] = {"", "one place", "two places", "three places", "four places", "five places"};
  return places < std::size(w) ? w[places] : "several places";
}

// ---- addition ------------------------------------------------------------------------------------------
std::string add_steps(int64_t a, int64_t b, Rng& rng, bool prose) {
  std::string sa = digits_of(a), sb = digits_of(b), out;
  size_t n = std::max(sa.size(), sb.size());
  int carry = 0;
  for (size_t p = 0; p < n; ++p) {
    int x = digit_at(sa, p), y = digit_at(sb, p), s = x + y + carry;
    std::string carry_part = carry ? fmt::format(" + {} carried", carry) : "";
    int digit = s % 10, next = s / 10;
    if (prose) {
      out += fmt::format("{}n the {} place, {} and {}{} make {}", p ? "; i" : "I", place_name(p), x, y,
                         carry ? " and the carried 1" : "", s);
      out += next ? fmt::format(", so {} is written and 1 is carried", digit) : "";
    } else {
      switch (rng.range(0, 2)) {
        case 0:
          out += fmt::format("{} column: {} + {}{} = {}. Write {}, carry {}.\n", cap(place_name(p)), x, y, carry_part, s,
                             digit, next);
          break;
        case 1:
          out += fmt::format("In the {} place, {} + {}{} gives {}; keep {} and carry {}.\n", place_name(p), x, y,
                             carry_part, s, digit, next);
          break;
        default:
          out += fmt::format("The {} digits: {} + {}{} = {}, so the digit is {} with carry {}.\n", place_name(p), x, y,
                             carry_part, s, digit, next);
      }
    }
    carry = next;
  }
  if (carry) out += prose ? fmt::format("; the final carry of 1 becomes the leading digit")
                          : "The last carry 1 becomes the leading digit.\n";
  return out;
}

// ---- subtraction (a >= b) ------------------------------------------------------------------------------
std::string sub_steps(int64_t a, int64_t b, Rng& rng, bool prose) {
  std::string sa = digits_of(a), sb = digits_of(b), out;
  int borrow = 0;
  for (size_t p = 0; p < sa.size(); ++p) {
    int t = digit_at(sa, p), u = digit_at(sb, p), eff = t - borrow;
    std::string lent = borrow ? fmt::format(" - 1 lent") : "";
    if (prose) {
      out += p ? "; " : "";
      if (eff >= u)
        out += fmt::format("in the {} place, {}{} minus {} leaves {}", place_name(p), t,
                           borrow ? " less the 1 lent to the previous place" : "", u, eff - u);
      else
        out += fmt::format("in the {} place, {}{} is smaller than {}, so ten is borrowed and {} minus {} leaves {}",
                           place_name(p), t, borrow ? " less the 1 already lent" : "", u, eff + 10, u, eff + 10 - u);
      borrow = eff < u;
      continue;
    }
    if (eff >= u) {
      if (rng.chance(50))
        out += fmt::format("{} column: {}{} - {} = {}. No borrow needed.\n", cap(place_name(p)), t, lent, u, eff - u);
      else
        out += fmt::format("In the {} place, {}{} - {} gives {}; nothing to borrow.\n", place_name(p), t, lent, u, eff - u);
      borrow = 0;
    } else {
      if (rng.chance(50))
        out += fmt::format("{} column: {}{} is less than {}, so borrow ten: {} - {} = {}. The next column lends 1.\n",
                           cap(place_name(p)), t, lent, u, eff + 10, u, eff + 10 - u);
      else
        out += fmt::format("In the {} place, {}{} is too small to take {} from; borrowing ten makes it {}, and {} - {} = {}.\n",
                           place_name(p), t, lent, u, eff + 10, eff + 10, u, eff + 10 - u);
      borrow = 1;
    }
  }
  return out;
}

// ---- multiplication ------------------------------------------------------------------------------------
std::string mul_steps(int64_t a, int64_t b, Rng& rng, bool prose) {
  std::string sb = digits_of(b), out;
  if (sb.size() == 1) {
    std::string sa = digits_of(a);
    int carry = 0;
    for (size_t p = 0; p < sa.size(); ++p) {
      int x = digit_at(sa, p), v = x * int(b) + carry;
      if (prose)
        out += fmt::format("{}{} times {}{} is {}", p ? "; " : "", x, b, carry ? fmt::format(" plus the carried {}", carry) : "", v);
      else
        out += fmt::format("{} digit: {} * {}{} = {}. Write {}, carry {}.\n", cap(place_name(p)), x, b,
                           carry ? fmt::format(" + {} carried", carry) : "", v, v % 10, v / 10);
      carry = v / 10;
    }
    if (carry) out += prose ? fmt::format("; the final carry {} leads the result", carry)
                            : fmt::format("The final carry {} goes in front.\n", carry);
    return out;
  }
  std::vector<int64_t> partials;
  for (size_t p = 0; p < sb.size(); ++p) {
    int d = digit_at(sb, p);
    int64_t part = a * d, shifted = part;
    for (size_t k = 0; k < p; ++k) shifted *= 10;
    partials.push_back(shifted);
    if (prose) {
      out += p ? "; " : "";
      if (d == 0) out += fmt::format("the {} digit is 0 and adds nothing", place_name(p));
      else if (p == 0) out += fmt::format("the ones digit {} gives {} times {}, which is {}", d, a, d, part);
      else out += fmt::format("the {} digit {} gives {}, moved {} to the left to become {}", place_name(p), d, part, shift_words(p), shifted);
      continue;
    }
    if (d == 0)
      out += fmt::format("The {} digit of {} is 0, so that row contributes nothing.\n", place_name(p), b);
    else if (p == 0)
      out += fmt::format("The ones digit of {} is {}: {} * {} = {}.\n", b, d, a, d, part);
    else if (rng.chance(50))
      out += fmt::format("The {} digit is {}: {} * {} = {}, shifted {} to give {}.\n", place_name(p), d, a, d, part, shift_words(p), shifted);
    else
      out += fmt::format("Next, the {} digit {}: {} times {} is {}; with {} appended zeros that is {}.\n", place_name(p), d, a, d, part, p, shifted);
  }
  int64_t sum = 0;
  std::string adds;
  for (int64_t v : partials) {
    if (v == 0) continue;
    if (sum != 0) adds += fmt::format("{}{} + {} = {}", adds.empty() ? "" : ", then ", sum, v, sum + v);
    sum += v;
  }
  if (prose) out += adds.empty() ? "" : fmt::format("; adding the partial products, {}", adds);
  else if (!adds.empty()) out += fmt::format("Adding the partial products: {}.\n", adds);
  return out;
}

}  // namespace

Style parse_style(const std::string& name) {
  if (name == "think") return Style::Think;
  if (name == "prose") return Style::Prose;
  if (name == "mixed") return Style::Mixed;
  BALEINE_FAIL("unknown style '{}' (expected think, prose or mixed)", name);
}

ArithmeticProblem make_arithmetic(uint64_t seed, int64_t index) {
  Rng rng = problem_rng(seed, index, 0x61726974ULL);
  ArithmeticProblem p;
  int64_t r = rng.range(0, 99);
  p.op = r < 35 ? '+' : r < 70 ? '-' : '*';
  if (p.op == '*') {
    int da = int(rng.range(2, 8)), db = int(rng.range(1, 4));
    p.a = random_number(rng, da);
    p.b = random_number(rng, db);
    p.result = p.a * p.b;
  } else {
    int da = int(rng.range(2, 12)), db = int(rng.range(std::max(1, da - 4), da));
    p.a = random_number(rng, da);
    p.b = random_number(rng, db);
    if (p.op == '-' && rng.chance(15)) std::swap(p.a, p.b);  // some negative results
    p.result = p.op == '+' ? p.a + p.b : p.a - p.b;
  }
  return p;
}

std::string render_arithmetic(const ArithmeticProblem& p, bool think, uint64_t variant) {
  Rng rng(variant);
  const char* word = p.op == '+' ? "plus" : p.op == '-' ? "minus" : "times";
  std::string q = rng.pick(std::vector<std::string>{
      fmt::format("What is {} {} {}?", p.a, p.op, p.b), fmt::format("Compute {} {} {}.", p.a, p.op, p.b),
      fmt::format("Calculate {} {} {} step by step.", p.a, p.op, p.b), fmt::format("What is {} {} {}?", p.a, word, p.b)});
  bool negative = p.op == '-' && p.a < p.b;
  int64_t big = negative ? p.b : p.a, small = negative ? p.a : p.b;
  if (think) {
    std::string s = fmt::format("Problem: {}\n<think>\n", q);
    if (p.op == '+') {
      s += "Line the two numbers up by place value and add one column at a time from the right, carrying into the next "
           "column whenever a column sum reaches ten.\n";
      s += add_steps(p.a, p.b, rng, false);
      s += fmt::format("Reading the digits from the highest place down gives {}.\nCheck by subtracting: {} - {} = {}, "
                       "which is the first number again.\n", p.result, p.result, p.b, p.a);
    } else if (p.op == '-') {
      if (negative)
        s += fmt::format("The second number is larger, so compute {} - {} and make the answer negative.\n", big, small);
      s += "Subtract column by column from the right, borrowing ten from the next column when the top digit is too "
           "small.\n";
      s += sub_steps(big, small, rng, false);
      s += fmt::format("The difference is {}{}.\nCheck by adding back: {} + {} = {}.\n", negative ? "-" : "",
                       big - small, big - small, small, big);
    } else {
      s += digits_of(p.b).size() == 1
               ? "Multiply digit by digit from the right, carrying the tens of each product to the next place.\n"
               : fmt::format("Multiply {} by each digit of {}, shift each partial product by that digit's place, then add "
                             "the partial products.\n", p.a, p.b);
      s += mul_steps(p.a, p.b, rng, false);
      s += fmt::format("So the product is {}.\nCheck by dividing: {} / {} = {} exactly.\n", p.result, p.result, p.b, p.a);
    }
    s += fmt::format("</think>\n{} {} {} = {}", p.a, p.op, p.b, p.result);
    return s;
  }
  std::string s = q + "\n\n";
  if (p.op == '+') {
    s += fmt::format("To add {} and {}, line them up by place value and work from the right. ", p.a, p.b);
    s += add_steps(p.a, p.b, rng, true);
    s += fmt::format(". Reading the digits back, the sum of {} and {} is {}.", p.a, p.b, p.result);
  } else if (p.op == '-') {
    s += negative ? fmt::format("Because {} is larger than {}, the answer is negative: subtract {} from {} and flip "
                                "the sign. ", p.b, p.a, small, big)
                  : fmt::format("To subtract {} from {}, work from the right, borrowing when needed: ", small, big);
    std::string steps = sub_steps(big, small, rng, true);
    if (!steps.empty()) steps[0] = char(std::toupper(static_cast<unsigned char>(steps[0])));
    s += steps;
    s += fmt::format(". So {} minus {} equals {}.", p.a, p.b, p.result);
  } else {
    s += fmt::format("To multiply {} by {}, ", p.a, p.b);
    s += digits_of(p.b).size() == 1 ? "go through its digits from the right: " : "take each digit of the second number: ";
    s += mul_steps(p.a, p.b, rng, true);
    s += fmt::format(". The product of {} and {} is {}.", p.a, p.b, p.result);
  }
  return s;
}

// ---- countdown -----------------------------------------------------------------------------------------

namespace {

bool apply(int64_t x, int64_t y, char op, int64_t* out) {
  switch (op) {
    case '+': *out = x + y; return true;
    case '-': *out = x - y; return *out > 0;
    case '*': *out = x * y; return true;
    case '/': return y != 0 && x % y == 0 ? (*out = x / y, true) : false;
  }
  return false;
}

struct Search {
  int64_t target;
  std::vector<CountdownStep> path;
  std::vector<CountdownStep>* solution;
  std::vector<std::vector<CountdownStep>>* dead_ends;
  int max_dead_ends;
  bool dfs(std::vector<int64_t>& vals) {
    if (vals.size() == 1) {
      if (vals[0] == target) {
        *solution = path;
        return true;
      }
      if (dead_ends && max_dead_ends > 0) {
        // Keep the max_dead_ends closest misses with distinct end values, closest last.
        int64_t dist = std::llabs(vals[0] - target);
        auto& d = *dead_ends;
        bool dup = false;
        for (const auto& e : d) dup |= e.back().result == vals[0];
        if (!dup && (int(d.size()) < max_dead_ends || dist < std::llabs(d.front().back().result - target))) {
          if (int(d.size()) == max_dead_ends) d.erase(d.begin());
          d.push_back(path);
          std::sort(d.begin(), d.end(), [&](const auto& x, const auto& y) {
            return std::llabs(x.back().result - target) > std::llabs(y.back().result - target);
          });
        }
      }
      return false;
    }
    for (size_t i = 0; i < vals.size(); ++i)
      for (size_t j = 0; j < vals.size(); ++j) {
        if (i == j) continue;
        int64_t x = vals[i], y = vals[j];
        for (char op : {'*', '+', '-', '/'}) {
          if ((op == '+' || op == '*') && i > j) continue;  // commutative: one order is enough
          int64_t r;
          if (!apply(x, y, op, &r) || r > 1'000'000) continue;
          std::vector<int64_t> next;
          for (size_t k = 0; k < vals.size(); ++k)
            if (k != i && k != j) next.push_back(vals[k]);
          next.push_back(r);
          path.push_back({x, y, r, op});
          if (dfs(next)) return true;
          path.pop_back();
        }
      }
    return false;
  }
};

std::string join_numbers(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += fmt::format("{}{}", i == 0 ? "" : i + 1 == v.size() ? " and " : ", ", v[i]);
  return s;
}

std::string step_words(const CountdownStep& st, Rng& rng) {
  switch (st.op) {
    case '+': return rng.chance(50) ? fmt::format("adding {} and {} gives {}", st.x, st.y, st.result)
                                    : fmt::format("{} plus {} makes {}", st.x, st.y, st.result);
    case '-': return rng.chance(50) ? fmt::format("taking {} away from {} leaves {}", st.y, st.x, st.result)
                                    : fmt::format("{} minus {} is {}", st.x, st.y, st.result);
    case '*': return rng.chance(50) ? fmt::format("multiplying {} by {} gives {}", st.x, st.y, st.result)
                                    : fmt::format("{} times {} is {}", st.x, st.y, st.result);
    default: return rng.chance(50) ? fmt::format("dividing {} by {} gives {}", st.x, st.y, st.result)
                                   : fmt::format("{} divided by {} is exactly {}", st.x, st.y, st.result);
  }
}

std::string steps_sentence(const std::vector<CountdownStep>& steps, Rng& rng) {
  std::string s;
  for (size_t i = 0; i < steps.size(); ++i) s += (i ? (i + 1 == steps.size() ? ", and finally " : ", then ") : "") + step_words(steps[i], rng);
  return s;
}

}  // namespace

bool solve_countdown(const std::vector<int64_t>& numbers, int64_t target, std::vector<CountdownStep>* solution,
                     std::vector<std::vector<CountdownStep>>* dead_ends, int max_dead_ends) {
  BALEINE_CHECK(!numbers.empty() && numbers.size() <= 6, "countdown needs 1 to 6 numbers, got {}", numbers.size());
  Search s{target, {}, solution, dead_ends, max_dead_ends};
  std::vector<int64_t> vals = numbers;
  return s.dfs(vals);
}

CountdownProblem make_countdown(uint64_t seed, int64_t index) {
  Rng rng = problem_rng(seed, index, 0x636f756eULL);
  for (;;) {
    CountdownProblem p;
    int64_t r = rng.range(0, 99);
    size_t n = r < 35 ? 3 : r < 85 ? 4 : 5;
    for (size_t i = 0; i < n; ++i) {
      int64_t k = rng.range(0, 99);
      p.numbers.push_back(k < 60 ? rng.range(1, 10) : k < 85 ? rng.range(11, 30) : 25 * rng.range(1, 4));
    }
    // Build a target by combining the numbers in a random order with random valid operations.
    std::vector<int64_t> vals = p.numbers;
    bool ok = true;
    while (vals.size() > 1 && ok) {
      size_t i = size_t(rng.range(0, int64_t(vals.size()) - 1)), j;
      do j = size_t(rng.range(0, int64_t(vals.size()) - 1)); while (j == i);
      int64_t x = vals[i], y = vals[j], out = 0;
      static const char ops[] = {'+', '+', '-', '*', '*', '/'};
      bool done = false;
      for (int attempt = 0; attempt < 8 && !done; ++attempt) done = apply(x, y, ops[rng.range(0, 5)], &out);
      if (!done) done = apply(x, y, '+', &out);
      vals.erase(vals.begin() + int64_t(std::max(i, j)));
      vals.erase(vals.begin() + int64_t(std::min(i, j)));
      vals.push_back(out);
    }
    p.target = vals[0];
    if (p.target < 10 || p.target > 999 || std::find(p.numbers.begin(), p.numbers.end(), p.target) != p.numbers.end()) continue;
    if (!solve_countdown(p.numbers, p.target, &p.solution, &p.dead_ends)) continue;  // cannot happen; be safe
    return p;
  }
}

std::string countdown_expression(const CountdownProblem& p) {
  // Replay the steps over (value, expression) pairs.
  std::vector<std::pair<int64_t, std::string>> items;
  for (int64_t v : p.numbers) items.emplace_back(v, std::to_string(v));
  for (size_t k = 0; k < p.solution.size(); ++k) {
    const auto& st = p.solution[k];
    auto take = [&](int64_t v) {
      for (size_t i = 0; i < items.size(); ++i)
        if (items[i].first == v) {
          auto e = items[i];
          items.erase(items.begin() + int64_t(i));
          return e;
        }
      BALEINE_FAIL("internal: value {} not available", v);
    };
    auto x = take(st.x);
    auto y = take(st.y);
    bool last = k + 1 == p.solution.size();
    std::string e = fmt::format("{} {} {}", x.second, st.op, y.second);
    items.emplace_back(st.result, last ? e : "(" + e + ")");
  }
  return items.at(0).second;
}

std::string render_countdown(const CountdownProblem& p, bool think, uint64_t variant) {
  Rng rng(variant);
  std::string nums = join_numbers(p.numbers);
  std::string expr = countdown_expression(p);
  if (think) {
    std::string s = fmt::format(
        "Problem: Using the numbers {}, each exactly once, and the operations +, -, * and /, make {}.\n<think>\n", nums,
        p.target);
    int64_t largest = *std::max_element(p.numbers.begin(), p.numbers.end());
    s += fmt::format("The target is {} and the largest number is {}, so {}.\n", p.target, largest,
                     largest * 2 < p.target ? "some multiplication will be needed" : "addition and subtraction may be enough");
    for (const auto& dead : p.dead_ends) {
      if (dead.empty()) continue;
      int64_t got = dead.back().result;
      std::string w = steps_sentence(dead, rng);
      w[0] = char(std::toupper(static_cast<unsigned char>(w[0])));
      s += fmt::format("{}. That ends at {}, which is {} {} the target, so this does not work.\n", w, got,
                       std::llabs(got - p.target), got > p.target ? "above" : "below");
    }
    std::string w = steps_sentence(p.solution, rng);
    s += fmt::format("{}: {}. That is exactly {}.\n", p.dead_ends.empty() ? "Try this" : "Another way", w, p.target);
    s += fmt::format("Checking: the expression {} uses {} once each and equals {}.\n</think>\n", expr, nums, p.target);
    s += fmt::format("{} = {}", expr, p.target);
    return s;
  }
  std::string w = steps_sentence(p.solution, rng);
  return fmt::format(
      "Countdown puzzle: reach {} from the numbers {}, using every number exactly once with addition, subtraction, "
      "multiplication and division.\n\nOne solution: {}. Written as a single expression, {} = {}.",
      p.target, nums, w, expr, p.target);
}

std::vector<std::string> generate_documents(const std::string& kind, int64_t count, uint64_t seed, Style style, int per_doc) {
  BALEINE_CHECK(kind == "arithmetic" || kind == "countdown", "unknown generator '{}'", kind);
  BALEINE_CHECK(count >= 0, "--count must be >= 0, got {}", count);
  BALEINE_CHECK(per_doc >= 1, "--per-doc must be >= 1, got {}", per_doc);
  std::vector<std::string> docs(static_cast<size_t>(count));
  parallel_for(count, [&](int64_t b, int64_t e) {
    for (int64_t d = b; d < e; ++d) {
      std::string text;
      for (int k = 0; k < per_doc; ++k) {
        int64_t i = d * per_doc + k;
        uint64_t variant = mix64(seed ^ 0x76617269ULL) + uint64_t(i) * 0x9E3779B97F4A7C15ULL;
        bool think = style == Style::Think || (style == Style::Mixed && (mix64(variant) % 3) != 0);
        if (k) text += "\n\n";
        text += kind == "arithmetic" ? render_arithmetic(make_arithmetic(seed, i), think, variant)
                                     : render_countdown(make_countdown(seed, i), think, variant);
      }
      docs[size_t(d)] = std::move(text);
    }
  }, 64);
  return docs;
}

}  // namespace baleine::data
