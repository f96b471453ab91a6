// SFT data path (chat rendering with the assistant mask, packing) and short in-process sft / grpo runs with
// checkpoints and exact resume, on a tiny random model with a freshly trained tokenizer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/safetensors.h"
#include "models/weights.h"
#include "rl/distill.h"
#include "rl/grpo.h"
#include "rl/sft.h"

using namespace baleine;
using namespace baleine::rl;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("baleine_rl_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A model directory: a tiny parity-fixture architecture (V3 without MTP, or the dense qwen2) with a 400-token
// vocabulary, random weights and a BPE tokenizer trained on a little arithmetic text.
fs::path make_model_dir(const std::string& arch) {
  fs::path d = temp_dir("model_" + arch);
  {
    std::ofstream text(d / "text.txt");
    auto suite = make_suite(json("word"), 1, "test");
    for (int i = 0; i < 300; ++i) {
      Problem p = suite->problem(Split::Train, i);
      text << "Problem: " << p.question << "\n<think>\n" << p.reasoning << "</think>\n" << p.answer << "\n\n";
    }
  }
  BpeTrainOptions o;
  o.vocab_size = 400;
  o.progress = false;
  train_bpe_tokenizer({(d / "text.txt").string()}, d.string(), o);
  std::ifstream in(std::string(BALEINE_TEST_DATA) + "/parity/" + arch + "/config.json");
  json cfg = json::parse(in);
  cfg["vocab_size"] = 400;
  if (cfg.contains("num_nextn_predict_layers")) cfg["num_nextn_predict_layers"] = 0;
  cfg["max_position_embeddings"] = 4096;
  std::ofstream(d / "config.json") << cfg.dump(2);
  auto model = create_model(parse_model_config(cfg, "test"));
  init_params_random(*model, 5, 0.05f);
  std::vector<std::pair<std::string, Tensor>> params;
  model->for_each_param([&](nn::Param& p) { if (p.tensor->defined()) params.emplace_back(p.name, *p.tensor); });
  io::safetensors_write((d / "model.safetensors").string(), params);
  return d;
}
const fs::path& model_dir() {
  static fs::path dir = make_model_dir("v3");
  return dir;
}

// SFT data of word problems with reasoning, as chat samples.
void write_sft_data(const fs::path& f, int n) {
  std::ofstream out(f);
  auto suite = make_suite(json("word"), 2, "test");
  for (int i = 0; i < n; ++i) {
    Problem p = suite->problem(Split::Train, i);
    json m = {{"messages", {{{"role", "user"}, {"content", chat_user_message(p)}},
                            {{"role", "assistant"}, {"content", "<think>\n" + render_solution(p, PromptFormat::Chat)}}}}};
    out << m.dump() << "\n";
  }
}

ChatMessage msg(const std::string& role, const std::string& content) {
  ChatMessage m;
  m.role = role;
  m.content = content;
  return m;
}

std::vector<json> read_lines(const fs::path& f) {
  std::vector<json> out;
  std::ifstream in(f);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(json::parse(l));
  return out;
}

std::string decode_where(const Tokenizer& tok, const TokenizedSample& s, bool trained) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < s.tokens.size(); ++i)
    if (bool(s.trained[i]) == trained) ids.push_back(s.tokens[i]);
  return tok.decode(ids);
}

}  // namespace

