// Embeddings through the engine for the agent: engine_embeddings (batched, next to nothing else) equals the
// direct model_embedding within 1e-5; the cache returns what was stored; hybrid retrieval (BM25 fused with the
// model's embeddings) keeps the BM25 passage holding the answer among its hits on the fixture set, and finds
// passages for a query that shares no word with any document (where BM25 finds nothing).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/embeddings.h"
#include "agent/retrieval.h"
#include "agent_test_util.h"

using namespace baleine;
using namespace baleine::agent;

namespace {

using agent_test::fixture_store;

}  // namespace

TEST(AgentEngineEmbeddings, BatchedThroughTheEngineEqualsTheDirectForm) {
  auto tok = agent_test::tiny_tokenizer();
  auto model = agent_test::tiny_model();
  Engine engine(model, tok);
  const std::vector<std::string> texts{"lighthouse keepers", "the answer is 42 and more words", "", "caf\xc3\xa9 poetry"};
  auto batched = engine_embeddings(engine, texts);
  ASSERT_EQ(batched.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    auto direct = model_embedding(*model, *tok, texts[i]);
    ASSERT_EQ(batched[i].size(), direct.size());
    for (size_t j = 0; j < direct.size(); ++j) EXPECT_NEAR(batched[i][j], direct[j], 1e-5) << "text " << i;
  }
  for (float v : batched[2]) EXPECT_EQ(v, 0.0f);  // the empty text
  auto cache = std::make_shared<EmbeddingCache>(":memory:");
  int calls = 0;
  Embedder counted = [&](const std::string& t) { ++calls; return engine_embeddings(engine, {t})[0]; };
  Embedder e = cached_embedder(cache, "m", counted);
  // One text alone is a batch of one row: its rounding may differ from the 4-row batch's (1e-7 seen in a clean
  // clone), so it is compared within the tolerance above; the second call is the cache's copy, bit for bit.
  const std::vector<float> first = e(texts[0]);
  ASSERT_EQ(first.size(), batched[0].size());
  for (size_t j = 0; j < first.size(); ++j) EXPECT_NEAR(first[j], batched[0][j], 1e-5);
  EXPECT_EQ(e(texts[0]), first);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(cache->size(), 1u);
}

TEST(AgentEngineEmbeddings, HybridRetrievalKeepsTheBm25HitAndFindsParaphrases) {
  auto tok = agent_test::tiny_tokenizer();
  auto model = agent_test::tiny_model();
  Engine engine(model, tok);
  auto lexical = fixture_store();
  auto hybrid = fixture_store();
  hybrid->set_embedder(engine_embedder(engine));
  const char* questions[] = {"When was the lighthouse automated and the keepers left?", "How long is the buckwheat sourdough fermented?",
                             "How far did the glacier snout retreat in 2022?", "What time control does the rapid tournament use?",
                             "Which day is the bakery closed?", "How many homes does the reservoir supply with electricity?"};
  for (const char* q : questions) {
    auto want = lexical->search(q, 1);
    ASSERT_FALSE(want.empty()) << q;
    auto got = hybrid->search(q, 3);
    bool kept = false;
    for (const auto& p : got) kept = kept || (p.document == want[0].document && p.offset == want[0].offset);
    EXPECT_TRUE(kept) << q;
  }
  // No shared word with any document: BM25 has nothing, the dense half still ranks passages.
  EXPECT_TRUE(lexical->search("zyxwv qwpl", 3).empty());
  EXPECT_EQ(hybrid->search("zyxwv qwpl", 3).size(), 3u);
}
