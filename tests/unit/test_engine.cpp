// The generation engine against a plain greedy loop over CausalLM::forward: same tokens, stop conditions,
// logprobs, cancellation, concurrency, validation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <unistd.h>

#include "core/threadpool.h"
#include "engine_test_util.h"
#include "infer/engine.h"
#include "tokenizer/tokenizer.h"

using namespace baleine;

namespace {

const std::string kParity = std::string(BALEINE_TEST_DATA) + "/parity";

using engine_test::tiny_tokenizer;

std::shared_ptr<CausalLM> model() { return std::shared_ptr<CausalLM>(load_model(kParity + "/v3")); }

// Greedy continuation computed directly, token by token.
std::vector<int32_t> greedy_reference(CausalLM& m, std::vector<int32_t> prompt, int n) {
  auto seq = m.new_sequence(int64_t(prompt.size()) + n);
  Tensor l = m.forward(*seq, prompt);
  const int64_t V = l.dim(1);
  std::vector<float> row(l.f32() + (l.dim(0) - 1) * V, l.f32() + l.dim(0) * V);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    int32_t t = int32_t(std::max_element(row.begin(), row.end()) - row.begin());
    out.push_back(t);
    Tensor s = m.forward(*seq, std::span<const int32_t>(&t, 1));
    row.assign(s.f32(), s.f32() + V);
  }
  return out;
}

struct Collected {
  std::vector<int32_t> tokens;
  std::vector<GeneratedToken> entries;
  std::string text;
  GenerationEvent final;
};

Collected collect(GenerationHandle& h) {
  Collected c;
  while (auto e = h.next(std::chrono::seconds(30))) {
    for (auto& g : e->tokens) c.tokens.push_back(g.token), c.entries.push_back(g);
    c.text += e->text;
    if (e->finished) { c.final = *e; break; }
  }
  return c;
}

}  // namespace

TEST(Engine, GreedyMatchesForwardLoop) {
  auto m = model();
  std::vector<int32_t> prompt{5, 17, 42, 99, 3};
  auto want = greedy_reference(*m, prompt, 12);
  Engine eng(m, tiny_tokenizer());
  GenerationRequest r;
  r.prompt = prompt;
  r.params.max_tokens = 12;
  r.params.ignore_eos = true;
  Collected c = collect(*eng.submit(r));
  EXPECT_EQ(c.tokens, want);
  EXPECT_TRUE(c.final.finished);
  EXPECT_EQ(c.final.finish_reason, FinishReason::Length);
  EXPECT_EQ(c.final.usage.prompt_tokens, 5);
  EXPECT_EQ(c.final.usage.completion_tokens, 12);
}

TEST(Engine, ConcurrentRequestsEachMatchTheirOwnReference) {
  auto m = model();
  std::vector<std::vector<int32_t>> prompts{{1, 2, 3}, {7, 8}, {100, 4, 4, 4, 9, 11}, {60}};
  std::vector<std::vector<int32_t>> want;
  for (auto& p : prompts) want.push_back(greedy_reference(*m, p, 8));
  EngineOptions o;
  o.max_batch = 3;  // one request has to wait for a slot
  Engine eng(m, tiny_tokenizer(), o);
  std::vector<std::shared_ptr<GenerationHandle>> hs;
  for (auto& p : prompts) {
    GenerationRequest r;
    r.prompt = p;
    r.params.max_tokens = 8;
    r.params.ignore_eos = true;
    hs.push_back(eng.submit(r));
  }
  for (size_t i = 0; i < hs.size(); ++i) EXPECT_EQ(collect(*hs[i]).tokens, want[i]) << "request " << i;
}