TEST(RlSft, AssistantTokensAreExactlyTheTrainedOnes) {
  Tokenizer tok = Tokenizer::load(model_dir().string());
  auto r1 = tokenize_conversation(tok, ChatFormat::DeepSeekR1,
                                  {msg("user", "What is 2 + 3?"), msg("assistant", "<think>\n2 plus 3\n</think>\n<answer>5</answer>")});
  ASSERT_EQ(r1.size(), 1u);
  // The trained text is the reply after the generation prompt's "<think>\n", with the end-of-sentence marker.
  EXPECT_EQ(decode_where(tok, r1[0], true), "2 plus 3\n</think>\n<answer>5</answer><｜end▁of▁sentence｜>");
  EXPECT_EQ(decode_where(tok, r1[0], false),
            apply_chat_template(ChatFormat::DeepSeekR1, {msg("user", "What is 2 + 3?")}));
  // Qwen2 ChatML keeps history verbatim: one sample, two trained spans, the second user turn untrained.
  auto q = tokenize_conversation(tok, ChatFormat::Qwen2,
                                 {msg("system", "Be brief."), msg("user", "a?"), msg("assistant", "A."), msg("user", "b?"),
                                  msg("assistant", "B.")});
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(decode_where(tok, q[0], true), "A.<|im_end|>\nB.<|im_end|>\n");
  // DeepSeek-R1 rewrites history (earlier reasoning dropped): each assistant turn is its own sample.
  auto multi = tokenize_conversation(tok, ChatFormat::DeepSeekR1,
                                     {msg("user", "a?"), msg("assistant", "<think>\nx\n</think>\nA."), msg("user", "b?"),
                                      msg("assistant", "<think>\ny\n</think>\nB.")});
  ASSERT_EQ(multi.size(), 2u);
  EXPECT_EQ(decode_where(tok, multi[1], true), "y\n</think>\nB.<｜end▁of▁sentence｜>");
  EXPECT_EQ(decode_where(tok, multi[1], false).find("x\n"), std::string::npos);  // stripped from history
  EXPECT_THROW(parse_messages(json{{"messages", {{{"role", "robot"}, {"content", "hi"}}}}}, "f.jsonl:3"), Error);
  EXPECT_THROW(parse_messages(json{{"text", "hi"}}, "f.jsonl:3"), Error);
}

TEST(RlSft, PackingKeepsSamplesWholeAndWeightsAligned) {
  std::vector<TokenizedSample> samples;
  for (int i = 0; i < 9; ++i) {
    TokenizedSample s;
    for (int t = 0; t < 5 + i; ++t) s.tokens.push_back(t + i), s.trained.push_back(t >= 3);
    samples.push_back(s);
  }
  auto windows = pack_samples(samples, 20, 3);
  int64_t total = 0, trained_rows = 0, expected_rows = 0;
  for (const auto& w : windows) {
    int64_t sum = 0;
    for (int64_t l : w.lengths) sum += l;
    EXPECT_EQ(sum, int64_t(w.tokens.size()));
    EXPECT_LE(sum, 20);
    EXPECT_EQ(w.weights.size(), w.tokens.size());
    int64_t at = 0;
    for (int64_t l : w.lengths) {
      for (int64_t t = 0; t < l; ++t) EXPECT_EQ(w.weights[size_t(at + t)], (t + 1 < l && t + 1 >= 3) ? 1.0f : 0.0f);
      at += l;
    }
    total += sum;
    for (float x : w.weights) trained_rows += x == 1.0f;
  }
  for (const auto& s : samples) expected_rows += int64_t(s.tokens.size()) - 3;
  EXPECT_EQ(total, 5 * 9 + 36);
  EXPECT_EQ(trained_rows, expected_rows);
  EXPECT_LT(windows.size(), samples.size());  // packing did pack
}

