// rl/tasks.h — verifiable task suites for reinforcement learning and evaluation: generators with disjoint
// train / held-out splits, exact graders, the R1-Zero format check and the rule reward.
// defines: Split, Problem, render_solution, Grade, TaskSuite, make_suite, PromptFormat, prompt_format_from_name, render_prompt,
//          AnswerFormat, extract_answer, format_ok, RewardConfig, Scored, score_response, evaluate_countdown
//
// Answer formats graded (see extract_answer): the R1-Zero form `<think>…</think> <answer>X</answer>`, and the
// final-line form of baleine's pretraining generators `<think>…</think>\n… = X` (the last line after </think>;
// the value after its last '='). Graders are exact: integers compare as integers, countdown expressions are
// evaluated with exact rational arithmetic and must use every given number exactly once.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace baleine::rl {

enum class Split { Train, Test };
Split split_from_name(const std::string& name);  // "train", "test"

struct Problem {
  std::string suite;     // "arithmetic", "countdown", "word"
  std::string key;       // canonical identity: two problems with the same key are the same problem
  std::string question;  // the text put into the prompt
  std::string answer;    // a reference answer (the value, or one solving expression for countdown)
  std::vector<int64_t> numbers;  // countdown: the numbers to use
  int64_t target = 0;            // countdown target / the numeric answer otherwise
  char op = 0;                   // arithmetic: the operator (numbers = {a, b})
  std::string reasoning;         // a worked solution, the text that goes inside <think>…</think>
};

struct Grade {
  bool attempted = false;  // an answer could be extracted
  bool correct = false;
  std::string answer;      // the extracted answer text
  std::string why;         // short reason when incorrect ("no answer", "uses 7 twice", "value 12, expected 13")
};

class TaskSuite {
 public:
  virtual ~TaskSuite() = default;
  virtual std::string name() const = 0;
  // Problem `index` of `split`. Pure function of (seed, split, index). A problem belongs to the held-out split
  // exactly when a hash of its key says so, so train and test can never share a problem.
  Problem problem(Split split, int64_t index) const;
  // Grades an extracted answer string (no tags) against the problem.
  virtual Grade grade(const Problem& p, std::string_view answer) const = 0;
  uint64_t seed() const { return seed_; }

 protected:
  explicit TaskSuite(uint64_t seed) : seed_(seed) {}
  virtual Problem candidate(uint64_t stream) const = 0;  // any problem from a random stream value
  uint64_t seed_;
};

// A suite by name with options: {"name": "arithmetic", "min_digits": 1, "max_digits": 3, "ops": "+-*",
// "reasoning": "steps" (the pretraining generators' prose) or "short" (one line per column)},
// {"name": "countdown", "min_numbers": 3, "max_numbers": 4}, {"name": "word"}. `where` names the source in errors.
std::unique_ptr<TaskSuite> make_suite(const nlohmann::json& spec, uint64_t seed, const std::string& where);
// A command line's suite argument: a name ("word") or a JSON spec ('{"name":"arithmetic",...}'); throws
// baleine::Error naming `where` on malformed JSON.
nlohmann::json suite_spec_from_arg(const std::string& arg, const std::string& where);

// How a problem becomes the text the model continues.
//   R1Zero: the R1-Zero instruction ("…enclosed within <think> </think> and <answer> </answer> tags…"), then
//           "User: {question}\nAssistant: <think>" — graded with <answer> tags.
//   Plain:  "Problem: {question}\n<think>\n" — the pretraining generators' format, graded on the final line.
//   Chat:   the model's chat template (DeepSeek-R1), user turn = question + answer instruction; generation
//           prompt "<｜Assistant｜><think>\n"; graded with <answer> tags.
enum class PromptFormat { R1Zero, Plain, Chat };
PromptFormat prompt_format_from_name(const std::string& name);  // "r1zero", "plain", "chat"
std::string render_prompt(const Problem& p, PromptFormat format);
// The user turn of the Chat format.
std::string chat_user_message(const Problem& p);
// Every format ends inside an open <think>: the graded text is "<think>" + completion.

// A correct completion of render_prompt(p, format) (what comes after the prompt's "<think>"): the worked
// reasoning, "</think>", then the answer in the format's form. For cold-start SFT and pretraining text.
std::string render_solution(const Problem& p, PromptFormat format);

enum class AnswerFormat { Tags, FinalLine };
AnswerFormat answer_format_of(PromptFormat f);
// The answer inside the last <answer>…</answer> (Tags), or the last non-empty line after </think> with the part
// after its last '=' (FinalLine; for countdown the whole line is returned so the expression can be checked).
// nullopt when there is no </think> or no answer.
std::optional<std::string> extract_answer(std::string_view text, AnswerFormat format, bool keep_equation);
// R1-Zero format: text = <think> reasoning </think>, then the answer (Tags: <answer>…</answer> with nothing but
// whitespace after; FinalLine: one non-empty line), reasoning non-empty, exactly one <think> and one </think>.
bool format_ok(std::string_view text, AnswerFormat format);

struct RewardConfig {
  double correct = 1.0;     // answer correct (whether or not the format is perfect)
  double formatted = 0.1;   // well-formatted but wrong (TinyZero's 0.1)
  double otherwise = 0.0;   // malformed and wrong
};
struct Scored {
  Grade grade;
  bool formatted = false;
  double reward = 0;
};
// text: the full response, beginning with "<think>".
Scored score_response(const TaskSuite& suite, const Problem& p, std::string_view text, AnswerFormat format,
                      const RewardConfig& rc = {});

// Exact evaluation of a countdown expression (integers, + - * /, parentheses). Returns the value as a reduced
// fraction num/den and the numbers used, or an error message.
struct ExprValue {
  int64_t num = 0, den = 1;
  std::vector<int64_t> used;
  std::string error;  // empty when valid
};
ExprValue evaluate_countdown(std::string_view expr);

}  // namespace baleine::rl
