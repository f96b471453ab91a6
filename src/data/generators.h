// data/generators.h — synthetic, verifiable reasoning text: multi-digit arithmetic and countdown puzzles
// with worked step-by-step solutions, as "<think>…</think> then answer" or as plain prose.
// defines: Style, ArithmeticProblem, make_arithmetic, render_arithmetic, CountdownStep, CountdownProblem,
//          make_countdown, solve_countdown, render_countdown, generate_documents
//
// Everything is a pure function of (seed, index): problem i is the same whatever --count is, and
// generation can run in parallel. Equations use ASCII operators: + - * /.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace baleine::data {

enum class Style { Think, Prose, Mixed };  // Mixed: problem i uses Think when its own coin says so (~2/3)
Style parse_style(const std::string& name);

struct ArithmeticProblem {
  int64_t a = 0, b = 0;  // operands, a up to 12 digits (multiplication: a <= 8 digits, b <= 4 digits)
  char op = '+';         // '+', '-', '*'
  int64_t result = 0;    // exact (may be negative for '-')
};
ArithmeticProblem make_arithmetic(uint64_t seed, int64_t index);
std::string render_arithmetic(const ArithmeticProblem& p, bool think, uint64_t variant);

struct CountdownStep {
  int64_t x = 0, y = 0, result = 0;
  char op = '+';
};
struct CountdownProblem {
  std::vector<int64_t> numbers;  // 3 to 5 numbers, each must be used exactly once
  int64_t target = 0;
  std::vector<CountdownStep> solution;                 // found by solve_countdown
  std::vector<std::vector<CountdownStep>> dead_ends;   // up to 2 full attempts that missed the target
};
CountdownProblem make_countdown(uint64_t seed, int64_t index);
// Depth-first search combining two numbers at a time (+, -, *, exact /, intermediate results positive).
// Returns false when no combination using every number reaches target. Records up to max_dead_ends misses.
bool solve_countdown(const std::vector<int64_t>& numbers, int64_t target, std::vector<CountdownStep>* solution,
                     std::vector<std::vector<CountdownStep>>* dead_ends = nullptr, int max_dead_ends = 2);
std::string render_countdown(const CountdownProblem& p, bool think, uint64_t variant);
// The solution as one expression, e.g. "(25 * 7) + (8 + 3)".
std::string countdown_expression(const CountdownProblem& p);

// count documents (per_doc problems each) for kind "arithmetic" or "countdown".
std::vector<std::string> generate_documents(const std::string& kind, int64_t count, uint64_t seed, Style style,
                                            int per_doc = 1);

}  // namespace baleine::data