TEST(Engine, StopTokenEndsWithoutText) {
  auto m = model();
  std::vector<int32_t> prompt{5, 17, 42};
  auto want = greedy_reference(*m, prompt, 6);
  Engine eng(m, tiny_tokenizer());
  GenerationRequest r;
  r.prompt = prompt;
  r.params.max_tokens = 6;
  r.params.ignore_eos = true;
  r.params.stop_tokens = {want[2]};
  Collected c = collect(*eng.submit(r));
  EXPECT_EQ(c.final.finish_reason, FinishReason::Stop);
  // Generation ends at the first occurrence of the stop token (which may come before position 2).
  size_t first = size_t(std::find(want.begin(), want.end(), want[2]) - want.begin());
  EXPECT_EQ(c.tokens.size(), first + 1);
}

TEST(Engine, StopStringCutsTheText) {
  auto m = model();
  auto tok = tiny_tokenizer();
  std::vector<int32_t> prompt{5, 17, 42};
  auto want = greedy_reference(*m, prompt, 10);
  std::string full = tok->decode(want);
  ASSERT_GE(full.size(), 4u);
  std::string stop = full.substr(full.size() / 2, 2);
  Engine eng(m, tok);
  GenerationRequest r;
  r.prompt = prompt;
  r.params.max_tokens = 10;
  r.params.ignore_eos = true;
  r.params.stop_strings = {stop};
  Collected c = collect(*eng.submit(r));
  EXPECT_EQ(c.final.finish_reason, FinishReason::Stop);
  EXPECT_EQ(c.text, full.substr(0, full.find(stop)));
}

TEST(Engine, LogprobsAreNormalisedAndIncludeTheChosenToken) {
  auto m = model();
  Engine eng(m, tiny_tokenizer());
  GenerationRequest r;
  r.prompt = {5, 17, 42};
  r.params.max_tokens = 4;
  r.params.ignore_eos = true;
  r.params.logprobs = true;
  r.params.top_logprobs = 5;
  r.params.prompt_logprobs = true;
  auto h = eng.submit(r);
  auto first = h->next(std::chrono::seconds(30));
  ASSERT_TRUE(first.has_value());
  ASSERT_EQ(first->prompt_logprobs.size(), 3u);
  Collected c = collect(*h);
  c.entries.insert(c.entries.begin(), first->tokens.begin(), first->tokens.end());
  ASSERT_EQ(c.entries.size(), 4u);
  for (auto& g : c.entries) {
    ASSERT_EQ(g.top.size(), 5u);
    EXPECT_EQ(g.top[0].token, g.token);  // greedy picks the most likely token
    EXPECT_FLOAT_EQ(g.top[0].logprob, g.logprob);
    EXPECT_LT(g.logprob, 0.0f);
    for (size_t i = 1; i < g.top.size(); ++i) EXPECT_LE(g.top[i].logprob, g.top[i - 1].logprob);
  }
}

TEST(Engine, CancelFinishesTheRequest) {
  auto m = model();
  Engine eng(m, tiny_tokenizer());
  GenerationRequest r;
  r.prompt = {5, 17, 42};
  r.params.max_tokens = 200;
  r.params.ignore_eos = true;
  auto h = eng.submit(r);
  h->cancel();
  Collected c = collect(*h);
  EXPECT_EQ(c.final.finish_reason, FinishReason::Cancelled);
  EXPECT_LT(c.tokens.size(), 200u);
}

TEST(Engine, RejectsBadRequests) {
  auto m = model();
  EngineOptions o;
  o.context = 64;
  Engine eng(m, tiny_tokenizer(), o);
  GenerationRequest r;
  EXPECT_THROW(eng.submit(r), Error);  // empty prompt
  r.prompt = {1, 2, int32_t(m->config().vocab_size)};
  EXPECT_THROW(eng.submit(r), Error);  // outside the vocabulary
  r.prompt = {1, 2, 3};
  r.params.max_tokens = 0;
  EXPECT_THROW(eng.submit(r), Error);
  r.params.max_tokens = 62;
  EXPECT_THROW(eng.submit(r), Error);  // prompt + max_tokens > context
  r.params.max_tokens = 4;
  r.params.top_logprobs = 21;
  EXPECT_THROW(eng.submit(r), Error);
  r.params.top_logprobs = 0;
  EXPECT_NO_THROW(collect(*eng.submit(r)));
}