TEST(RlSft, RunCheckpointsAndResumesExactly) {
  fs::path d = temp_dir("sft");
  write_sft_data(d / "train.jsonl", 12);
  auto recipe = [&](const std::string& out, int64_t steps) {
    json r = {{"model", model_dir().string()}, {"data", (d / "train.jsonl").string()}, {"val_data", (d / "train.jsonl").string()},
              {"out", (d / out).string()}, {"seq_len", 192}, {"batch_size", 2}, {"steps", steps}, {"checkpoint_every", 2},
              {"eval_every", 2}, {"lr", {{"schedule", "constant"}, {"max", 3e-3}}}, {"seed", 4}};
    std::ofstream(d / (out + ".json")) << r.dump();
    return load_sft_recipe((d / (out + ".json")).string());
  };
  ASSERT_EQ(run_sft(recipe("full", 6), false), 0);
  ASSERT_EQ(run_sft(recipe("split", 4), false), 0);
  ASSERT_EQ(run_sft(recipe("split", 6), true), 0);  // resumes at step 4
  auto a = read_lines(d / "full" / "metrics.jsonl"), b = read_lines(d / "split" / "metrics.jsonl");
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i]["loss"].get<double>(), b[i]["loss"].get<double>()) << "step " << i + 1;
  EXPECT_LT(a.back()["val_loss"].get<double>(), a[1]["val_loss"].get<double>());  // it learns
  EXPECT_TRUE(fs::exists(d / "full" / "checkpoints" / "step-00000006" / "tokenizer.json"));
  std::ofstream(d / "bad.json") << json{{"model", model_dir().string()}, {"data", "x.jsonl"}, {"sequence_len", 5}}.dump();
  EXPECT_THROW(load_sft_recipe((d / "bad.json").string()), Error);
}

// The dense R1-Distill student family (qwen2 here) takes the same SFT: its backward (models/dense_train.cpp)
// drives the run, and the validation loss falls.
TEST(RlSft, DenseModelTrains) {
  fs::path d = temp_dir("sft_dense");
  write_sft_data(d / "train.jsonl", 12);
  const fs::path model = make_model_dir("qwen2");
  json r = {{"model", model.string()}, {"data", (d / "train.jsonl").string()}, {"val_data", (d / "train.jsonl").string()},
            {"out", (d / "out").string()}, {"seq_len", 192}, {"batch_size", 2}, {"steps", 6}, {"checkpoint_every", 3},
            {"eval_every", 2}, {"lr", {{"schedule", "constant"}, {"max", 3e-3}}}, {"seed", 4}};
  std::ofstream(d / "r.json") << r.dump();
  ASSERT_EQ(run_sft(load_sft_recipe((d / "r.json").string()), false), 0);
  auto m = read_lines(d / "out" / "metrics.jsonl");
  ASSERT_EQ(m.size(), 6u);
  EXPECT_LT(m.back()["val_loss"].get<double>(), m[1]["val_loss"].get<double>());
  EXPECT_TRUE(fs::exists(d / "out" / "checkpoints" / "step-00000006" / "model.safetensors"));
  auto trained = load_model((d / "out" / "checkpoints" / "step-00000006").string());
  EXPECT_EQ(trained->config().model_type, "qwen2");
}

namespace {
// A quick SFT so that some samples are well formed and groups carry a reward signal; returns its checkpoint.
std::string quick_sft(const fs::path& model, const fs::path& d) {
  std::ofstream f(d / "train.jsonl");
  auto suite = make_suite(json("word"), 2, "test");
  for (int i = 0; i < 16; ++i) {
    Problem p = suite->problem(Split::Train, i);
    json m = {{"messages", {{{"role", "user"}, {"content", chat_user_message(p)}},
                            {{"role", "assistant"}, {"content", "<think>\nok\n</think>\n<answer>" + p.answer + "</answer>"}}}}};
    f << m.dump() << "\n";
  }
  f.close();
  json r = {{"model", model.string()}, {"data", (d / "train.jsonl").string()}, {"out", (d / "sft").string()},
            {"seq_len", 256}, {"batch_size", 4}, {"steps", 40}, {"checkpoint_every", 40},
            {"lr", {{"schedule", "constant"}, {"max", 1e-2}}}, {"seed", 4}};
  std::ofstream(d / "sft.json") << r.dump();
  EXPECT_EQ(run_sft(load_sft_recipe((d / "sft.json").string()), false), 0);
  return (d / "sft" / "checkpoints" / "step-00000040").string();
}
GrpoRecipe short_grpo_recipe(const std::string& start, const fs::path& d, const std::string& out, int64_t steps, double beta) {
  json r = {{"model", start}, {"out", (d / out).string()}, {"suite", "word"}, {"prompt_format", "chat"},
            {"prompts_per_step", 2}, {"group_size", 4}, {"max_new_tokens", 24}, {"steps", steps}, {"beta", beta},
            {"inner_iterations", 2}, {"eval_every", 2}, {"eval_problems", 2}, {"checkpoint_every", 1},
            {"lr", {{"schedule", "constant"}, {"max", 1e-3}}}, {"seed", 9},
            {"reward", {{"correct", 1.0}, {"formatted", 0.5}, {"otherwise", 0.0}}}};
  std::ofstream(d / (out + ".json")) << r.dump();
  return load_grpo_recipe((d / (out + ".json")).string());
}
}  // namespace

