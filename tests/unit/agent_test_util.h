// Helpers shared by the agent tests: the retrieval fixture store, a small trained BPE tokenizer (JSON-ish merges, so tokens span structure
// and strings), a tiny random-weight DeepSeek-V3 model over it, and a generation loop driven by random logits.
#pragma once
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <unistd.h>

#include "agent/retrieval.h"
#include "infer/engine.h"
#include "models/config.h"
#include "models/model.h"
#include "models/weights.h"
#include "tokenizer/tokenizer.h"

namespace agent_test {

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The retrieval fixture set (tests/data/agent/docs) in an in-memory store, 300-byte chunks overlapping by 60.
inline std::shared_ptr<baleine::agent::DocumentStore> fixture_store() {
  auto store = std::make_shared<baleine::agent::DocumentStore>(":memory:", baleine::agent::ChunkOptions{300, 60});
  for (auto& e : std::filesystem::directory_iterator(std::string(BALEINE_TEST_DATA) + "/agent/docs"))
    store->add_document(e.path().filename().string(), read_file(e.path()));
  return store;
}

inline std::shared_ptr<const baleine::Tokenizer> tiny_tokenizer() {
  static std::shared_ptr<const baleine::Tokenizer> tok = [] {
    auto dir = std::filesystem::temp_directory_path() / ("baleine_agent_tok_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    {
      std::ofstream f(dir / "text.txt");
      for (int i = 0; i < 40; ++i)
        f << "{\"name\": \"Ada Lovelace\", \"age\": " << i << ", \"tags\": [\"math\", \"poetry\"], \"ok\": true, "
          << "\"score\": -" << i << ".5e3, \"kind\": null}\nthe answer is 42 </think> caf\xc3\xa9 \xe2\x82\xac \\n \\u00e9\n"
          << "add(1, 2) -> {\"a\": 1, \"b\": 2}\n";
    }
    baleine::BpeTrainOptions o;
    o.vocab_size = 420;
    o.progress = false;
    baleine::train_bpe_tokenizer({(dir / "text.txt").string()}, (dir / "tok").string(), o);
    auto t = std::make_shared<const baleine::Tokenizer>(baleine::Tokenizer::load((dir / "tok").string()));
    std::filesystem::remove_all(dir);
    return t;
  }();
  return tok;
}

// The 3-layer V3 parity config with the vocabulary widened to the tiny tokenizer, random weights.
inline std::shared_ptr<baleine::CausalLM> tiny_model() {
  baleine::ModelConfig c = baleine::load_model_config(std::string(BALEINE_TEST_DATA) + "/parity/v3");
  c.vocab_size = tiny_tokenizer()->vocab_size();
  std::shared_ptr<baleine::CausalLM> m(baleine::create_model(c));
  baleine::init_params_random(*m, 1234, 0.5f);
  m->prepare();
  return m;
}

// Samples from softmax(random logits) under the constraint until it completes or max_tokens are spent.
inline std::string generate_random(baleine::TokenConstraint& c, int64_t vocab, int64_t max_tokens, std::mt19937& rng) {
  auto tok = tiny_tokenizer();
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> logits(static_cast<size_t>(vocab));
  std::vector<int32_t> ids;
  for (int64_t step = 0; step < max_tokens && !c.complete(); ++step) {
    for (auto& l : logits) l = nd(rng);
    c.mask(logits);
    double total = 0;
    for (float l : logits) total += std::isfinite(l) ? std::exp(double(l)) : 0.0;
    if (total == 0) break;
    double u = std::uniform_real_distribution<double>(0, total)(rng);
    int32_t pick = -1;
    for (int64_t i = 0; i < vocab; ++i) {
      if (!std::isfinite(logits[size_t(i)])) continue;
      pick = int32_t(i);
      u -= std::exp(double(logits[size_t(i)]));
      if (u <= 0) break;
    }
    c.accept(pick);
    if (pick == tok->eos_id()) break;
    ids.push_back(pick);
  }
  return tok->decode(ids);
}

}  // namespace agent_test