TEST(Engine, DrainingShutdownFinishesInFlightRequests) {
  auto m = model();
  auto eng = std::make_unique<Engine>(m, tiny_tokenizer());
  GenerationRequest r;
  r.prompt = {5, 17, 42};
  r.params.max_tokens = 6;
  r.params.ignore_eos = true;
  auto h = eng->submit(r);
  eng->shutdown(/*drain=*/true);
  Collected c = collect(*h);
  EXPECT_EQ(c.final.finish_reason, FinishReason::Length);
  EXPECT_EQ(c.tokens.size(), 6u);
  EXPECT_THROW(eng->submit(r), Error);
}

// ---------------------------------------------------------------------------------------------------------
// Prefix cache
// ---------------------------------------------------------------------------------------------------------
TEST(PrefixCache, HitsMissesAndLruEviction) {
  auto pool = std::make_shared<KvPool>(1, 2, 4, 4);  // 4 blocks of 4 tokens
  PrefixCache cache(pool);
  const std::vector<int32_t> a{1, 2, 3, 4, 5, 6, 7, 8, 9}, b{1, 2, 3, 4, 9, 9, 9, 9};
  const int32_t a0 = pool->allocate(), a1 = pool->allocate();
  const int32_t a_blocks[2] = {a0, a1};
  cache.insert(a, a_blocks);  // two full blocks of a (token 9 is in no full block)
  EXPECT_EQ(cache.blocks(), 2);
  EXPECT_EQ(pool->refcount(a0), 2);
  EXPECT_EQ(cache.lookup(a, 9), (std::vector<int32_t>{a0, a1}));
  EXPECT_EQ(cache.lookup(a, 7), (std::vector<int32_t>{a0}));  // at most 7 tokens: one block
  EXPECT_EQ(cache.lookup(b, 8), (std::vector<int32_t>{a0}));  // shares the first block only
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(cache.lookup(std::vector<int32_t>{2, 2, 3, 4}, 4), std::vector<int32_t>{});  // same tokens at another place
  EXPECT_EQ(cache.hits(), 2u + 1u + 1u);
  // The owner lets go: the cache alone holds the blocks, which stay reusable.
  pool->release(a0), pool->release(a1);
  EXPECT_EQ(pool->used_blocks(), 2);
  // Fill the pool: allocation evicts the least recently used block the cache alone holds (a's second block,
  // the deepest of the chain), then its first.
  const int32_t x = pool->allocate(), y = pool->allocate();
  (void)x, (void)y;
  EXPECT_EQ(pool->allocate(), a1);
  EXPECT_EQ(cache.evictions(), 1u);
  EXPECT_EQ(cache.lookup(a, 9), (std::vector<int32_t>{a0}));
  pool->retain(a0);  // a running sequence uses a0 again: it cannot be evicted
  EXPECT_THROW(pool->allocate(), Error);
  pool->release(a0);
  EXPECT_EQ(pool->allocate(), a0);
  EXPECT_EQ(cache.blocks(), 0);
}