TEST(RlGrpoRun, ShortRunLogsMetricsAndResumesExactly) {
  fs::path d = temp_dir("grpo");
  const std::string start = quick_sft(model_dir(), d);
  auto recipe = [&](const std::string& out, int64_t steps, double beta) { return short_grpo_recipe(start, d, out, steps, beta); };
  ASSERT_EQ(run_grpo(recipe("full", 3, 0.04), false), 0);
  ASSERT_EQ(run_grpo(recipe("split", 2, 0.04), false), 0);
  ASSERT_EQ(run_grpo(recipe("split", 3, 0.04), true), 0);
  auto a = read_lines(d / "full" / "metrics.jsonl"), b = read_lines(d / "split" / "metrics.jsonl");
  std::vector<json> sa, sb;
  for (auto& m : a) if (m.contains("reward")) sa.push_back(m);
  for (auto& m : b) if (m.contains("reward")) sb.push_back(m);
  ASSERT_EQ(sa.size(), 3u);
  ASSERT_EQ(sb.size(), 3u);
  double signal = 0;
  for (const char* k : {"reward", "accuracy", "response_tokens", "kl", "zero_variance_groups", "clip_frac", "loss", "grad_norm"})
    for (size_t i = 0; i < 3; ++i) {
      ASSERT_TRUE(sa[i].contains(k)) << k;
      EXPECT_EQ(sa[i][k].get<double>(), sb[i][k].get<double>()) << k << " at step " << i + 1;
    }
  for (const auto& m : sa) signal += m["grad_norm"].get<double>();
  EXPECT_GT(signal, 0.0) << "no group had a reward signal: the resume check would be vacuous";
  EXPECT_TRUE(a.front().contains("eval_accuracy"));  // evaluation before the first step
  EXPECT_GT(sa[2]["kl"].get<double>(), 0.0);  // the policy moved away from the reference
  std::ofstream(d / "bad.json") << json{{"model", model_dir().string()}, {"loss_averaging", "per-token"}}.dump();
  EXPECT_THROW(load_grpo_recipe((d / "bad.json").string()), Error);
}

