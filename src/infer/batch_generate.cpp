#include "infer/batch_generate.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>

#include "core/check.h"
#include "core/threadpool.h"

namespace baleine {

namespace {

// One request being decoded.
struct Run {
  std::unique_ptr<Sequence> seq;
  SamplerChain chain;
  std::vector<int32_t> context;  // prompt + completion (the penalty stage reads it)
  int64_t budget = 0;
  bool done = false;
  explicit Run(const SamplingParams& p) : chain(SamplerChain::standard(p)) {}
};

}  // namespace

std::vector<BatchOutput> generate_batch(CausalLM& model, std::span<const BatchRequest> requests,
                                        const BatchGenerateOptions& o) {
  const ModelConfig& cfg = model.config();
  const int64_t V = cfg.vocab_size, ctx = cfg.max_position_embeddings, n_req = int64_t(requests.size());
  BALEINE_CHECK(o.max_batch >= 1 && o.prefill_tokens >= 1 && o.kv_block_size >= 1,
                "generate_batch: max_batch ({}), prefill_tokens ({}) and kv_block_size ({}) must be positive", o.max_batch,
                o.prefill_tokens, o.kv_block_size);
  std::vector<BatchOutput> out(static_cast<size_t>(n_req));
  if (n_req == 0) return out;

  // Validate everything first; group identical prompts (the first request of a group prefills for all).
  const int64_t bs = o.kv_block_size;
  int64_t blocks = 0;
  std::vector<std::vector<int64_t>> groups;  // request indices, the prefilling one first
  std::map<std::vector<int32_t>, size_t> group_of;  // prompt -> its group
  std::vector<std::unique_ptr<Run>> runs;
  for (int64_t i = 0; i < n_req; ++i) {
    const BatchRequest& r = requests[size_t(i)];
    const int64_t n = int64_t(r.prompt.size());
    BALEINE_CHECK(n > 0, "generate_batch: request {} has an empty prompt", i);
    BALEINE_CHECK(n < ctx, "generate_batch: request {}'s prompt has {} tokens; the context is {}", i, n, ctx);
    BALEINE_CHECK(r.max_new_tokens >= 1, "generate_batch: request {} has max_new_tokens {}", i, r.max_new_tokens);
    for (int32_t t : r.prompt)
      BALEINE_CHECK(t >= 0 && t < V, "generate_batch: request {}: token {} is outside the vocabulary [0, {})", i, t, V);
    auto run = std::make_unique<Run>(r.sampling);
    run->budget = std::min(r.max_new_tokens, ctx - n);
    run->context = r.prompt;
    blocks += (n + run->budget + bs - 1) / bs;  // an upper bound: shared prompt blocks are counted per request
    runs.push_back(std::move(run));
    size_t g = groups.size();
    if (o.share_prompts) g = group_of.try_emplace(r.prompt, groups.size()).first->second;
    if (g == groups.size()) groups.emplace_back();
    groups[g].push_back(i);
  }
  // Block memory is taken as blocks are first used, so the generous bound costs nothing.
  std::shared_ptr<KvPool> pool = model.new_kv_pool(blocks, bs);

  // Takes a sampled token; the request is done at a stop token or at its budget.
  auto take = [&](int64_t i, int32_t tok) {
    Run& r = *runs[size_t(i)];
    BatchOutput& b = out[size_t(i)];
    b.tokens.push_back(tok);
    r.context.push_back(tok);
    if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), tok) != o.stop_tokens.end()) b.finished = true;
    if (b.finished || int64_t(b.tokens.size()) >= r.budget) {
      r.done = true;
      r.seq.reset();  // its blocks go back to the pool (shared ones stay while others hold them)
    }
  };
  // Draws the next token of requests who[k] from rows[k] [V], chains in parallel (each request's chain and
  // generator are its own, so the draws do not depend on the threads), then takes them in order.
  std::vector<int32_t> drawn;
  auto sample_and_take = [&](std::span<const int64_t> who, std::span<const float* const> rows) {
    drawn.assign(who.size(), -1);
    std::vector<std::string> errors(who.size());
    parallel_for(int64_t(who.size()), [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        Run& r = *runs[size_t(who[size_t(k)])];
        const size_t n = requests[size_t(who[size_t(k)])].prompt.size();
        try {  // an exception must not escape a pool thread
          drawn[size_t(k)] = r.chain.sample({rows[size_t(k)], size_t(V)}, {std::span(r.context).subspan(n), r.context});
        } catch (const std::exception& e) {
          errors[size_t(k)] = e.what();
        }
      }
    });
    for (size_t k = 0; k < who.size(); ++k) {
      BALEINE_CHECK(errors[k].empty(), "generate_batch: request {}: {}", who[k], errors[k]);
      take(who[k], drawn[k]);
    }
  };

  // ---- prefill: each group's prompt once, groups packed into calls of at most prefill_tokens tokens.
  const int64_t row = pool->row(), layers = pool->layers();
  std::vector<float> kv_row(static_cast<size_t>(row));
  size_t g0 = 0;
  while (g0 < groups.size()) {
    size_t g1 = g0;
    int64_t tokens = 0;
    std::vector<BatchItem> items;
    while (g1 < groups.size()) {
      const int64_t lead = groups[g1].front();
      const int64_t n = int64_t(requests[size_t(lead)].prompt.size());
      if (g1 > g0 && tokens + n > o.prefill_tokens) break;
      Run& r = *runs[size_t(lead)];
      r.seq = model.new_sequence(pool, n + r.budget);
      items.push_back({r.seq.get(), requests[size_t(lead)].prompt, false});
      tokens += n;
      ++g1;
    }
    Tensor logits = model.forward_batch(items, o.mla_mode);  // [groups, V]: each prompt's last row
    for (size_t g = g0; g < g1; ++g) {
      const float* l = logits.f32() + int64_t(g - g0) * V;
      const std::vector<int64_t>& members = groups[g];
      const Sequence& lead = *runs[size_t(members.front())]->seq;
      const int64_t n = lead.length(), full = n / bs;
      // The others share the prompt's full blocks (never written again: decoding appends after position n)
      // and copy the rows of its partial last block, which the prefilling sequence goes on writing.
      for (size_t m = 1; m < members.size(); ++m) {
        Run& r = *runs[size_t(members[m])];
        r.seq = model.new_sequence(pool, n + r.budget);
        r.seq->adopt_prefix(std::span(lead.blocks()).first(size_t(full)));
        r.seq->reserve(n);
        for (int64_t layer = 0; layer < layers; ++layer)
          for (int64_t p = full * bs; p < n; ++p) {
            lead.read_row(layer, p, kv_row.data());
            r.seq->write_row(layer, p, kv_row.data());
          }
        r.seq->advance(n - full * bs);
      }
      const std::vector<const float*> same_row(members.size(), l);  // the group shares the prompt's last row
      sample_and_take(members, same_row);
    }
    g0 = g1;
  }

  // ---- decode: every unfinished request advances by one token per step, max_batch sequences per call.
  std::vector<int64_t> active;
  std::vector<BatchItem> items;
  std::vector<const float*> rows;
  while (true) {
    active.clear();
    for (int64_t i = 0; i < n_req; ++i)
      if (!runs[size_t(i)]->done) active.push_back(i);
    if (active.empty()) break;
    for (size_t a0 = 0; a0 < active.size(); a0 += size_t(o.max_batch)) {
      const size_t a1 = std::min(active.size(), a0 + size_t(o.max_batch));
      items.clear();
      for (size_t a = a0; a < a1; ++a) {
        const int64_t i = active[a];
        items.push_back({runs[size_t(i)]->seq.get(), std::span(out[size_t(i)].tokens).last(1), false});
      }
      Tensor logits = model.forward_batch(items, o.mla_mode);  // [a1 - a0, V]
      rows.clear();
      for (size_t a = a0; a < a1; ++a) rows.push_back(logits.f32() + int64_t(a - a0) * V);
      sample_and_take(std::span(active).subspan(a0, a1 - a0), rows);
    }
  }
  return out;
}

}  // namespace baleine