TEST(Engine, PrefixCacheReusesPromptBlocksWithIdenticalTokens) {
  auto m = model();
  std::vector<int32_t> prompt;
  for (int i = 0; i < 37; ++i) prompt.push_back(int32_t((i * 37 + 11) % 128));
  auto want = greedy_reference(*m, prompt, 10);
  std::vector<int32_t> longer = prompt;
  longer.insert(longer.end(), want.begin(), want.end());
  longer.push_back(7);
  auto want_longer = greedy_reference(*m, longer, 10);
  EngineOptions o;
  o.kv_block_size = 8;
  Engine eng(m, tiny_tokenizer(), o);
  GenerationRequest r;
  r.prompt = prompt;
  r.params.max_tokens = 10;
  r.params.ignore_eos = true;
  Collected first = collect(*eng.submit(r));
  Collected second = collect(*eng.submit(r));
  EXPECT_EQ(first.tokens, want);
  EXPECT_EQ(second.tokens, want);
  EXPECT_EQ(first.final.usage.cached_prompt_tokens, 0);
  EXPECT_EQ(second.final.usage.cached_prompt_tokens, 32);  // four full blocks; the last 5 tokens computed
  EXPECT_EQ(second.final.usage.prompt_tokens, 37);
  // Prompt + completion blocks were offered at the end (37 + 9 fed tokens = 46: five full blocks), so a request
  // continuing the conversation reuses five blocks.
  GenerationRequest r3 = r;
  r3.prompt = longer;
  Collected third = collect(*eng.submit(r3));
  EXPECT_EQ(third.final.usage.cached_prompt_tokens, 40);
  EXPECT_EQ(third.tokens, want_longer);
  EXPECT_EQ(eng.stats().cached_prompt_tokens, 72u);
  // Prompt logprobs need every position computed: no reuse.
  GenerationRequest r4 = r;
  r4.params.prompt_logprobs = true;
  Collected fourth = collect(*eng.submit(r4));
  EXPECT_EQ(fourth.final.usage.cached_prompt_tokens, 0);
  EXPECT_EQ(fourth.tokens, want);
  // Turned off: nothing cached.
  EngineOptions off = o;
  off.prefix_cache = false;
  Engine plain(m, tiny_tokenizer(), off);
  collect(*plain.submit(r));
  Collected again = collect(*plain.submit(r));
  EXPECT_EQ(again.final.usage.cached_prompt_tokens, 0);
  EXPECT_EQ(again.tokens, want);
}

namespace {
std::filesystem::path fresh_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("baleine_disk_cache_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  return d;
}
void fill_block(KvPool& pool, int32_t block, float seed) {
  std::vector<float> row(size_t(pool.row()));
  for (int64_t l = 0; l < pool.layers(); ++l)
    for (int64_t t = 0; t < pool.block_size(); ++t) {
      for (size_t i = 0; i < row.size(); ++i) row[i] = seed + float(l * 100 + t * 10) + float(i) * 0.5f;
      ops::kv_encode_row(pool.dtype(), row.data(), pool.row(), pool.data(block, l) + t * pool.row_bytes());
    }
}
bool same_block(KvPool& a, int32_t ba, KvPool& b, int32_t bb) {
  for (int64_t l = 0; l < a.layers(); ++l)
    if (std::memcmp(a.data(ba, l), b.data(bb, l), size_t(a.block_size() * a.row_bytes())) != 0) return false;
  return true;
}
}  // namespace

