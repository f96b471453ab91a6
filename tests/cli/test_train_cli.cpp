// `baleine train` end to end: a run killed with SIGKILL and resumed reproduces the uninterrupted run exactly;
// recipe errors name the key.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
const std::string kBin = BALEINE_BINARY;
const std::string kData = BALEINE_TEST_DATA;

fs::path make_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("baleine_train_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A tiny, learnable token corpus (a random 12-token pattern repeated) in the `baleine data` shard format.
void write_shards(const fs::path& dir, int64_t vocab) {
  std::mt19937 rng(7);
  std::vector<uint32_t> pattern(12);
  for (auto& x : pattern) x = uint32_t(rng() % uint32_t(vocab));
  auto write = [&](const std::string& file, int64_t n) {
    std::vector<uint32_t> t(static_cast<size_t>(n));
    for (size_t i = 0; i < t.size(); ++i) t[i] = pattern[i % pattern.size()];
    std::ofstream(dir / file, std::ios::binary).write(reinterpret_cast<char*>(t.data()), std::streamsize(n * 4));
  };
  write("train-00000.bin", 4000);
  write("val-00000.bin", 500);
  json idx = {{"format", "baleine-tokens-v1"}, {"dtype", "uint32le"}, {"eos_id", 1}, {"vocab_size", vocab},
              {"splits", {{"train", {{"tokens", 4000}, {"documents", 1}, {"shards", {{{"file", "train-00000.bin"}, {"tokens", 4000}}}}}},
                          {"val", {{"tokens", 500}, {"documents", 1}, {"shards", {{{"file", "val-00000.bin"}, {"tokens", 500}}}}}}}}};
  std::ofstream(dir / "index.json") << idx.dump();
}

fs::path write_recipe(const fs::path& dir, const fs::path& data, int64_t steps, const std::string& arch = "v3") {
  std::ifstream in(kData + "/parity/" + arch + "/config.json");
  json model = json::parse(in);
  json r = {{"model", model}, {"data", data.string()}, {"out", (dir / "run").string()}, {"seq_len", 16},
            {"batch_size", 2}, {"steps", steps}, {"checkpoint_every", 4}, {"eval_every", 8}, {"eval_batches", 2},
            {"lr", {{"schedule", "cosine"}, {"max", 3e-3}, {"warmup_steps", 2}}}, {"seed", 11}};
  std::ofstream(dir / "recipe.json") << r.dump(2);
  return dir / "recipe.json";
}

// Runs baleine in a child whose files may not grow beyond `max_file_bytes` (RLIMIT_FSIZE), the way a full disk
// stops a write: SIGXFSZ is ignored (inherited through exec), so write() fails with EFBIG instead of killing it.
int run_with_file_limit(const std::vector<std::string>& args, rlim_t max_file_bytes, const fs::path& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) { ::dup2(fd, 1); ::dup2(fd, 2); ::close(fd); }
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {max_file_bytes, max_file_bytes};
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(126);
    std::vector<char*> argv{const_cast<char*>(kBin.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(kBin.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string read_text(const fs::path& f) {
  std::ifstream in(f, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

int run(const std::string& args, std::string* out = nullptr) {
  std::string cmd = kBin + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  std::string s;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) s.append(buf, n);
  if (out) *out = s;
  return WEXITSTATUS(pclose(p));
}

std::vector<json> read_metrics(const fs::path& f) {
  std::vector<json> m;
  std::ifstream in(f);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) m.push_back(json::parse(line));
  return m;
}
}  // namespace

// Pretraining a dense model (the qwen2 and llama fixture architectures): the cross-entropy through their backward,
// checkpoints a dense model loads back.
TEST(TrainCli, DenseModelsPretrain) {
  fs::path data = make_dir("dense_data");
  write_shards(data, 128);
  for (const std::string arch : {"qwen2", "llama"}) {
    fs::path d = make_dir("dense_" + arch);
    std::string out;
    ASSERT_EQ(run("train --config " + write_recipe(d, data, 16, arch).string(), &out), 0) << out;
    auto m = read_metrics(d / "run" / "metrics.jsonl");
    ASSERT_EQ(m.size(), 16u) << arch;
    EXPECT_LT(m.back()["loss"].get<double>(), 0.8 * m.front()["loss"].get<double>()) << arch;  // it learns the pattern
    EXPECT_TRUE(m.back().contains("val_loss")) << arch;
    EXPECT_FALSE(m.back().contains("expert_balance")) << arch;
    ASSERT_EQ(run("info --model " + (d / "run" / "checkpoints" / "step-00000016").string(), &out), 0) << out;
    EXPECT_NE(out.find(arch), std::string::npos) << out;
  }
  // Expert balancing asks for experts.
  fs::path d = make_dir("dense_bad");
  std::ifstream in(write_recipe(d, data, 4, "qwen2"));
  json r = json::parse(in);
  r["sequence_balance_alpha"] = 0.01;
  std::ofstream(d / "recipe.json") << r.dump();
  std::string out;
  EXPECT_NE(run("train --config " + (d / "recipe.json").string(), &out), 0);
  EXPECT_NE(out.find("sequence_balance_alpha"), std::string::npos) << out;
}

// "replicas": 2 splits each batch between two weight-sharing copies of the model run in parallel threads: the
// same bits on 1 and 2 threads (the grouping depends on the recipe only), the one-copy run's losses to rounding,
// and MoE balancing still sees every token (the expert loads of both copies are summed).
TEST(TrainCli, ReplicasGiveTheSameBitsOnAnyThreadCount) {
  fs::path data = make_dir("replicas_data");
  write_shards(data, 128);
  auto run_with = [&](const std::string& name, int replicas, int threads) {
    fs::path d = make_dir("replicas_" + name);
    std::ifstream in(write_recipe(d, data, 12));
    json r = json::parse(in);
    r["batch_size"] = 5;
    r["replicas"] = replicas;
    std::ofstream(d / "recipe.json") << r.dump();
    std::string out;
    EXPECT_EQ(run("--threads " + std::to_string(threads) + " train --config " + (d / "recipe.json").string(), &out), 0) << out;
    return read_metrics(d / "run" / "metrics.jsonl");
  };
  auto one = run_with("r1", 1, 2), a = run_with("r2t1", 2, 1), b = run_with("r2t2", 2, 2), c = run_with("r3t2", 3, 2);
  ASSERT_EQ(a.size(), 12u);
  ASSERT_EQ(b.size(), 12u);
  ASSERT_EQ(c.size(), 12u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["loss"].get<double>(), b[i]["loss"].get<double>()) << "step " << i + 1;
    EXPECT_EQ(a[i]["grad_norm"].get<double>(), b[i]["grad_norm"].get<double>()) << "step " << i + 1;
    for (const auto* other : {&a, &c})
      EXPECT_NEAR((*other)[i]["loss"].get<double>(), one[i]["loss"].get<double>(), 1e-5 * one[i]["loss"].get<double>()) << "step " << i + 1;
  }
  // Step 1 routes with the same weights: the summed loads of the copies are exactly the one copy's.
  EXPECT_EQ(a[0]["expert_balance"], one[0]["expert_balance"]);
}

TEST(TrainCli, KilledAndResumedRunReproducesTheUninterruptedOne) {
  const int64_t steps = 16;
  fs::path data = make_dir("data");
  write_shards(data, 128);
  fs::path a = make_dir("a"), b = make_dir("b");
  std::string out;
  ASSERT_EQ(run("train --config " + write_recipe(a, data, steps).string(), &out), 0) << out;
  auto ref = read_metrics(a / "run" / "metrics.jsonl");
  ASSERT_EQ(ref.size(), size_t(steps));
  EXPECT_LT(ref.back()["loss"].get<double>(), ref.front()["loss"].get<double>());  // it learns
  EXPECT_TRUE(fs::exists(a / "run" / "compute.json"));
  ASSERT_EQ(run("plot --metrics " + (a / "run" / "metrics.jsonl").string() + " --y loss,val_loss --out " + (a / "loss.svg").string(), &out), 0) << out;
  std::ifstream svg(a / "loss.svg");
  std::string svg_text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
  EXPECT_EQ(std::count(svg_text.begin(), svg_text.end(), 'p') > 0 && svg_text.find("<polyline") != std::string::npos, true);
  EXPECT_NE(svg_text.find("val_loss"), std::string::npos);

  // Start the same run slowed down, SIGKILL it after its second checkpoint, resume.
  fs::path recipe_b = write_recipe(b, data, steps);
  pid_t pid = fork();
  if (pid == 0) {
    execl(kBin.c_str(), kBin.c_str(), "train", "--config", recipe_b.c_str(), "--debug-step-delay-ms", "150", (char*)nullptr);
    _exit(127);
  }
  bool killed_mid_run = false;
  for (int i = 0; i < 600; ++i) {
    std::ifstream latest(b / "run" / "checkpoints" / "latest");
    std::string name;
    if (latest >> name && name >= "step-00000008") {
      ::kill(pid, SIGKILL);
      killed_mid_run = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(killed_mid_run);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_FALSE(fs::exists(b / "run" / "compute.json"));  // it really died before the end
  ASSERT_EQ(run("train --resume --config " + recipe_b.string(), &out), 0) << out;
  EXPECT_NE(out.find("resuming from"), std::string::npos) << out;
  auto resumed = read_metrics(b / "run" / "metrics.jsonl");
  ASSERT_EQ(resumed.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(resumed[i]["step"], ref[i]["step"]);
    EXPECT_EQ(resumed[i]["loss"].get<double>(), ref[i]["loss"].get<double>()) << "step " << i + 1;
    EXPECT_EQ(resumed[i]["grad_norm"].get<double>(), ref[i]["grad_norm"].get<double>()) << "step " << i + 1;
    if (ref[i].contains("val_loss")) {
      EXPECT_EQ(resumed[i]["val_loss"].get<double>(), ref[i]["val_loss"].get<double>());
    }
  }
  // A finished checkpoint is a model directory the other commands load.
  std::ifstream latest(b / "run" / "checkpoints" / "latest");
  std::string name;
  latest >> name;
  EXPECT_EQ(run("logits --tokens 1,2,3 --model " + (b / "run" / "checkpoints" / name).string(), &out), 0) << out;
  for (auto& d : {data, a, b}) fs::remove_all(d);
}

TEST(TrainCli, RecipeErrorsNameTheKey) {
  fs::path d = make_dir("errors");
  write_shards(d, 128);
  auto check = [&](const std::function<void(json&)>& edit, const std::string& expect) {
    write_recipe(d, d, 4);
    std::ifstream in(d / "recipe.json");
    json r = json::parse(in);
    edit(r);
    std::ofstream(d / "recipe.json") << r.dump();
    std::string out;
    EXPECT_NE(run("train --config " + (d / "recipe.json").string(), &out), 0);
    EXPECT_NE(out.find(expect), std::string::npos) << out;
  };
  check([](json& r) { r["batch_sise"] = 4; }, "unknown key 'batch_sise'");
  check([](json& r) { r["seq_len"] = "long"; }, "'seq_len' must be a number");
  check([](json& r) { r["lr"]["schedule"] = "zigzag"; }, "'lr.schedule' is 'zigzag'");
  check([](json& r) { r["data"] = "/nonexistent/shards"; }, "/nonexistent/shards/index.json");
  check([](json& r) { r["model"]["model_type"] = "mamba"; }, "unknown model_type 'mamba'");
  check([](json& r) { r["steps"] = -3; }, "'steps' = -3 is outside");
  fs::remove_all(d);
}

TEST(TrainCli, NonFiniteLossStopsWithTheStepAndKeepsTheLastCheckpoint) {
  // AdamW with eps = 0 divides 0 by 0 for parameters that got no gradient (embeddings of unseen tokens), which
  // turns weights into NaN after the first update: the checkpoint check catches it before anything is saved.
  fs::path d = make_dir("nan");
  write_shards(d, 128);
  write_recipe(d, d, 6);
  std::ifstream in(d / "recipe.json");
  json r = json::parse(in);
  r["adamw"] = {{"eps", 0.0}};
  r["checkpoint_every"] = 1;
  std::ofstream(d / "recipe.json") << r.dump();
  std::string out;
  EXPECT_EQ(run("train --config " + (d / "recipe.json").string(), &out), 1) << out;
  EXPECT_NE(out.find("NaN or infinite at step"), std::string::npos) << out;
  std::ifstream latest(d / "run" / "checkpoints" / "latest");
  std::string name;
  latest >> name;
  // The checkpoint left behind is from before the failing step (its weights are finite), and no later one exists.
  const auto at = out.find("infinite at step ");
  ASSERT_NE(at, std::string::npos);
  const int failing = std::stoi(out.substr(at + 17));
  if (name.empty()) {
    EXPECT_EQ(failing, 1);  // it failed on the first update: nothing was ever saved
    EXPECT_NE(out.find("kept: none"), std::string::npos) << out;
  } else {
    EXPECT_LT(std::stoi(name.substr(5)), failing) << name;
  }
  fs::remove_all(d);
}

TEST(TrainCli, FailedCheckpointWriteKeepsThePreviousCheckpoint) {
  // 8 steps with a checkpoint every 4; the run resumed from step 4 may not write files larger than half the
  // weights, so its step-8 checkpoint fails the way a full disk would.
  fs::path d = make_dir("diskfull");
  write_shards(d, 128);
  fs::path recipe = write_recipe(d, d, 4);
  std::string out;
  ASSERT_EQ(run("train --config " + recipe.string(), &out), 0) << out;
  const fs::path ckpts = d / "run" / "checkpoints", good = ckpts / "step-00000004";
  ASSERT_TRUE(fs::exists(good / "model.safetensors"));
  const std::string weights_before = read_text(good / "model.safetensors");
  const std::string state_before = read_text(good / "state.json");

  std::ifstream in(recipe);
  json r = json::parse(in);
  r["steps"] = 8;
  std::ofstream(recipe) << r.dump();
  const rlim_t limit = rlim_t(fs::file_size(good / "model.safetensors") / 2);
  const fs::path log = d / "resume.log";
  EXPECT_EQ(run_with_file_limit({"train", "--resume", "--config", recipe.string()}, limit, log), 1);
  const std::string err = read_text(log);
  EXPECT_NE(err.find("checkpoint at step 8 could not be written"), std::string::npos) << err;
  EXPECT_NE(err.find("File too large"), std::string::npos) << err;  // the system's reason (EFBIG) is named
  EXPECT_NE(err.find("step-00000004 is kept"), std::string::npos) << err;

  // The previous checkpoint is untouched and still the one to resume from; no half-written one is left.
  std::ifstream latest(ckpts / "latest");
  std::string name;
  latest >> name;
  EXPECT_EQ(name, "step-00000004");
  EXPECT_EQ(read_text(good / "model.safetensors"), weights_before);
  EXPECT_EQ(read_text(good / "state.json"), state_before);
  for (auto& e : fs::directory_iterator(ckpts)) EXPECT_EQ(e.path().filename().string().find("step-00000008"), std::string::npos) << e.path();
  for (auto& e : fs::directory_iterator(ckpts)) EXPECT_NE(e.path().filename().string().rfind(".tmp", 0), 0u) << e.path();

  // With space again, resuming from it finishes the run.
  ASSERT_EQ(run("train --resume --config " + recipe.string(), &out), 0) << out;
  EXPECT_NE(out.find("resuming from"), std::string::npos) << out;
  EXPECT_NE(out.find("(step 4)"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(ckpts / "step-00000008" / "model.safetensors"));
  fs::remove_all(d);
}

TEST(TrainCli, ExportWritesALoadableBf16ModelDirectory) {
  fs::path d = make_dir("export");
  write_shards(d, 128);
  std::string out;
  ASSERT_EQ(run("train --config " + write_recipe(d, d, 4).string(), &out), 0) << out;
  const fs::path ckpt = d / "run" / "checkpoints" / "step-00000004", model = d / "model";
  ASSERT_EQ(run("export --checkpoint " + ckpt.string() + " --out " + model.string(), &out), 0) << out;
  EXPECT_FALSE(fs::exists(model / "optimizer.safetensors"));
  // Matrices halve; the few f32 vectors keep it a little above half.
  const double ratio = double(fs::file_size(model / "model.safetensors")) / double(fs::file_size(ckpt / "model.safetensors"));
  EXPECT_GT(ratio, 0.5);
  EXPECT_LT(ratio, 0.6);
  EXPECT_NE(read_text(model / "config.json").find("\"bfloat16\""), std::string::npos);
  std::string f32_logits, bf16_logits;
  ASSERT_EQ(run("logits --tokens 1,2,3 --model " + ckpt.string(), &f32_logits), 0) << f32_logits;
  ASSERT_EQ(run("logits --tokens 1,2,3 --model " + model.string(), &bf16_logits), 0) << bf16_logits;
  EXPECT_NE(f32_logits, bf16_logits);  // really rounded
  EXPECT_NE(run("export --checkpoint " + (d / "nothing").string() + " --out " + model.string(), &out), 0);
  EXPECT_NE(out.find("no config.json"), std::string::npos) << out;
  fs::remove_all(d);
}
