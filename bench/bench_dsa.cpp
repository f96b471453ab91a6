// bench_dsa — DeepSeek Sparse Attention (V3.2) against dense MLA on the same weights, in the same run: prefill of
// a context of L tokens (one forward pass, absorbed MLA) and then decoding 64 tokens after it, at L = 4096 and
// 16384 by default. The DSA model keeps index_topk = 2048 positions per query; the dense model is the same
// checkpoint as deepseek_v3 (no indexer), weights copied by name. Runs are interleaved (dense, DSA, dense, DSA, ...)
// and the median of each is printed with the machine and the load average. Random weights: only the cost is
// measured, the selection itself is arbitrary.
// Usage: bench_dsa [rounds=3] [contexts=4096,16384]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/threadpool.h"
#include "models/model.h"
#include "models/weights.h"

using namespace baleine;
using Clock = std::chrono::steady_clock;

namespace {

// A small V3-shaped model whose attention dominates at long context: 2 layers (dense FFN + MoE), 8 heads,
// latent 128 + 32 rope dims; the indexer has 4 heads of 64 (V3.2-Exp: 64 of 128) and keeps the top 2048.
nlohmann::json config(bool sparse, int64_t context) {
  nlohmann::json j = {
      {"model_type", sparse ? "deepseek_v32" : "deepseek_v3"}, {"vocab_size", 4096}, {"hidden_size", 512},
      {"intermediate_size", 1024}, {"num_hidden_layers", 2}, {"num_attention_heads", 8}, {"q_lora_rank", 256},
      {"kv_lora_rank", 128}, {"qk_nope_head_dim", 64}, {"qk_rope_head_dim", 32}, {"v_head_dim", 64},
      {"n_routed_experts", 16}, {"num_experts_per_tok", 2}, {"n_shared_experts", 1}, {"moe_intermediate_size", 256},
      {"first_k_dense_replace", 1}, {"scoring_func", "sigmoid"}, {"topk_method", "noaux_tc"}, {"norm_topk_prob", true},
      {"max_position_embeddings", context + 128}, {"rope_theta", 10000.0}};
  if (sparse) j.update({{"index_n_heads", 4}, {"index_head_dim", 64}, {"index_topk", 2048}});
  return j;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "?";
}

double load_average() {
  std::ifstream in("/proc/loadavg");
  double l = -1;
  in >> l;
  return l;
}

struct Timing {
  double prefill_s, decode_ms_per_token;
};

Timing run(CausalLM& m, const std::vector<int32_t>& prompt) {
  auto seq = m.new_sequence(int64_t(prompt.size()) + 64);
  auto t0 = Clock::now();
  Tensor l = m.forward(*seq, prompt, MlaMode::Absorbed);
  auto t1 = Clock::now();
  int32_t next = 7;
  for (int i = 0; i < 64; ++i) m.forward(*seq, std::span<const int32_t>(&next, 1), MlaMode::Absorbed);
  auto t2 = Clock::now();
  return {std::chrono::duration<double>(t1 - t0).count(), std::chrono::duration<double, std::milli>(t2 - t1).count() / 64};
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  std::vector<int64_t> contexts{4096, 16384};
  if (argc > 2) {
    contexts.clear();
    std::stringstream ss(argv[2]);
    for (std::string x; std::getline(ss, x, ',');) contexts.push_back(std::stoll(x));
  }
  std::printf("bench_dsa: %s, %u hardware threads, pool %d threads, load average %.2f before the runs\n",
              cpu_name().c_str(), std::thread::hardware_concurrency(), ThreadPool::global().size(), load_average());
  std::printf("%8s %6s %12s %12s %8s %16s %16s %8s\n", "context", "top-k", "dense pre s", "DSA pre s", "ratio",
              "dense dec ms/t", "DSA dec ms/t", "ratio");
  for (int64_t L : contexts) {
    auto dsa = create_model(parse_model_config(config(true, L), "bench v32"));
    init_params_random(*dsa, 1);
    dsa->prepare();
    auto dense = create_model(parse_model_config(config(false, L), "bench v3"));
    std::map<std::string, Tensor> weights;
    dsa->for_each_param([&](nn::Param& p) { weights[p.name] = *p.tensor; });
    dense->for_each_param([&](nn::Param& p) { *p.tensor = weights.at(p.name); });
    dense->prepare();
    std::vector<int32_t> prompt(static_cast<size_t>(L));
    for (int64_t i = 0; i < L; ++i) prompt[size_t(i)] = int32_t((i * 7919 + 13) % 4000 + 2);
    std::vector<double> dp, sp, dd, sd;
    for (int r = 0; r < rounds; ++r) {  // interleaved: dense, DSA, dense, DSA, ...
      Timing a = run(*dense, prompt);
      Timing b = run(*dsa, prompt);
      dp.push_back(a.prefill_s), dd.push_back(a.decode_ms_per_token);
      sp.push_back(b.prefill_s), sd.push_back(b.decode_ms_per_token);
    }
    std::printf("%8lld %6d %12.3f %12.3f %7.2fx %16.2f %16.2f %7.2fx\n", (long long)L, 2048, median(dp), median(sp),
                median(dp) / median(sp), median(dd), median(sd), median(dd) / median(sd));
    std::fflush(stdout);
  }
  std::printf("load average %.2f after the runs\n", load_average());
  return 0;
}