// The disk tier: blocks a cache took in come back, bit for bit, in a new pool (a restarted server); damaged
// files, another model's or another layout's files never match; the directory stays under its size limit,
// dropping the least recently used files.
TEST(PrefixCache, DiskTierSurvivesARestartAndRejectsWhatIsNotItsOwn) {
  const auto dir = fresh_dir("tier");
  const std::vector<int32_t> a{1, 2, 3, 4, 5, 6, 7, 8, 9}, b{1, 2, 3, 4, 9, 9, 9, 9};
  DiskCacheOptions disk{dir.string(), int64_t(1) << 20, 42};
  auto pool1 = std::make_shared<KvPool>(2, 6, 4, 8, ops::KvDType::BF16);
  int32_t a0, a1;
  {
    PrefixCache cache(pool1, disk);
    a0 = pool1->allocate(), a1 = pool1->allocate();
    fill_block(*pool1, a0, 1.0f), fill_block(*pool1, a1, 2.0f);
    const int32_t blocks[2] = {a0, a1};
    cache.insert(a, blocks);
    ASSERT_NE(cache.disk(), nullptr);
    EXPECT_EQ(cache.disk()->writes(), 2u);
    EXPECT_EQ(cache.disk()->files(), 2);
    cache.insert(a, blocks);  // already there: not written again
    EXPECT_EQ(cache.disk()->writes(), 2u);
  }
  // "Restart": a new pool and cache over the same directory.
  auto pool2 = std::make_shared<KvPool>(2, 6, 4, 8, ops::KvDType::BF16);
  {
    PrefixCache cache(pool2, disk);
    EXPECT_EQ(cache.disk()->files(), 2);
    auto got = cache.lookup(a, 9);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_TRUE(same_block(*pool1, a0, *pool2, got[0]));
    EXPECT_TRUE(same_block(*pool1, a1, *pool2, got[1]));
    EXPECT_EQ(cache.disk()->hits(), 2u);
    EXPECT_EQ(cache.blocks(), 2);                  // now in memory too
    EXPECT_EQ(cache.lookup(a, 9), got);            // from memory: no more disk reads
    EXPECT_EQ(cache.disk()->hits(), 2u);
    EXPECT_EQ(cache.lookup(b, 8).size(), 1u);      // b shares only the first block; its second is on no tier
  }
  // Another model, or another KV layout (f32 rows), never reads these blocks.
  {
    DiskCacheOptions other = disk;
    other.model_key = 43;
    PrefixCache cache(std::make_shared<KvPool>(2, 6, 4, 8, ops::KvDType::BF16), other);
    EXPECT_TRUE(cache.lookup(a, 9).empty());
    PrefixCache f32(std::make_shared<KvPool>(2, 6, 4, 8, ops::KvDType::F32), disk);
    EXPECT_TRUE(f32.lookup(a, 9).empty());
  }
  // A damaged file (one payload byte flipped, as a torn write or a bad disk would leave it) is rejected and
  // removed; the chain stops there.
  std::vector<std::filesystem::path> files;
  for (auto& e : std::filesystem::directory_iterator(dir)) files.push_back(e.path());
  ASSERT_EQ(files.size(), 2u);
  for (const auto& f : files) {
    std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(-3, std::ios::end);
    io.put('\x5a');
  }
  {
    PrefixCache cache(std::make_shared<KvPool>(2, 6, 4, 8, ops::KvDType::BF16), disk);
    EXPECT_TRUE(cache.lookup(a, 9).empty());
    EXPECT_EQ(cache.disk()->rejected(), 1u);
  }
  // The size limit: 1 MiB of 4-token blocks (~ 200 bytes each) would take thousands; a small limit keeps the
  // newest files only.
  std::filesystem::remove_all(dir);
  DiskCacheOptions small = disk;
  small.max_bytes = 2000;
  auto pool3 = std::make_shared<KvPool>(2, 6, 4, 64, ops::KvDType::BF16);
  PrefixCache cache(pool3, small);
  for (int32_t i = 0; i < 40; ++i) {
    const std::vector<int32_t> p{i, i + 1, i + 2, i + 3};
    const int32_t blk = pool3->allocate();
    fill_block(*pool3, blk, float(i));
    cache.insert(p, std::span<const int32_t>(&blk, 1));
    pool3->release(blk);
  }
  int64_t bytes = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) bytes += int64_t(e.file_size());
  EXPECT_LE(bytes, 2000);
  EXPECT_GT(bytes, 1000);
  EXPECT_EQ(bytes, cache.disk()->bytes());
  std::filesystem::remove_all(dir);
}

