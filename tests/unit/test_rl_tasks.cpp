// Task suites, graders and rewards on hand-made correct, incorrect and malformed answers.
#include <gtest/gtest.h>

#include <set>

#include "core/check.h"
#include "rl/tasks.h"

using namespace baleine;
using namespace baleine::rl;

namespace {

Problem countdown_problem(std::vector<int64_t> nums, int64_t target) {
  Problem p;
  p.suite = "countdown";
  p.numbers = std::move(nums);
  p.target = target;
  return p;
}

}  // namespace

TEST(RlTasks, ArithmeticProblemsAreExactAndDeterministic) {
  auto s = make_suite(nlohmann::json{{"name", "arithmetic"}, {"min_digits", 2}, {"max_digits", 4}}, 7, "test");
  for (int i = 0; i < 200; ++i) {
    Problem p = s->problem(Split::Train, i);
    int64_t a = 0, b = 0;
    char op = 0;
    ASSERT_EQ(std::sscanf(p.question.c_str(), "What is %ld %c %ld?", &a, &op, &b), 3) << p.question;
    EXPECT_GE(a, 10);
    EXPECT_LT(a, 10000);
    EXPECT_EQ(p.target, op == '+' ? a + b : op == '-' ? a - b : a * b) << p.question;
    EXPECT_EQ(p.answer, std::to_string(p.target));
    EXPECT_EQ(s->problem(Split::Train, i).key, p.key);  // a pure function of (seed, split, index)
  }
}

TEST(RlTasks, HeldOutSplitIsDisjointFromTrain) {
  for (const char* name : {"arithmetic", "countdown", "word"}) {
    auto s = make_suite(nlohmann::json(name), 3, "test");
    std::set<std::string> train, test;
    for (int i = 0; i < 400; ++i) train.insert(s->problem(Split::Train, i).key);
    for (int i = 0; i < 100; ++i) test.insert(s->problem(Split::Test, i).key);
    for (const auto& k : test) EXPECT_EQ(train.count(k), 0u) << name << " problem " << k << " is in both splits";
    EXPECT_GT(test.size(), 50u) << name;  // not one problem repeated
  }
}

TEST(RlTasks, IntegerGrader) {
  auto s = make_suite(nlohmann::json("arithmetic"), 1, "test");
  Problem p = s->problem(Split::Test, 0);
  p.target = 1234;
  EXPECT_TRUE(s->grade(p, "1234").correct);
  EXPECT_TRUE(s->grade(p, " 1,234. ").correct);
  EXPECT_TRUE(s->grade(p, "617 * 2 = 1234").correct);  // the value after the last '='
  EXPECT_FALSE(s->grade(p, "1235").correct);
  EXPECT_TRUE(s->grade(p, "1235").attempted);
  EXPECT_FALSE(s->grade(p, "twelve").correct);
  EXPECT_FALSE(s->grade(p, "").attempted);
  p.target = -56;
  EXPECT_TRUE(s->grade(p, "-56").correct);
  EXPECT_FALSE(s->grade(p, "56").correct);
}

TEST(RlTasks, CountdownExpressionsAreEvaluatedExactly) {
  auto v = evaluate_countdown("(25 * 7) + (8 + 3)");
  EXPECT_TRUE(v.error.empty()) << v.error;
  EXPECT_EQ(v.num, 186);
  EXPECT_EQ(v.den, 1);
  EXPECT_EQ(v.used, (std::vector<int64_t>{25, 7, 8, 3}));
  v = evaluate_countdown("7 / 2 * 2");  // 7/2 is kept exact, not truncated to 3
  EXPECT_EQ(v.num, 7);
  EXPECT_EQ(v.den, 1);
  v = evaluate_countdown("1 / 3 + 1 / 6");
  EXPECT_EQ(v.num, 1);
  EXPECT_EQ(v.den, 2);
  v = evaluate_countdown("8 - 2 - 3");  // left associative
  EXPECT_EQ(v.num, 3);
  EXPECT_FALSE(evaluate_countdown("5 / (3 - 3)").error.empty());
  EXPECT_FALSE(evaluate_countdown("(5 + 3").error.empty());
  EXPECT_FALSE(evaluate_countdown("5 + ").error.empty());
  EXPECT_FALSE(evaluate_countdown("5 ^ 2").error.empty());
  EXPECT_FALSE(evaluate_countdown("-5 + 10").error.empty());  // no unary minus: it would invent a number
  EXPECT_FALSE(evaluate_countdown("9999999 * 9999999 * 9999999 * 9999999").error.empty());
}

