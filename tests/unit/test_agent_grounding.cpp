// Grounded quotes (agent/grounding.h): the substring index against brute force, the constraint under random
// sampling (every quoted span the sampler lets through is a copy of the sources), the sources of a conversation,
// the agent loop with the option on, and the quote search (agent/quote_search.h) against independent scoring.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/agent_loop.h"
#include "agent/builtin_tools.h"
#include "agent/grounding.h"
#include "agent/quote_search.h"
#include "agent_test_util.h"

using namespace baleine;
using namespace baleine::agent;
using json = nlohmann::json;

namespace {
ChatMessage message(const std::string& role, const std::string& content) {
  ChatMessage m;
  m.role = role;
  m.content = content;
  return m;
}
std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(uint8_t(c)));
  return s;
}
bool brute_contains(const std::vector<std::string>& texts, const std::string& s) {
  return std::any_of(texts.begin(), texts.end(), [&](const std::string& t) {
    return t.find(s) != std::string::npos || lower(t).find(s) != std::string::npos;
  });
}
// n random characters of alphabet.
std::string random_string(std::mt19937& rng, const std::string& alphabet, size_t n) {
  std::string s;
  for (; n > 0; --n) s += alphabet[rng() % alphabet.size()];
  return s;
}
bool word_byte(char c) { return std::isalnum(uint8_t(c)) || uint8_t(c) >= 0x80; }
// s occurs in a text (or its lower-cased form) starting at a word start and ending at a word end.
bool brute_word_span(const std::vector<std::string>& texts, const std::string& s, size_t max_bytes = 96) {
  if (s.empty() || s.size() > max_bytes) return false;
  for (const auto& original : texts)
    for (const std::string& t : {original, lower(original)})
      for (size_t i = t.find(s); i != std::string::npos; i = t.find(s, i + 1)) {
        const size_t j = i + s.size();
        if (word_byte(t[i]) && (i == 0 || !word_byte(t[i - 1])) && word_byte(t[j - 1]) && (j == t.size() || !word_byte(t[j])))
          return true;
      }
  return false;
}
// The quoted spans of text (the last one may be open).
std::vector<std::string> quoted_spans(const std::string& text) {
  std::vector<std::string> out;
  bool in = false;
  for (char c : text) {
    if (c == '\x01') {  // a special token (see without_specials): ends any quote
      in = false;
    } else if (c == '"') {
      if (!in) out.emplace_back();
      in = !in;
    } else if (in) {
      out.back() += c;
    }
  }
  return out;
}
// text with every special token's bytes replaced by \x01 (quoted_spans ends a quote there, as the constraint does).
std::string without_specials(std::string text, const VocabIndex& vocab) {
  for (size_t id = 0; id < vocab.bytes.size(); ++id) {
    const std::string& b = vocab.bytes[id];
    if (!vocab.special[id] || b.empty()) continue;
    for (size_t p; (p = text.find(b)) != std::string::npos;) text.replace(p, b.size(), "\x01");
  }
  return text;
}
// The agent loop over the retrieval fixture with a forced first search, the random tiny model sampling at T = 1.5.
struct ChessClubLoop {
  std::shared_ptr<const Tokenizer> tok = agent_test::tiny_tokenizer();
  std::shared_ptr<const VocabIndex> vocab = VocabIndex::build(*tok);
  Engine engine{agent_test::tiny_model(), tok};
  ToolRegistry reg;
  ChessClubLoop() { reg.add(retrieval_tool(agent_test::fixture_store(), 2, "Who founded the chess club?")); }
  AgentResult run(int seed, bool grounded_quotes, bool quote_search) {
    AgentOptions o;
    o.params.max_tokens = 80;
    o.params.sampling.temperature = 1.5f;
    o.params.sampling.seed = uint64_t(seed);
    o.first_choice = ToolChoice{ToolChoiceMode::Required, ""};
    o.parallel_tool_calls = false;
    o.max_steps = 2;
    o.grounded_quotes = grounded_quotes;
    o.quote_search = quote_search;
    AgentLoop loop(engine, vocab, reg, o);
    return loop.run({message("user", "Who founded the chess club?")});
  }
};
}  // namespace