// Through the engine: a second engine (a restarted server) over the same directory serves the prompt's blocks
// from disk and generates exactly the uncached tokens.
TEST(Engine, DiskCacheServesAPrefixAfterARestart) {
  auto m = model();
  std::vector<int32_t> prompt;
  for (int i = 0; i < 37; ++i) prompt.push_back(int32_t((i * 37 + 11) % 128));
  auto want = greedy_reference(*m, prompt, 10);
  const auto dir = fresh_dir("engine");
  EngineOptions o;
  o.kv_block_size = 8;
  o.disk_cache = {dir.string(), int64_t(1) << 24, 7};
  GenerationRequest r;
  r.prompt = prompt;
  r.params.max_tokens = 10;
  r.params.ignore_eos = true;
  {
    Engine first(m, tiny_tokenizer(), o);
    Collected c = collect(*first.submit(r));
    EXPECT_EQ(c.tokens, want);
    EXPECT_EQ(c.final.usage.cached_prompt_tokens, 0);
    EXPECT_GT(first.stats().disk_cache_writes, 0u);
  }
  Engine second(m, tiny_tokenizer(), o);
  Collected c = collect(*second.submit(r));
  EXPECT_EQ(c.tokens, want);
  EXPECT_EQ(c.final.usage.cached_prompt_tokens, 32);  // four full blocks, read back from disk
  EXPECT_EQ(second.stats().disk_cache_hits, 4u);
  EngineOptions no_cache = o;
  no_cache.prefix_cache = false;
  EXPECT_THROW(Engine(m, tiny_tokenizer(), no_cache), Error);  // a disk tier without the prefix cache is an error
  std::filesystem::remove_all(dir);
}

TEST(Engine, SmallPoolEvictsAndQueuesButFinishesEverything) {
  auto m = model();
  EngineOptions o;
  o.kv_block_size = 4;
  o.context = 32;
  o.kv_cache_tokens = 40;  // 10 blocks: two requests of 20 tokens at a time
  o.max_batch = 4;
  o.prefill_chunk = 3;     // prompts prefill in chunks of 3 mixed with decoding
  // References first: the model is not shared between threads while an engine runs on it.
  std::vector<std::vector<int32_t>> prompts, want;
  for (int k = 0; k < 6; ++k) {
    std::vector<int32_t> p;
    for (int i = 0; i < 12; ++i) p.push_back(int32_t((k * 53 + i * 7 + 1) % 128));
    prompts.push_back(p);
    want.push_back(greedy_reference(*m, p, 8));
  }
  Engine eng(m, tiny_tokenizer(), o);
  std::vector<std::shared_ptr<GenerationHandle>> hs;
  for (int k = 0; k < 6; ++k) {
    GenerationRequest r;
    r.prompt = prompts[size_t(k)];
    r.params.max_tokens = 8;
    r.params.ignore_eos = true;
    hs.push_back(eng.submit(r));
  }
  for (size_t k = 0; k < hs.size(); ++k) {
    Collected c = collect(*hs[k]);
    EXPECT_EQ(c.final.finish_reason, FinishReason::Length) << c.final.error;
    EXPECT_EQ(c.tokens, want[k]) << "request " << k;
  }
  EngineStats s = eng.stats();
  EXPECT_LE(s.kv_blocks_used, 10);
  EXPECT_EQ(s.kv_blocks_total, 10);
}