TEST(RlTasks, CountdownGraderChecksNumberUsage) {
  auto s = make_suite(nlohmann::json("countdown"), 1, "test");
  Problem p = countdown_problem({25, 7, 8, 3}, 186);
  EXPECT_TRUE(s->grade(p, "(25 * 7) + (8 + 3)").correct);
  EXPECT_TRUE(s->grade(p, "25*7+8+3 = 186").correct);
  EXPECT_FALSE(s->grade(p, "25*7+8+3 = 187").correct);       // stated result is not the target
  EXPECT_FALSE(s->grade(p, "25*7+11").correct);               // 11 is not given
  EXPECT_FALSE(s->grade(p, "25*7+8+3+0").correct);            // an extra number
  EXPECT_FALSE(s->grade(p, "25*7+8").correct);                // 3 unused
  EXPECT_FALSE(s->grade(p, "(25 + 7) * 8 + 3").correct);      // right numbers, wrong value
  EXPECT_EQ(s->grade(p, "(25 + 7) * 8 + 3").why, "value 259, expected 186");
  Problem q = countdown_problem({3, 3, 4}, 13);
  EXPECT_TRUE(s->grade(q, "3 * 3 + 4").correct);
  EXPECT_FALSE(s->grade(q, "3 * 4 + 1").correct);
  // Every generated problem's reference answer solves it.
  for (int i = 0; i < 50; ++i) {
    Problem g = s->problem(Split::Train, i);
    EXPECT_GE(g.numbers.size(), 3u);
    EXPECT_LE(g.numbers.size(), 4u);
    EXPECT_TRUE(s->grade(g, g.answer).correct) << g.question << " / " << g.answer;
  }
}

TEST(RlTasks, WordProblemsHaveTheirAnswer) {
  auto s = make_suite(nlohmann::json("word"), 5, "test");
  std::set<char> first_words;
  for (int i = 0; i < 100; ++i) {
    Problem p = s->problem(Split::Train, i);
    EXPECT_TRUE(s->grade(p, p.answer).correct);
    EXPECT_FALSE(s->grade(p, std::to_string(p.target + 1)).correct);
    EXPECT_GE(p.target, 0) << p.question;
    EXPECT_NE(p.question.find('?'), std::string::npos);
  }
  Problem p;
  p.suite = "word";
  p.target = 42;
  EXPECT_TRUE(s->grade(p, "42").correct);
}

TEST(RlTasks, AnswerExtractionAndFormat) {
  const auto Tags = AnswerFormat::Tags, Final = AnswerFormat::FinalLine;
  EXPECT_EQ(extract_answer("<think>a</think> <answer> 12 </answer>", Tags, false).value_or("?"), "12");
  EXPECT_EQ(extract_answer("<think>a</think><answer>1</answer> <answer>2</answer>", Tags, false).value_or("?"), "2");
  EXPECT_FALSE(extract_answer("<think>a <answer>12</answer>", Tags, false));        // never closed the thinking
  EXPECT_FALSE(extract_answer("<think>a</think> 12", Tags, false));                 // no tags
  EXPECT_FALSE(extract_answer("<think>a</think> <answer>12", Tags, false));         // unterminated
  EXPECT_EQ(extract_answer("<think>\nwork\n</think>\n12 + 5 = 17", Final, false).value_or("?"), "17");
  EXPECT_EQ(extract_answer("<think>\nwork\n</think>\n3 * 4 + 1 = 13", Final, true).value_or("?"), "3 * 4 + 1 = 13");
  EXPECT_EQ(extract_answer("<think>w</think>\nso:\n 99 \n", Final, false).value_or("?"), "99");
  EXPECT_FALSE(extract_answer("<think>\nwork\n</think>\n", Final, false));

  EXPECT_TRUE(format_ok("<think>\nsteps\n</think>\n<answer>17</answer>", Tags));
  EXPECT_TRUE(format_ok("  <think>steps</think> <answer> 17 </answer>\n", Tags));
  EXPECT_FALSE(format_ok("<think></think><answer>17</answer>", Tags));                   // empty reasoning
  EXPECT_FALSE(format_ok("<think>s</think><answer>17</answer> and more", Tags));         // text after the answer
  EXPECT_FALSE(format_ok("<think>s</think><think>t</think><answer>17</answer>", Tags));  // two think blocks
  EXPECT_FALSE(format_ok("<answer>17</answer>", Tags));
  EXPECT_FALSE(format_ok("<think>s</think><answer></answer>", Tags));
  EXPECT_FALSE(format_ok("<think>s</think>17", Tags));
  EXPECT_TRUE(format_ok("<think>\nsteps\n</think>\n12 + 5 = 17", Final));
  EXPECT_FALSE(format_ok("<think>\nsteps\n</think>\n12 + 5 = 17\nmore", Final));
  EXPECT_FALSE(format_ok("<think>\nsteps\n", Final));
}