TEST(Grounding, SubstringIndexMatchesBruteForce) {
  std::mt19937 rng(7);
  const std::string alphabet = "abAB c\"";
  for (int round = 0; round < 20; ++round) {
    std::vector<std::string> texts(1 + rng() % 4);
    for (auto& t : texts) t = random_string(rng, alphabet, rng() % 40);
    SubstringIndex index(texts);
    for (const auto& t : texts)  // every substring of every text, and its lower-cased form
      for (size_t i = 0; i < t.size(); ++i)
        for (size_t n = 1; i + n <= t.size() && n <= 10; ++n) {
          EXPECT_TRUE(index.contains(t.substr(i, n)));
          EXPECT_TRUE(index.contains(lower(t.substr(i, n))));
        }
    for (int k = 0; k < 400; ++k) {  // random strings: contained exactly when brute force finds them
      const std::string s = random_string(rng, alphabet, 1 + rng() % 6);
      EXPECT_EQ(index.contains(s), brute_contains(texts, s)) << s;
    }
  }
  // No substring runs from one text into the next.
  SubstringIndex two({"abc", "def"});
  EXPECT_TRUE(two.contains("bc"));
  EXPECT_TRUE(two.contains("de"));
  EXPECT_FALSE(two.contains("cd"));
  EXPECT_TRUE(two.contains(""));
  EXPECT_TRUE(SubstringIndex({"Nephridia"}).contains("nephridia"));
}

TEST(Grounding, WordSpanIndexMatchesBruteForce) {
  std::mt19937 rng(9);
  const std::string alphabet = "abA .c";
  for (int round = 0; round < 20; ++round) {
    std::vector<std::string> texts(1 + rng() % 3);
    for (auto& t : texts) t = random_string(rng, alphabet, rng() % 30);
    WordSpanIndex index(texts, 12);
    for (const auto& t : texts)  // every substring of every text: accepted exactly when word-aligned
      for (size_t i = 0; i < t.size(); ++i)
        for (size_t n = 1; i + n <= t.size() && n <= 14; ++n)
          EXPECT_EQ(index.contains(t.substr(i, n)), brute_word_span(texts, t.substr(i, n), 12)) << t.substr(i, n) << " in " << t;
    for (int k = 0; k < 300; ++k) {
      const std::string s = random_string(rng, alphabet, 1 + rng() % 6);
      EXPECT_EQ(index.contains(s), brute_word_span(texts, s, 12)) << s;
    }
  }
  WordSpanIndex dict({"Nephridium  n.; pl. Nephridia. [NL.]"});
  EXPECT_TRUE(dict.contains("Nephridia"));
  EXPECT_TRUE(dict.contains("nephridia"));
  EXPECT_TRUE(dict.contains("pl. Nephridia"));
  EXPECT_FALSE(dict.contains("ephridia"));  // not a word start
  EXPECT_FALSE(dict.contains("Nephr"));     // not a word end
  EXPECT_FALSE(dict.contains(""));
}

