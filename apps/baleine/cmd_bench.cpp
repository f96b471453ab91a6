// baleine bench --model M [--threads T] --prompt-tokens N --gen-tokens N [--reps R] [--batch B] [--json]:
// prefill and decode speed in the manner of llama-bench (a warm-up run, then R timed repetitions, mean ± sd),
// plus decode as a share of this machine's memory bandwidth, which the bench measures itself with a streaming
// read over a buffer much larger than the caches. The bytes a decode token reads are counted from the model:
// every weight it multiplies (for MoE only the num_experts_per_tok routed experts a token selects, one
// embedding row) plus the KV rows attention reads at the run's mean context.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>

#include "apps/baleine/command.h"
#include "core/check.h"
#include "core/threadpool.h"
#include "models/model.h"
#include "models/weights.h"

namespace baleine::app {
namespace {

struct BenchArgs {
  std::string model;
  int threads = 0;
  int64_t prompt_tokens = 128, gen_tokens = 64, batch = 1;
  int reps = 5;
  bool json = false, random_init = false, speculative = false;
  std::string mla = "absorbed", kv_type = "f32";
};

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct MeanSd {
  double mean = 0, sd = 0;
};
MeanSd mean_sd(const std::vector<double>& v) {
  MeanSd r;
  for (double x : v) r.mean += x;
  r.mean /= double(v.size());
  for (double x : v) r.sd += (x - r.mean) * (x - r.mean);
  r.sd = v.size() > 1 ? std::sqrt(r.sd / double(v.size() - 1)) : 0.0;
  return r;
}

// Streaming read bandwidth (GB/s) with the global pool: every thread sums its slice of a 512 MiB buffer as
// 64-bit integers (vectorised, no stores); best of 5 passes after one that faults the pages in.
double read_bandwidth() {
  const size_t n = (size_t(512) << 20) / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buf(new uint64_t[n]);
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  ThreadPool& pool = ThreadPool::global();
  std::vector<uint64_t> sink(size_t(pool.size()) * 8, 0);
  double best = 0;
  for (int pass = 0; pass < 6; ++pass) {
    auto t0 = Clock::now();
    pool.run([&](int t) {
      const size_t lo = n * size_t(t) / size_t(pool.size()), hi = n * size_t(t + 1) / size_t(pool.size());
      uint64_t a = 0, b = 0, c = 0, d = 0;
      for (size_t i = lo; i + 4 <= hi; i += 4) a += buf[i], b += buf[i + 1], c += buf[i + 2], d += buf[i + 3];
      sink[size_t(t) * 8] = a + b + c + d;
    });
    const double s = since(t0);
    if (pass > 0) best = std::max(best, double(n * sizeof(uint64_t)) / s / 1e9);
  }
  BALEINE_CHECK(std::accumulate(sink.begin(), sink.end(), uint64_t(0)) != 1, "unreachable");  // keeps the reads
  return best;
}

// Weight bytes one decode token reads (batch 1).
struct TokenBytes {
  double weights = 0, kv_per_position = 0;
};
TokenBytes decode_bytes(CausalLM& m, ops::KvDType kv_type) {
  const ModelConfig& c = m.config();
  TokenBytes b;
  double routed = 0;
  bool saw_head = false;
  double embedding = 0;
  m.for_each_param([&](nn::Param& p) {
    if (!p.tensor || !p.tensor->defined()) return;
    const double bytes = double(p.tensor->nbytes());
    const std::string& n = p.name;
    if (n.rfind("model.layers.", 0) == 0) {
      const int64_t layer = std::stoll(n.substr(13));
      if (layer >= c.num_hidden_layers) return;  // MTP module: not used by plain decoding
    }
    if (n.find(".mlp.experts.") != std::string::npos) routed += bytes;
    else if (n == "model.embed_tokens.weight") embedding = bytes;
    else {
      if (n == "lm_head.weight") saw_head = true;
      b.weights += bytes;
    }
  });
  // One embedding row; a tied head reads the whole table.
  b.weights += c.tie_word_embeddings && !saw_head ? embedding : embedding / double(c.vocab_size);
  if (c.n_routed_experts > 0) b.weights += routed * double(c.num_experts_per_tok) / double(c.n_routed_experts);
  auto pool = m.new_kv_pool(1, 1, kv_type);
  b.kv_per_position = double(pool->layers() * pool->row_bytes());
  return b;
}

int run_bench(const BenchArgs& a) {
  BALEINE_CHECK(!a.model.empty(), "--model is required (a model directory, or with --random-init a config.json)");
  if (a.threads > 0) ThreadPool::set_global_threads(a.threads);
  std::unique_ptr<CausalLM> model;
  std::string name = std::filesystem::path(a.model).filename().string();
  if (a.random_init) {
    model = create_model(load_model_config(a.model));
    init_params_random(*model, 1234);
    model->prepare();
    name += " (random init)";
  } else {
    model = load_model(a.model);
  }
  const ModelConfig& c = model->config();
  BALEINE_CHECK(a.prompt_tokens + 1 <= c.max_position_embeddings && a.gen_tokens + 1 <= c.max_position_embeddings,
                "--prompt-tokens / --gen-tokens exceed the model context of {}", c.max_position_embeddings);
  const MlaMode mode = a.mla == "naive" ? MlaMode::Naive : MlaMode::Absorbed;
  (void)ops::kv_dtype_from_name(a.kv_type);  // a bad name fails before any work
  BALEINE_CHECK(a.mla == "naive" || a.mla == "absorbed", "--mla must be naive or absorbed, got '{}'", a.mla);
  std::mt19937 rng(42);
  auto random_tokens = [&](int64_t n) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = int32_t(rng() % uint32_t(c.vocab_size));
    return t;
  };
  const int threads = ThreadPool::global().size();

