// `baleine chat` end to end on a tiny random-weight DeepSeek model with a freshly trained tokenizer: replies
// stream, R1-format reasoning is wrapped in the dim ANSI code, --no-color output has no escape codes, turns
// accumulate (the second turn's prompt reuses the first from the prefix cache), and a missing model fails
// with a clear error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "models/model.h"
#include "models/weights.h"
#include "tokenizer/tokenizer.h"

using namespace baleine;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const std::string kBin = BALEINE_BINARY;
const std::string kData = BALEINE_TEST_DATA;

fs::path model_dir() {
  static fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("baleine_chat_cli_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    {
      std::ofstream f(d / "text.txt");
      for (int i = 0; i < 50; ++i) f << "hello there, how are you today? fine thanks " << i << "\n";
    }
    BpeTrainOptions o;
    o.vocab_size = 320;
    o.progress = false;
    train_bpe_tokenizer({(d / "text.txt").string()}, d.string(), o);
    Tokenizer tok = Tokenizer::load(d.string());
    std::ifstream in(kData + "/parity/v3/config.json");
    json cfg = json::parse(in);
    cfg["vocab_size"] = tok.vocab_size();
    cfg["num_nextn_predict_layers"] = 0;
    std::ofstream(d / "config.json") << cfg.dump(2);
    auto model = create_model(load_model_config((d / "config.json").string()));
    init_params_random(*model, 3, 0.5f);
    std::vector<std::pair<std::string, Tensor>> tensors;
    model->for_each_param([&](nn::Param& p) {
      if (p.tensor && p.tensor->defined()) tensors.emplace_back(p.name, *p.tensor);
    });
    io::safetensors_write((d / "model.safetensors").string(), tensors);
    return d;
  }();
  return dir;
}

int run(const std::string& input, const std::string& args, std::string* out) {
  std::string cmd = "printf '" + input + "' | " + kBin + " chat " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  std::string s;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) s.append(buf, n);
  *out = s;
  return WEXITSTATUS(pclose(p));
}

}  // namespace

TEST(ChatCli, R1ReasoningIsDimmed) {
  std::string out;
  ASSERT_EQ(run("hello\\n/exit\\n", "--model " + model_dir().string() + " --template deepseek-r1 --color --max-tokens 8", &out), 0) << out;
  EXPECT_NE(out.find("\x1b[2m"), std::string::npos) << out;  // the reply starts inside <think>: dimmed
  EXPECT_NE(out.find("\x1b[0m"), std::string::npos) << out;
}

TEST(ChatCli, PlainOutputHasNoEscapesAndTurnsReuseTheCache) {
  std::string out;
  ASSERT_EQ(run("hello\\nhow are you\\n", "--model " + model_dir().string() + " --template qwen2 --no-color --stats --max-tokens 6", &out), 0) << out;
  EXPECT_EQ(out.find("\x1b["), std::string::npos) << out;
  // Two replies, each followed by its stats line; the second turn's prompt starts with the first turn.
  const size_t first = out.find("prompt tokens ("), second = out.find("prompt tokens (", first + 1);
  ASSERT_NE(second, std::string::npos) << out;
  EXPECT_EQ(out.find("(0 from cache)", second), std::string::npos) << out;
}

TEST(ChatCli, MissingModelFailsClearly) {
  std::string out;
  EXPECT_EQ(run("hi\\n", "--model /nonexistent/model", &out), 1);
  EXPECT_NE(out.find("no such model directory"), std::string::npos) << out;
}