TEST(Grounding, SampledQuotesAreCopiesOfTheSources) {
  auto tok = agent_test::tiny_tokenizer();
  auto vocab = VocabIndex::build(*tok);
  const std::vector<std::string> sources = {"the answer is 42", "Ada Lovelace wrote poetry about math"};
  auto index = std::make_shared<SubstringIndex>(sources);
  std::mt19937 rng(11);
  size_t long_spans = 0, spans = 0;
  // Special tokens end a quote (tested below); here they are kept out so the text's quotes are the tracked ones.
  std::vector<int32_t> specials;
  for (int32_t id = 0; id < int32_t(vocab->vocab_size); ++id)
    if (vocab->special[size_t(id)] && id != tok->eos_id()) specials.push_back(id);
  for (int run = 0; run < 40; ++run) {
    AllOfConstraint c({std::make_shared<ForbidTokensConstraint>(specials), std::make_shared<GroundedQuoteConstraint>(index, vocab)});
    const std::string text = agent_test::generate_random(c, tok->vocab_size(), 120, rng);
    for (const auto& s : quoted_spans(text)) {
      ++spans;
      long_spans += s.size() >= 3;
      EXPECT_TRUE(brute_contains(sources, s)) << "span \"" << s << "\" of: " << text;
    }
    // Closed quotes are never empty.
    EXPECT_EQ(text.find("\"\""), std::string::npos) << text;
  }
  EXPECT_GT(spans, 20u);  // the random sampler opens quotes often, so the mask was exercised
  EXPECT_GT(long_spans, 5u);
  // Whole-word spans (what the agent loop uses): every closed quote is a word-aligned copy.
  auto words = std::make_shared<WordSpanIndex>(sources);
  size_t closed = 0;
  for (int run = 0; run < 40; ++run) {
    AllOfConstraint c({std::make_shared<ForbidTokensConstraint>(specials), std::make_shared<GroundedQuoteConstraint>(words, vocab)});
    const std::string text = agent_test::generate_random(c, tok->vocab_size(), 120, rng);
    const auto q = quoted_spans(text);
    const bool last_open = std::count(text.begin(), text.end(), '"') % 2 == 1;
    for (size_t i = 0; i < q.size(); ++i) {
      if (last_open && i + 1 == q.size()) {
        EXPECT_TRUE(brute_contains(sources, q[i])) << q[i];  // still open: a prefix of a span
      } else {
        ++closed;
        EXPECT_TRUE(brute_word_span(sources, q[i])) << "span \"" << q[i] << "\" of: " << text;
      }
    }
  }
  EXPECT_GT(closed, 3u);
  // Without the constraint the same sampler writes quoted text the sources do not hold (the test can fail).
  ForbidTokensConstraint none(specials);
  size_t ungrounded = 0;
  for (int run = 0; run < 20; ++run)
    for (const auto& s : quoted_spans(agent_test::generate_random(none, tok->vocab_size(), 120, rng)))
      ungrounded += !brute_contains(sources, s);
  EXPECT_GT(ungrounded, 0u);
}

TEST(Grounding, ToolCallMarkerAndSpecialTokensEndTracking) {
  auto tok = agent_test::tiny_tokenizer();
  auto vocab = VocabIndex::build(*tok);
  GroundedQuoteConstraint c(std::make_shared<SubstringIndex>(std::vector<std::string>{"abc"}), vocab);
  GroundedQuoteConstraint::State s;
  EXPECT_TRUE(c.advance(s, "say \"ab"));
  EXPECT_TRUE(s.in_quote);
  EXPECT_EQ(s.quoted, 2);
  GroundedQuoteConstraint::State t = s;
  EXPECT_FALSE(c.advance(t, "x"));      // "abx" is not in the sources
  t = s;
  EXPECT_TRUE(c.advance(t, "c\" ok"));  // "abc" closed, free text after
  EXPECT_FALSE(t.in_quote);
  GroundedQuoteConstraint::State e;
  EXPECT_FALSE(c.advance(e, "\"\""));   // an empty quote
  for (int32_t id = 0; id < int32_t(vocab->vocab_size); ++id)
    if (vocab->special[size_t(id)] && vocab->bytes[size_t(id)].find("tool") != std::string::npos) {
      c.accept(id);
      EXPECT_TRUE(c.state().off);
      break;
    }
}

TEST(Grounding, SourcesNeedPassages) {
  const ChatMessage u = message("user", "What is the plural of \"nephridium\"?");
  const ChatMessage calc = message("tool", R"({"expression":"2+2","result":"4"})");
  EXPECT_TRUE(grounding_sources({u, calc}).empty());  // no passages: nothing to ground on
  const ChatMessage found = message("tool", R"({"query":"nephridium","passages":[{"document":"gcide: Nephridium","text":"Nephridium  n.; pl. Nephridia."}]})");
  const auto s = grounding_sources({u, calc, found});
  EXPECT_NE(std::find(s.begin(), s.end(), "Nephridium  n.; pl. Nephridia."), s.end());
  EXPECT_NE(std::find(s.begin(), s.end(), u.content), s.end());
  EXPECT_NE(std::find(s.begin(), s.end(), "gcide: Nephridium"), s.end());
}