TEST(RlTasks, RewardCombinesCorrectnessAndFormat) {
  auto s = make_suite(nlohmann::json("arithmetic"), 1, "test");
  Problem p = s->problem(Split::Train, 3);
  p.target = 17;
  RewardConfig rc;
  auto sc = score_response(*s, p, "<think>\n12 plus 5\n</think>\n<answer>17</answer>", AnswerFormat::Tags, rc);
  EXPECT_TRUE(sc.grade.correct);
  EXPECT_TRUE(sc.formatted);
  EXPECT_DOUBLE_EQ(sc.reward, 1.0);
  sc = score_response(*s, p, "<think>\n12 plus 5\n</think>\n<answer>18</answer>", AnswerFormat::Tags, rc);
  EXPECT_FALSE(sc.grade.correct);
  EXPECT_TRUE(sc.formatted);
  EXPECT_DOUBLE_EQ(sc.reward, 0.1);
  sc = score_response(*s, p, "<think>\n12 plus 5 is 17", AnswerFormat::Tags, rc);
  EXPECT_FALSE(sc.grade.attempted);
  EXPECT_DOUBLE_EQ(sc.reward, 0.0);
  // Correct but with trailing chatter: the answer counts, the format does not.
  sc = score_response(*s, p, "<think>x</think><answer>17</answer> bye", AnswerFormat::Tags, rc);
  EXPECT_TRUE(sc.grade.correct);
  EXPECT_FALSE(sc.formatted);
  EXPECT_DOUBLE_EQ(sc.reward, 1.0);
  // The countdown suite reads the whole final line as an equation.
  auto cd = make_suite(nlohmann::json("countdown"), 1, "test");
  Problem q = countdown_problem({3, 3, 4}, 13);
  sc = score_response(*cd, q, "<think>\ntry\n</think>\n3 * 3 + 4 = 13", AnswerFormat::FinalLine, rc);
  EXPECT_TRUE(sc.grade.correct) << sc.grade.why;
}

TEST(RlTasks, PromptsEndInsideThink) {
  auto s = make_suite(nlohmann::json("word"), 1, "test");
  Problem p = s->problem(Split::Train, 0);
  for (auto f : {PromptFormat::R1Zero, PromptFormat::Plain, PromptFormat::Chat}) {
    std::string t = render_prompt(p, f);
    EXPECT_NE(t.find(p.question), std::string::npos);
    const size_t open = t.rfind("<think>");
    ASSERT_NE(open, std::string::npos);
    EXPECT_EQ(t.find("</think>", open), std::string::npos);  // the prompt leaves the model inside <think>
  }
}

TEST(RlTasks, BadSuiteSpecsAreClearErrors) {
  EXPECT_THROW(make_suite(nlohmann::json("algebra"), 1, "x.json"), Error);
  EXPECT_THROW(make_suite(nlohmann::json{{"name", "arithmetic"}, {"max_digits", 40}}, 1, "x.json"), Error);
  EXPECT_THROW(make_suite(nlohmann::json{{"name", "arithmetic"}, {"ops", "+/"}}, 1, "x.json"), Error);
  EXPECT_THROW(make_suite(nlohmann::json{{"name", "countdown"}, {"digits", 2}}, 1, "x.json"), Error);
  try {
    make_suite(nlohmann::json{{"name", "arithmetic"}, {"min_digits", 4}, {"max_digits", 2}}, 1, "x.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.json"), std::string::npos);
  }
}

TEST(RlTasks, WorkedSolutionsAreCorrectAndWellFormatted) {
  for (const nlohmann::json& spec : {nlohmann::json("arithmetic"), nlohmann::json("countdown"), nlohmann::json("word"),
                                    nlohmann::json{{"name", "arithmetic"}, {"reasoning", "short"}}}) {
    auto s = make_suite(spec, 2, "test");
    const std::string name = spec.dump();
    for (auto f : {PromptFormat::R1Zero, PromptFormat::Plain, PromptFormat::Chat})
      for (int i = 0; i < 30; ++i) {
        Problem p = s->problem(Split::Train, i);
        EXPECT_FALSE(p.reasoning.empty()) << name;
        auto sc = score_response(*s, p, "<think>" + render_solution(p, f), answer_format_of(f));
        EXPECT_TRUE(sc.grade.correct) << name << ": " << render_solution(p, f) << " / " << sc.grade.why;
        EXPECT_TRUE(sc.formatted) << name << ": " << render_solution(p, f);
      }
  }
}