// ---------------------------------------------------------------------------------------------------------
// Speculative decoding with the MTP module
// ---------------------------------------------------------------------------------------------------------
TEST(Engine, GreedySpeculativeEqualsGreedyExactly) {
  auto m = model();
  ASSERT_TRUE(m->has_mtp());
  const std::vector<std::vector<int32_t>> prompts{{5, 17, 42, 99, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {60}};
  std::vector<std::vector<int32_t>> want;
  for (auto& p : prompts) want.push_back(greedy_reference(*m, p, 20));
  EngineOptions o;
  o.speculative_mtp = true;
  o.prefill_chunk = 4;  // the MTP cache also fills chunk by chunk
  Engine eng(m, tiny_tokenizer(), o);
  std::vector<std::shared_ptr<GenerationHandle>> hs;
  for (auto& p : prompts) {
    GenerationRequest r;
    r.prompt = p;
    r.params.max_tokens = 20;
    r.params.ignore_eos = true;
    hs.push_back(eng.submit(r));
  }
  int64_t drafts = 0, accepted = 0;
  for (size_t i = 0; i < hs.size(); ++i) {
    Collected c = collect(*hs[i]);
    EXPECT_EQ(c.tokens, want[i]) << "request " << i;
    EXPECT_EQ(c.final.usage.completion_tokens, 20);
    EXPECT_GT(c.final.usage.draft_tokens, 0);
    EXPECT_LE(c.final.usage.accepted_draft_tokens, c.final.usage.draft_tokens);
    // Every step yields one token plus one per accepted draft.
    EXPECT_GE(c.final.usage.draft_tokens + c.final.usage.accepted_draft_tokens, 19);
    drafts += c.final.usage.draft_tokens, accepted += c.final.usage.accepted_draft_tokens;
  }
  EngineStats s = eng.stats();
  EXPECT_EQ(int64_t(s.draft_tokens), drafts);
  EXPECT_EQ(int64_t(s.accepted_draft_tokens), accepted);
  std::printf("MTP drafts %lld, accepted %lld (random-weight fixture)\n", (long long)drafts, (long long)accepted);
}

TEST(Engine, SpeculativeSamplingIsSeededAndStopsCorrectly) {
  auto m = model();
  const std::vector<int32_t> greedy = greedy_reference(*m, {9, 8, 7}, 15);
  EngineOptions o;
  o.speculative_mtp = true;
  Engine eng(m, tiny_tokenizer(), o);
  GenerationRequest r;
  r.prompt = {9, 8, 7};
  r.params.max_tokens = 15;
  r.params.ignore_eos = true;
  r.params.sampling.temperature = 0.8f;
  r.params.sampling.top_k = 20;
  r.params.sampling.seed = 11;
  r.params.logprobs = true;
  Collected a = collect(*eng.submit(r));
  Collected b = collect(*eng.submit(r));
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.tokens.size(), 15u);  // the budget holds even when a step yields two tokens
  for (auto& g : a.entries) EXPECT_LE(g.logprob, 0.0f);
  // A stop token inside an accepted pair ends the request there.
  GenerationRequest s = r;
  s.params.sampling = SamplingParams{};
  s.params.stop_tokens = {greedy[6]};
  Collected c = collect(*eng.submit(s));
  const size_t first = size_t(std::find(greedy.begin(), greedy.end(), greedy[6]) - greedy.begin());
  EXPECT_EQ(c.tokens, std::vector<int32_t>(greedy.begin(), greedy.begin() + first + 1));
  EXPECT_EQ(c.final.finish_reason, FinishReason::Stop);
}

// MoE prefill runs whole experts per thread (and large experts split inside the kernels); logits must be
// bit-identical for any thread count, for a prompt (tens of rows per expert) and a one-token step.
TEST(Engine, MoeForwardIsIdenticalForAnyThreadCount) {
  auto m = model();
  std::vector<int32_t> prompt;
  for (int i = 0; i < 70; ++i) prompt.push_back(int32_t((i * 37 + 5) % 128));
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 2, 3}) {
    ThreadPool::set_global_threads(threads);
    auto seq = m->new_sequence(int64_t(prompt.size()) + 1);
    Tensor l = m->forward(*seq, prompt);
    std::vector<float> all(l.f32(), l.f32() + l.numel());
    const int32_t t = 7;
    Tensor s = m->forward(*seq, std::span<const int32_t>(&t, 1));
    all.insert(all.end(), s.f32(), s.f32() + s.numel());
    runs.push_back(std::move(all));
  }
  ThreadPool::set_global_threads(0);
  for (size_t r = 1; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].size(), runs[0].size());
    EXPECT_EQ(0, std::memcmp(runs[r].data(), runs[0].data(), runs[0].size() * sizeof(float))) << "threads run " << r;
  }
}