// The loop with grounded quotes on: after the search, every quoted span of the random tiny model's answer is a copy
// of the question or the passages.
TEST(Grounding, AgentLoopAnswersQuoteTheSources) {
  ChessClubLoop f;
  const auto& vocab = f.vocab;
  size_t spans = 0;
  for (int seed = 1; seed <= 16; ++seed) {
    AgentResult r = f.run(seed, true, false);
    ASSERT_GE(r.messages.size(), 3u);
    ASSERT_EQ(r.messages[2].role, "tool");
    const auto sources = grounding_sources(r.messages);
    ASSERT_FALSE(sources.empty());
    for (const auto& s : quoted_spans(without_specials(r.content, *vocab))) {
      ++spans;
      EXPECT_TRUE(brute_contains(sources, s)) << "span \"" << s << "\" of: " << r.content;  // (open ones: prefixes)
    }
  }
  EXPECT_GT(spans, 0u);  // the random model does quote, so the constraint was in the loop
}

namespace {
// Log-probability of `tokens` after `context` under the engine's model: a prompt_logprobs request (no prefix cache),
// independent of the search's own scoring.
double scored(Engine& engine, const std::vector<int32_t>& context, const std::vector<int32_t>& tokens) {
  GenerationRequest req;
  req.prompt = context;
  req.prompt.insert(req.prompt.end(), tokens.begin(), tokens.end());
  req.params.max_tokens = 1;
  req.params.prompt_logprobs = true;
  auto h = engine.submit(std::move(req));
  std::vector<GeneratedToken> lp;
  for (;;) {
    auto e = h->next(std::chrono::milliseconds(1000));
    if (!e) continue;
    if (!e->prompt_logprobs.empty()) lp = e->prompt_logprobs;
    if (e->finished) break;
  }
  EXPECT_EQ(lp.size(), context.size() + tokens.size());
  double sum = 0;
  for (size_t i = context.size(); i < lp.size(); ++i) sum += lp[i].logprob;
  return sum;
}
}  // namespace

// The search returns a closed whole-word copy of the sources, its score is the model's log-probability of those
// tokens, and no span of the sources is more likely: checked against every word-aligned span of up to three words
// (as written and lower-cased, closing quote included), each scored independently. Every allowed token is kept per
// step here, so the search is exact.
TEST(QuoteSearch, FindsTheMostLikelyQuoteOfTheSources) {
  auto tok = agent_test::tiny_tokenizer();
  auto vocab = VocabIndex::build(*tok);
  Engine engine(agent_test::tiny_model(), tok);
  const std::vector<std::string> sources = {"Ada Lovelace wrote poetry about math", "the answer is 42"};
  auto words = std::make_shared<WordSpanIndex>(sources);
  GroundedQuoteConstraint grounding(words, vocab);
  std::vector<std::string> candidates;  // every whole-word span of 1..3 words, as written and lower-cased
  for (const auto& original : sources)
    for (const std::string& t : {original, lower(original)}) {
      std::vector<std::string> w;
      std::istringstream in(t);
      for (std::string x; in >> x;) w.push_back(x);
      for (size_t i = 0; i < w.size(); ++i)
        for (size_t n = 1; n <= 3 && i + n <= w.size(); ++n) {
          std::string s = w[i];
          for (size_t k = 1; k < n; ++k) s += " " + w[i + k];
          candidates.push_back(s);
        }
    }
  size_t compared = 0, searched = 0;
  for (const std::string prefix : {"Who wrote poetry? She is \"", "the answer is \"", "{\"name\": \"", "caf\xc3\xa9 \""}) {
    const std::vector<int32_t> context = tok->encode(prefix);
    GroundedQuoteConstraint::State start;
    ASSERT_TRUE(grounding.advance(start, "\""));  // the quote the prefix ends with is open
    QuoteSearchOptions o;
    o.max_expansions = 3000;
    o.children = int(vocab->vocab_size);
    const QuoteSearchResult q = search_grounded_quote(engine, context, grounding, start, *vocab, 24, o);
    ASSERT_TRUE(q.found) << prefix;
    ASSERT_LT(q.expansions, o.max_expansions) << "the budget ran out: the result need not be the best";
    ++searched;
    const std::string quote = tok->decode(q.tokens);
    ASSERT_FALSE(quote.empty());
    const size_t close = quote.find('"');
    ASSERT_NE(close, std::string::npos) << quote;
    EXPECT_TRUE(brute_word_span(sources, quote.substr(0, close))) << quote;
    EXPECT_NEAR(q.logprob, scored(engine, context, q.tokens), 1e-3) << quote;
    for (const std::string& c : candidates) {
      const std::vector<int32_t> ids = tok->encode(c + "\"");
      if (tok->decode(ids) != c + "\"") continue;
      const double clp = scored(engine, context, ids);
      ++compared;
      EXPECT_GE(q.logprob, clp - 1e-3) << "\"" << c << "\" is more likely than the search's \"" << quote << " after " << prefix;
    }
  }
  EXPECT_EQ(searched, 4u);
  EXPECT_GT(compared, 40u);
}

