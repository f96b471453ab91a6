// The `baleine` executable end to end: stable commands and their error behaviour (exit code, one line).
#include <gtest/gtest.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace {
const std::string kBin = BALEINE_BINARY;
const std::string kData = BALEINE_TEST_DATA;

struct Result {
  int status;
  std::string out;  // stdout + stderr
};

Result run(const std::string& args) {
  std::string cmd = kBin + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

std::string last_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  auto p = t.rfind('\n');
  return p == std::string::npos ? t : t.substr(p + 1);
}
}  // namespace

TEST(Cli, HelpEverywhere) {
  for (std::string sub : {"", "info ", "logits "}) {
    Result r = run(sub + "--help");
    EXPECT_EQ(r.status, 0) << sub << r.out;
    EXPECT_NE(r.out.find("--"), std::string::npos);
  }
}

TEST(Cli, InfoV3) {
  Result r = run("info --model " + kData + "/configs/deepseek-v3");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("deepseek_v3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MLA latent"), std::string::npos) << r.out;
  Result j = run("info --json --model " + kData + "/configs/deepseek-v3/config.json");
  auto info = nlohmann::json::parse(last_line(j.out));
  EXPECT_NEAR(info["total_params"].get<double>() / 671e9, 1.0, 0.03);
  EXPECT_NEAR(info["active_params"].get<double>() / 37e9, 1.0, 0.03);
  EXPECT_EQ(info["kv_bytes_per_token"].get<double>(), 70272.0);
}

TEST(Cli, InfoV2Lite) {
  Result j = run("info --json --model " + kData + "/configs/deepseek-v2-lite");
  ASSERT_EQ(j.status, 0) << j.out;
  auto info = nlohmann::json::parse(last_line(j.out));
  EXPECT_NEAR(info["total_params"].get<double>() / 15.7e9, 1.0, 0.03);
  EXPECT_NEAR(info["active_params"].get<double>() / 2.4e9, 1.0, 0.03);
}

TEST(Cli, LogitsWritesRawRows) {
  auto out = std::filesystem::temp_directory_path() / "baleine_cli_logits.bin";
  Result r = run("logits --model " + kData + "/parity/v3 --tokens 1,2,3,4 --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(std::filesystem::file_size(out), 4u * 128u * 4u);  // 4 positions x vocab 128 x f32
  Result text = run("logits --model " + kData + "/parity/v3 --tokens 1,2,3");
  EXPECT_EQ(text.status, 0) << text.out;
  EXPECT_NE(text.out.find("pos    2"), std::string::npos) << text.out;
  std::filesystem::remove(out);
}

TEST(Cli, BadInputIsOneLineErrorNonZeroExit) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"info --model /nonexistent", "/nonexistent"},
      {"logits --model " + kData + "/parity/v3 --tokens 1,x,3", "--tokens"},
      {"logits --model " + kData + "/parity/v3 --tokens 1,99999", "outside the vocabulary"},
      {"logits --model /nonexistent --tokens 1", "/nonexistent"},
      {"logits --model " + kData + "/parity/v2_lite --tokens 1,2 --mtp", "no MTP module"},
      {"logits --model " + kData + "/parity/v3 --tokens 1 --mla sideways", "sideways"},
  };
  for (const auto& [args, expect] : cases) {
    Result r = run(args);
    EXPECT_NE(r.status, 0) << args;
    EXPECT_NE(r.out.find(expect), std::string::npos) << args << " -> " << r.out;
    EXPECT_LE(std::count(r.out.begin(), r.out.end(), '\n'), 2) << args << " -> " << r.out;
  }
}

TEST(Cli, GenerateWithoutModelUsesTheEmbeddedDefault) {
  ::unsetenv("BALEINE_DEFAULT_MODEL");
  const std::string embedded = kData + "/../../models/default";
  const std::string args = "generate --prompt 'The history of' --max-tokens 20 --ignore-eos --seed 3 --temperature 0.8";
  Result r = run(args);
  ASSERT_EQ(r.status, 0) << r.out;
  std::string text;
  for (char c : r.out) if (!std::isspace(static_cast<unsigned char>(c))) text += c;
  EXPECT_GE(text.size(), 10u) << r.out;  // 20 tokens of a model trained on text
  // It is the committed model: the same run with --model models/default prints the same text.
  Result same = run(args + " --model " + embedded);
  ASSERT_EQ(same.status, 0) << same.out;
  EXPECT_EQ(same.out, r.out);
  // The override is honoured and a bad one is a one-line error naming the variable.
  ::setenv("BALEINE_DEFAULT_MODEL", "/nonexistent/model", 1);
  Result bad = run("generate --prompt hi --max-tokens 2");
  ::unsetenv("BALEINE_DEFAULT_MODEL");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("BALEINE_DEFAULT_MODEL"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("/nonexistent/model"), std::string::npos) << bad.out;
}