// The variants are recipe data: each sets its defaults, an explicit key wins, and a DAPO run trains only on
// groups whose rewards vary (the rest are drawn again, up to dynamic_sampling_rounds).
TEST(RlGrpoRun, VariantsSetTheirDefaultsAndDapoRuns) {
  fs::path d = temp_dir("grpo_variants");
  auto load = [&](json r) {
    r["model"] = model_dir().string();
    r["max_new_tokens"] = 40;
    std::ofstream(d / "r.json") << r.dump();
    return load_grpo_recipe((d / "r.json").string());
  };
  auto plain = load(json::object());
  EXPECT_TRUE(plain.scale_rewards);
  EXPECT_EQ(plain.loss.averaging, LossAveraging::Token);
  EXPECT_EQ(plain.loss.eps_high, 0.2);
  EXPECT_FALSE(plain.dynamic_sampling);
  EXPECT_EQ(plain.overlong_buffer, 0);
  auto dr = load({{"variant", "dr_grpo"}});
  EXPECT_FALSE(dr.scale_rewards);
  EXPECT_EQ(dr.loss.averaging, LossAveraging::Constant);
  EXPECT_EQ(dr.loss.constant_tokens, 40);
  auto dapo = load({{"variant", "dapo"}});
  EXPECT_EQ(dapo.loss.eps_low, 0.2);
  EXPECT_EQ(dapo.loss.eps_high, 0.28);
  EXPECT_TRUE(dapo.dynamic_sampling);
  EXPECT_EQ(dapo.loss.averaging, LossAveraging::Token);
  EXPECT_EQ(dapo.overlong_buffer, 8);
  auto custom = load({{"variant", "dapo"}, {"epsilon_high", 0.3}, {"overlong_buffer", 0}, {"dynamic_sampling", false}});
  EXPECT_EQ(custom.loss.eps_high, 0.3);
  EXPECT_EQ(custom.overlong_buffer, 0);
  EXPECT_FALSE(custom.dynamic_sampling);
  EXPECT_THROW(load({{"variant", "ppo"}}), Error);
  EXPECT_THROW(load({{"overlong_buffer", 41}}), Error);

  const std::string start = quick_sft(model_dir(), d);
  json r = {{"model", start}, {"out", (d / "dapo").string()}, {"suite", "word"}, {"prompt_format", "chat"},
            {"variant", "dapo"}, {"prompts_per_step", 2}, {"group_size", 4}, {"max_new_tokens", 24}, {"steps", 3},
            {"dynamic_sampling_rounds", 2}, {"eval_problems", 0}, {"checkpoint_every", 3},
            {"lr", {{"schedule", "constant"}, {"max", 1e-3}}}, {"seed", 9},
            {"reward", {{"correct", 1.0}, {"formatted", 0.5}, {"otherwise", 0.0}}}};
  std::ofstream(d / "dapo.json") << r.dump();
  ASSERT_EQ(run_grpo(load_grpo_recipe((d / "dapo.json").string()), false), 0);
  std::vector<json> steps;
  for (auto& m : read_lines(d / "dapo" / "metrics.jsonl")) if (m.contains("reward")) steps.push_back(m);
  ASSERT_EQ(steps.size(), 3u);
  for (const auto& m : steps) {
    const double trained = m["groups_trained"].get<double>(), rounds = m["sampling_rounds"].get<double>();
    EXPECT_LE(trained, 2.0);
    EXPECT_GE(rounds, 1.0);
    EXPECT_LE(rounds, 2.0);
    // A second round is drawn only when the first did not fill the batch with informative groups.
    if (rounds == 2.0) {
      EXPECT_GT(m["zero_variance_groups"].get<double>(), 0.0);
    }
    if (trained == 0.0) {
      EXPECT_EQ(m["grad_norm"].get<double>(), 0.0);  // nothing to learn from: no update
    }
  }
}

// GRPO on a dense qwen2 policy (rollouts through the batched generator, the loss through its backward).
TEST(RlGrpoRun, DenseModelPolicy) {
  fs::path d = temp_dir("grpo_dense");
  const std::string start = quick_sft(make_model_dir("qwen2"), d);
  ASSERT_EQ(run_grpo(short_grpo_recipe(start, d, "run", 3, 0.04), false), 0);
  std::vector<json> steps;
  for (auto& m : read_lines(d / "run" / "metrics.jsonl")) if (m.contains("reward")) steps.push_back(m);
  ASSERT_EQ(steps.size(), 3u);
  double signal = 0;
  for (const auto& m : steps) signal += m["grad_norm"].get<double>();
  EXPECT_GT(signal, 0.0) << "no group had a reward signal";
  EXPECT_GT(steps[2]["kl"].get<double>(), 0.0);  // the policy moved away from the reference
}