// In the agent loop, with the search on, every closed quote of the answer is a whole-word copy of the sources.
TEST(QuoteSearch, AgentLoopQuotesAreWholeSpans) {
  ChessClubLoop f;
  const auto& vocab = f.vocab;
  size_t closed = 0;
  for (int seed = 1; seed <= 12; ++seed) {
    AgentResult r = f.run(seed, false, true);
    ASSERT_GE(r.messages.size(), 3u);
    const auto sources = grounding_sources(r.messages);
    ASSERT_FALSE(sources.empty());
    EXPECT_LE(r.usage.completion_tokens, 2 * 80);  // two turns of at most max_tokens
    // The quotes closed by a '"' (one a special token cut was not searched to its end).
    const std::string text = without_specials(r.content, *vocab);
    std::string span;
    bool in = false;
    for (char c : text) {
      if (c == '\x01') {
        in = false;
      } else if (c == '"' && !in) {
        in = true;
        span.clear();
      } else if (c == '"') {
        in = false;
        ++closed;
        EXPECT_TRUE(brute_word_span(sources, span)) << "span \"" << span << "\" of: " << r.content;
      } else if (in) {
        span += c;
      }
    }
  }
  EXPECT_GT(closed, 0u);  // the random model does close quotes, so the search wrote some
}

// A busy engine (its queue full) stops the search cleanly: no error, no request left behind holding the caller's
// grounding state; what it returns is still a valid quote when it found one.
TEST(QuoteSearch, FullQueueEndsTheSearch) {
  auto tok = agent_test::tiny_tokenizer();
  auto vocab = VocabIndex::build(*tok);
  EngineOptions eo;
  eo.max_batch = 1;
  eo.max_queue = 1;
  Engine engine(agent_test::tiny_model(), tok, eo);
  const std::vector<std::string> sources = {"Ada Lovelace wrote poetry about math", "the answer is 42"};
  int stopped = 0;
  for (int run = 0; run < 10; ++run) {
    GroundedQuoteConstraint grounding(std::make_shared<WordSpanIndex>(sources), vocab);
    GroundedQuoteConstraint::State start;
    ASSERT_TRUE(grounding.advance(start, "\""));
    QuoteSearchOptions o;
    o.batch = 8;  // more than the engine takes at once
    const QuoteSearchResult q = search_grounded_quote(engine, tok->encode("She is \""), grounding, start, *vocab, 24, o);
    stopped += !q.found && q.expansions < o.max_expansions;
    if (q.found) {
      const std::string quote = tok->decode(q.tokens);
      EXPECT_TRUE(brute_word_span(sources, quote.substr(0, quote.find('"')))) << quote;
    }
  }
  EXPECT_GT(stopped, 0);  // the queue did fill, so the early stop ran
  // Nothing left running (the stats are taken after each engine step, so give it one).
  for (int i = 0; i < 200 && (engine.stats().running > 0 || engine.stats().queued > 0); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(engine.stats().running + engine.stats().queued, 0);
}