  // Prefill: N prompt tokens into an empty sequence, logits of the last one (as llama-bench's pp).
  auto prefill = [&]() {
    std::vector<int32_t> p = random_tokens(a.prompt_tokens);
    auto seq = model->new_sequence(model->new_kv_pool((a.prompt_tokens + 15) / 16, 16, ops::kv_dtype_from_name(a.kv_type)),
                                   a.prompt_tokens);
    auto t0 = Clock::now();
    BatchItem it{seq.get(), p, false};
    model->forward_batch(std::span<const BatchItem>(&it, 1), mode);
    return double(a.prompt_tokens) / since(t0);
  };
  // Decode: N tokens one at a time from an empty sequence (as llama-bench's tg), B sequences per step.
  auto decode = [&](int64_t batch) {
    auto pool = model->new_kv_pool(batch * ((a.gen_tokens + 15) / 16), 16, ops::kv_dtype_from_name(a.kv_type));
    std::vector<std::unique_ptr<Sequence>> seqs;
    for (int64_t b = 0; b < batch; ++b) seqs.push_back(model->new_sequence(pool, a.gen_tokens));
    std::vector<int32_t> toks = random_tokens(batch);
    auto t0 = Clock::now();
    for (int64_t g = 0; g < a.gen_tokens; ++g) {
      std::vector<BatchItem> items;
      for (int64_t b = 0; b < batch; ++b) items.push_back({seqs[size_t(b)].get(), std::span(toks).subspan(size_t(b), 1), false});
      Tensor l = model->forward_batch(items, mode);
      for (int64_t b = 0; b < batch; ++b)  // greedy next token, as a real decode loop would
        toks[size_t(b)] = int32_t(std::max_element(l.f32() + b * c.vocab_size, l.f32() + (b + 1) * c.vocab_size) -
                                  (l.f32() + b * c.vocab_size));
    }
    return double(batch * a.gen_tokens) / since(t0);
  };
  auto repeat = [&](auto fn) {
    fn();  // warm-up
    std::vector<double> v;
    for (int r = 0; r < a.reps; ++r) v.push_back(fn());
    return mean_sd(v);
  };
  const MeanSd pp = repeat(prefill);
  const MeanSd tg = repeat([&] { return decode(1); });
  MeanSd tgb;
  if (a.batch > 1) tgb = repeat([&] { return decode(a.batch); });
  // Greedy decoding with and without MTP speculation from the same prompt: acceptance, speed-up, and a check
  // that both produce the same tokens.
  struct Spec { double plain = 0, spec = 0; int64_t drafts = 0, accepted = 0; bool identical = false; };
  Spec sp;
  if (a.speculative) {
    BALEINE_CHECK(model->has_mtp(), "--speculative: this model has no MTP module");
    const std::vector<int32_t> prompt = random_tokens(16);
    const int64_t n = a.gen_tokens, cap = 16 + n + 2;
    auto argmax = [&](const float* l) { return int32_t(std::max_element(l, l + c.vocab_size) - l); };
    auto plain = [&](std::vector<int32_t>& out) {
      out.clear();
      auto seq = model->new_sequence(cap);
      auto t0 = Clock::now();
      Tensor l = model->forward(*seq, prompt, mode);
      out.push_back(argmax(l.f32() + (l.dim(0) - 1) * c.vocab_size));
      while (int64_t(out.size()) < n) {
        Tensor s1 = model->forward(*seq, std::span<const int32_t>(&out.back(), 1), mode);
        out.push_back(argmax(s1.f32()));
      }
      return double(n) / since(t0);
    };
    auto spec = [&](std::vector<int32_t>& out) {
      out.clear();
      sp.drafts = sp.accepted = 0;
      auto seq = model->new_sequence(cap);
      auto mseq = model->new_sequence(model->new_mtp_kv_pool((cap + 15) / 16), cap);
      auto t0 = Clock::now();
      Tensor hidden;
      const BatchItem first{seq.get(), prompt, false};
      Tensor l = model->forward_batch(std::span<const BatchItem>(&first, 1), mode, &hidden);
      int32_t t = argmax(l.f32());
      out.push_back(t);
      std::vector<int32_t> next(prompt.begin() + 1, prompt.end());
      next.push_back(t);
      int32_t draft = argmax(model->mtp_step(*mseq, hidden.f32(), next, false, mode).f32());
      while (int64_t(out.size()) < n) {
        const int64_t L = seq->length();
        const int32_t feed[2] = {t, draft};
        const BatchItem it{seq.get(), feed, true};
        l = model->forward_batch(std::span<const BatchItem>(&it, 1), mode, &hidden);
        ++sp.drafts;
        const int32_t y1 = argmax(l.f32());
        out.push_back(y1);
        if (int64_t(out.size()) >= n) break;
        if (y1 == draft) {
          ++sp.accepted;
          const int32_t y2 = argmax(l.f32() + c.vocab_size);
          out.push_back(y2);
          const int32_t pair[2] = {y1, y2};
          draft = argmax(model->mtp_step(*mseq, hidden.f32(), pair, false, mode).f32());
          t = y2;
        } else {
          seq->truncate(L + 1);
          draft = argmax(model->mtp_step(*mseq, hidden.f32(), std::span<const int32_t>(&y1, 1), false, mode).f32());
          t = y1;
        }
      }
      return double(n) / since(t0);
    };
    std::vector<int32_t> o1, o2;
    sp.plain = repeat([&] { return plain(o1); }).mean;
    sp.spec = repeat([&] { return spec(o2); }).mean;
    sp.identical = o1 == o2;
  }
  const double bw = read_bandwidth();
  const TokenBytes tb = decode_bytes(*model, ops::kv_dtype_from_name(a.kv_type));
  const double kv_read = tb.kv_per_position * (double(a.gen_tokens) + 1) / 2;  // mean context of the tg run
  const double per_token = tb.weights + kv_read;
  const double used = per_token * tg.mean / 1e9;