TEST(RlDistill, RejectionSamplingKeepsOnlyGradedCorrectSamples) {
  auto suite = make_suite(json("word"), 3, "test");
  int call = 0;
  CompleteFn teacher = [&](const std::string& prompt, const SamplingParams&) {
    // Every problem: first sample wrong, second right (plain format: reasoning, </think>, final line).
    const int i = call / 2;
    Problem p = suite->problem(Split::Train, i);
    EXPECT_NE(prompt.find(p.question), std::string::npos);
    const bool right = call++ % 2 == 1;
    return std::make_pair("\nsome steps\n</think>\n" + (right ? p.answer : std::to_string(p.target + 3)), int64_t(7));
  };
  RejectionConfig cfg;
  cfg.problems = 5;
  cfg.k = 3;
  std::string out;
  auto st = rejection_sample(teacher, *suite, cfg, out);
  EXPECT_EQ(st.samples, 10);  // stops at the first kept sample of each problem
  EXPECT_EQ(st.correct, 5);
  EXPECT_EQ(st.kept, 5);
  std::istringstream lines(out);
  Tokenizer tok = Tokenizer::load(model_dir().string());
  int n = 0;
  for (std::string l; std::getline(lines, l); ++n) {
    json j = json::parse(l);
    Problem p = suite->problem(Split::Train, n);
    EXPECT_EQ(j["messages"][1]["content"].get<std::string>(), "<think>\nsome steps\n</think>\n<answer>" + p.answer + "</answer>");
    auto samples = tokenize_conversation(tok, ChatFormat::DeepSeekR1, parse_messages(j, "out"));
    EXPECT_EQ(samples.size(), 1u);
    // The sample as SFT data is itself graded correct in the chat format.
    EXPECT_TRUE(score_response(*suite, p, j["messages"][1]["content"].get<std::string>(), AnswerFormat::Tags).grade.correct);
  }
  EXPECT_EQ(n, 5);
}

TEST(RlDistill, LogitDistillationPullsTheStudentTowardTheTeacher) {
  fs::path d = temp_dir("distill");
  {
    std::ofstream f(d / "train.jsonl");
    auto suite = make_suite(json("word"), 2, "test");
    for (int i = 0; i < 8; ++i) {
      Problem p = suite->problem(Split::Train, i);
      f << json{{"messages", {{{"role", "user"}, {"content", chat_user_message(p)}},
                              {{"role", "assistant"}, {"content", "<think>\n" + render_solution(p, PromptFormat::Chat)}}}}}.dump()
        << "\n";
    }
  }
  // The student: the random model after a few SFT steps; the teacher: the random model itself.
  json s = {{"model", model_dir().string()}, {"data", (d / "train.jsonl").string()}, {"out", (d / "student").string()},
            {"seq_len", 192}, {"batch_size", 2}, {"steps", 4}, {"checkpoint_every", 4},
            {"lr", {{"schedule", "constant"}, {"max", 1e-2}}}};
  std::ofstream(d / "student.json") << s.dump();
  ASSERT_EQ(run_sft(load_sft_recipe((d / "student.json").string()), false), 0);
  json r = {{"model", (d / "student" / "checkpoints" / "step-00000004").string()}, {"teacher", model_dir().string()},
            {"data", (d / "train.jsonl").string()}, {"out", (d / "kd").string()}, {"seq_len", 192}, {"batch_size", 2},
            {"steps", 8}, {"checkpoint_every", 8}, {"beta", 0.5}, {"temperature", 2.0},
            {"lr", {{"schedule", "constant"}, {"max", 3e-3}}}};
  std::ofstream(d / "kd.json") << r.dump();
  EXPECT_THROW(load_sft_recipe((d / "kd.json").string()), Error);  // 'teacher' is not an sft key
  ASSERT_EQ(run_sft(load_sft_recipe((d / "kd.json").string(), true), false), 0);
  auto m = read_lines(d / "kd" / "metrics.jsonl");
  ASSERT_EQ(m.size(), 8u);
  EXPECT_GT(m.front()["loss"].get<double>(), 0.0);
  EXPECT_LT(m.back()["loss"].get<double>(), 0.7 * m.front()["loss"].get<double>());
}
