// baleine logits --model PATH --tokens 1,2,3 [--out FILE]: teacher-forced logits for every position.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "apps/baleine/command.h"
#include "core/check.h"
#include "models/model.h"

namespace baleine::app {
namespace {

struct LogitsOptions {
  std::string model, tokens, out, mla = "absorbed";
  bool mtp = false;
  int top = 5;
};

int run_logits(const LogitsOptions& o) {
  std::vector<int32_t> ids = parse_int_list(o.tokens, "--tokens");
  auto model = load_model(o.model);
  MlaMode mode = o.mla == "naive" ? MlaMode::Naive : MlaMode::Absorbed;
  Tensor logits = o.mtp ? model->mtp_logits(ids, mode) : model->logits(ids, mode);
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  if (!o.out.empty()) {
    std::FILE* f = std::fopen(o.out.c_str(), "wb");
    BALEINE_CHECK(f != nullptr, "{}: cannot open for writing", o.out);
    size_t n = std::fwrite(logits.raw(), 4, size_t(rows * vocab), f);  // x86-64: already little-endian
    bool ok = n == size_t(rows * vocab) && std::fflush(f) == 0;
    ok = (std::fclose(f) == 0) && ok;
    BALEINE_CHECK(ok, "{}: write failed (disk full?)", o.out);
    fmt::print(stderr, "wrote {} x {} f32 logits to {}\n", rows, vocab, o.out);
    return 0;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = logits.f32() + r * vocab;
    std::vector<int32_t> idx(static_cast<size_t>(vocab));
    std::iota(idx.begin(), idx.end(), 0);
    int k = int(std::min<int64_t>(o.top, vocab));
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    fmt::print("pos {:4d} token {:6d} ->", r, ids[size_t(r)]);
    for (int i = 0; i < k; ++i) fmt::print(" {}:{:.4f}", idx[size_t(i)], row[idx[size_t(i)]]);
    fmt::print("\n");
  }
  return 0;
}

CommandRegistration reg{{"logits", "Teacher-forced logits of a token sequence (raw f32 rows with --out)",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto o = std::make_shared<LogitsOptions>();
                           sub.add_option("--model", o->model, "Model directory (config.json + safetensors)")->required();
                           sub.add_option("--tokens", o->tokens, "Comma-separated token ids, e.g. 1,2,3")->required();
                           sub.add_option("--out", o->out, "Write raw little-endian f32 [n_tokens x vocab] here");
                           sub.add_option("--mla", o->mla, "DeepSeek attention form")->check(CLI::IsMember({"naive", "absorbed"}));
                           sub.add_flag("--mtp", o->mtp, "Multi-token-prediction logits instead (row i predicts token i+2)");
                           sub.add_option("--top", o->top, "Top entries shown per position without --out")->check(CLI::Range(1, 100));
                           return [o] { return run_logits(*o); };
                         }}};

}  // namespace
}  // namespace baleine::app