  const double params = [&] {
    double n = 0;
    model->for_each_param([&](nn::Param& p) { if (p.tensor && p.tensor->defined()) n += double(p.tensor->numel()); });
    return n;
  }();
  fmt::print("| model | params | threads | test | t/s |\n|---|---|---|---|---|\n");
  fmt::print("| {} | {:.2f} M | {} | pp{} | {:.2f} ± {:.2f} |\n", name, params / 1e6, threads, a.prompt_tokens, pp.mean, pp.sd);
  fmt::print("| {} | {:.2f} M | {} | tg{} | {:.2f} ± {:.2f} |\n", name, params / 1e6, threads, a.gen_tokens, tg.mean, tg.sd);
  if (a.batch > 1)
    fmt::print("| {} | {:.2f} M | {} | tg{} x{} (aggregate) | {:.2f} ± {:.2f} |\n", name, params / 1e6, threads,
               a.gen_tokens, a.batch, tgb.mean, tgb.sd);
  fmt::print("decode reads {:.3f} MB per token (weights {:.3f} MB + KV {:.3f} MB): {:.2f} GB/s = {:.1f}% of the "
             "measured {:.1f} GB/s streaming read bandwidth ({} threads)\n",
             per_token / 1e6, tb.weights / 1e6, kv_read / 1e6, used, 100.0 * used / bw, bw, threads);
  if (a.speculative)
    fmt::print("speculative decoding (MTP, greedy, tg{}): {} drafts, {} accepted ({:.1f}%); {:.2f} t/s vs {:.2f} t/s "
               "without: speed-up {:.2f}x; outputs {}\n",
               a.gen_tokens, sp.drafts, sp.accepted, sp.drafts ? 100.0 * double(sp.accepted) / double(sp.drafts) : 0.0,
               sp.spec, sp.plain, sp.spec / sp.plain, sp.identical ? "identical" : "DIFFER");
  if (per_token < 64e6)
    fmt::print("note: {:.1f} MB per token fits in the CPU caches, so decode is not bound by DRAM bandwidth and the "
               "percentage can exceed 100%\n", per_token / 1e6);
  if (a.json) {
    nlohmann::json j{{"model", name},
                     {"params", params},
                     {"threads", threads},
                     {"prompt_tokens", a.prompt_tokens},
                     {"gen_tokens", a.gen_tokens},
                     {"reps", a.reps},
                     {"mla", a.mla},
                     {"kv_type", a.kv_type},
                     {"pp_tokens_per_s", pp.mean},
                     {"pp_tokens_per_s_sd", pp.sd},
                     {"tg_tokens_per_s", tg.mean},
                     {"tg_tokens_per_s_sd", tg.sd},
                     {"decode_bytes_per_token", per_token},
                     {"read_bandwidth_gb_s", bw},
                     {"decode_bandwidth_fraction", used / bw}};
    if (a.speculative)
      j["spec_tg_tokens_per_s"] = sp.spec, j["spec_plain_tg_tokens_per_s"] = sp.plain, j["spec_drafts"] = sp.drafts,
      j["spec_accepted"] = sp.accepted, j["spec_identical"] = sp.identical;
    if (a.batch > 1) j["batch"] = a.batch, j["batch_tg_tokens_per_s"] = tgb.mean, j["batch_tg_tokens_per_s_sd"] = tgb.sd;
    fmt::print("{}\n", j.dump());
  }
  return 0;
}

CommandRegistration reg{{"bench", "Prefill and decode speed (llama-bench style) and decode memory-bandwidth use",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<BenchArgs>();
                           sub.add_option("--model", a->model, "Model directory (or config.json with --random-init)")->required();
                           sub.add_option("--threads", a->threads, "Worker threads (0 = every core)")->check(CLI::NonNegativeNumber);
                           sub.add_option("--prompt-tokens", a->prompt_tokens, "Prefill length (pp)")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
                           sub.add_option("--gen-tokens", a->gen_tokens, "Decode length (tg)")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
                           sub.add_option("--reps", a->reps, "Timed repetitions after one warm-up")->check(CLI::Range(1, 1000));
                           sub.add_option("--batch", a->batch, "Also decode this many sequences together (aggregate t/s)")->check(CLI::Range(int64_t(1), int64_t(4096)));
                           sub.add_option("--mla", a->mla, "DeepSeek attention form: absorbed or naive");
                           sub.add_option("--kv-type", a->kv_type, "KV cache storage: f32, bf16 or int8");
                           sub.add_flag("--speculative", a->speculative, "Also greedy decode with MTP speculation: acceptance and speed-up");
                           sub.add_flag("--random-init", a->random_init, "Random weights from the config (no checkpoint needed)");
                           sub.add_flag("--json", a->json, "End with one JSON line (pp_tokens_per_s, tg_tokens_per_s, ...)");
                           return [a] { return run_bench(*a); };
                         }}};

}  // namespace
}  // namespace baleine::app
