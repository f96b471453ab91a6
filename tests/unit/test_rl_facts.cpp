// The dictionary questions (rl/facts.h) on the committed fixture tests/data/facts (real entries of the corpus's
// WordNet, FOLDOC and GCIDE extracts): three-way graders, deterministic split-disjoint generation, retrieval of
// the entry that holds the answer, and a tiny end-to-end grounding eval (in process and through the CLI) on a
// tiny random model with the default model's tokenizer (which has the tool-call markers).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "agent/retrieval.h"
#include "core/check.h"
#include "io/safetensors.h"
#include "models/weights.h"
#include "rl/endpoint.h"
#include "rl/facts_eval.h"
#include "server/server.h"

using namespace baleine;
using namespace baleine::rl;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string kFacts = std::string(BALEINE_TEST_DATA) + "/facts";

FactSet& fixture() {
  static FactSet f(FactOptions{kFacts, {"synonym", "pos", "acronym", "plural"}, 2000}, 3);
  return f;
}

Fact fact(std::vector<std::string> aliases) {
  Fact f;
  f.family = "synonym";
  f.answer = aliases[0];
  f.aliases = std::move(aliases);
  return f;
}

// A tiny DeepSeek-V3 model (the parity fixture's shape) with random weights and models/default's tokenizer.
const fs::path& tiny_model() {
  static fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("baleine_facts_model_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    const fs::path def = fs::path(BALEINE_TEST_DATA) / "../../models/default";
    fs::copy_file(def / "tokenizer.json", d / "tokenizer.json");
    fs::copy_file(def / "tokenizer_config.json", d / "tokenizer_config.json");
    std::ifstream in(std::string(BALEINE_TEST_DATA) + "/parity/v3/config.json");
    json cfg = json::parse(in);
    cfg["vocab_size"] = 4096;
    cfg["num_nextn_predict_layers"] = 0;
    cfg["max_position_embeddings"] = 2048;
    cfg["rope_scaling"] = nullptr;
    std::ofstream(d / "config.json") << cfg.dump(2);
    auto model = create_model(parse_model_config(cfg, "test"));
    init_params_random(*model, 11, 0.05f);
    std::vector<std::pair<std::string, Tensor>> params;
    model->for_each_param([&](nn::Param& p) { if (p.tensor->defined()) params.emplace_back(p.name, *p.tensor); });
    io::safetensors_write((d / "model.safetensors").string(), params);
    return d;
  }();
  return dir;
}

}  // namespace

TEST(RlFacts, GradesCorrectIncorrectAndNotAttempted) {
  const Fact f = fact({"dorsal", "abaxial side"});
  EXPECT_EQ(normalize_answer("  The Abaxial-Side!  "), "abaxial side");
  EXPECT_EQ(grade_fact(f, "Dorsal."), FactOutcome::Correct);
  EXPECT_EQ(grade_fact(f, "A synonym of \"abaxial\" is \"dorsal\" [1]."), FactOutcome::Correct);
  EXPECT_EQ(grade_fact(f, "the abaxial side"), FactOutcome::Correct);
  EXPECT_EQ(grade_fact(f, "reasoning about dorsal\n</think>\n\nventral"), FactOutcome::Incorrect);  // after </think> only
  EXPECT_EQ(grade_fact(f, "<think>dorsal, probably"), FactOutcome::NotAttempted);  // never closed: no answer
  EXPECT_EQ(grade_fact(f, "<answer>dorsal</answer>"), FactOutcome::Correct);
  EXPECT_EQ(grade_fact(f, "ventral"), FactOutcome::Incorrect);
  EXPECT_EQ(grade_fact(f, "dorsally"), FactOutcome::Incorrect);  // whole words only
  EXPECT_EQ(grade_fact(f, "I don't know."), FactOutcome::NotAttempted);
  EXPECT_EQ(grade_fact(f, "I could not find \"abaxial\" in the documents, so I don't know."), FactOutcome::NotAttempted);
  EXPECT_EQ(grade_fact(f, "Not sure."), FactOutcome::NotAttempted);
  EXPECT_EQ(grade_fact(f, ""), FactOutcome::NotAttempted);
  EXPECT_EQ(grade_fact(f, "  [2] "), FactOutcome::NotAttempted);
  // A long ramble that happens to contain the word is not a short answer.
  EXPECT_EQ(grade_fact(f, "one two three four five six seven eight nine ten eleven twelve thirteen fourteen dorsal"),
            FactOutcome::Incorrect);
  EXPECT_EQ(grade_fact(f, "It is dorsal, a word that means facing away from the axis."), FactOutcome::Correct);
  EXPECT_STREQ(fact_outcome_name(FactOutcome::NotAttempted), "not_attempted");
}

TEST(RlFacts, FixtureFamiliesDeterministicAndSplitDisjoint) {
  const FactSet& a = fixture();
  std::map<std::string, int> families;
  std::set<std::string> train_keys, test_keys;
  for (const auto& f : a.all(Split::Train)) train_keys.insert(f.key), families[f.family]++;
  for (const auto& f : a.all(Split::Test)) test_keys.insert(f.key), families[f.family]++;
  for (const char* fam : {"synonym", "pos", "acronym", "plural"}) EXPECT_GT(families[fam], 2) << fam;
  EXPECT_FALSE(test_keys.empty());
  for (const auto& k : test_keys) EXPECT_FALSE(train_keys.count(k)) << k;
  EXPECT_EQ(train_keys.size() + test_keys.size(), a.all(Split::Train).size() + a.all(Split::Test).size());  // no duplicates
  // Same seed: same questions in the same order; another seed: the same split, another order.
  FactSet b(FactOptions{kFacts, {"synonym", "pos", "acronym", "plural"}, 2000}, 3), c(FactOptions{kFacts, {"synonym", "pos", "acronym", "plural"}, 2000}, 4);
  ASSERT_EQ(a.all(Split::Train).size(), b.all(Split::Train).size());
  for (size_t i = 0; i < a.all(Split::Train).size(); ++i) EXPECT_EQ(a.all(Split::Train)[i].question, b.all(Split::Train)[i].question);
  std::set<std::string> c_test;
  for (const auto& f : c.all(Split::Test)) c_test.insert(f.key);
  EXPECT_EQ(c_test, test_keys);
  bool reordered = false;
  for (size_t i = 0; i < a.all(Split::Train).size(); ++i) reordered = reordered || a.all(Split::Train)[i].key != c.all(Split::Train)[i].key;
  EXPECT_TRUE(reordered);
  // Known entries of the fixture.
  bool bst = false;
  for (const auto& f : a.all(Split::Train)) bst = bst || (f.key == "acronym:BST" && f.answer == "British Summer Time");
  for (const auto& f : a.all(Split::Test)) bst = bst || (f.key == "acronym:BST" && f.answer == "British Summer Time");
  EXPECT_TRUE(bst);
  // Every gold answer is graded correct and its passage holds it.
  for (Split s : {Split::Train, Split::Test})
    for (const auto& f : a.all(s)) {
      EXPECT_EQ(grade_fact(f, f.answer), FactOutcome::Correct) << f.question;
      EXPECT_NE(normalize_answer(f.passage).find(normalize_answer(f.answer)), std::string::npos) << f.question << " / " << f.passage;
    }
  EXPECT_THROW(FactSet(FactOptions{kFacts + "/missing", {"pos"}, 10}, 1), Error);
  EXPECT_THROW(fact_options_from_spec(json{{"name", "facts"}, {"families", "colour"}}, "--suite"), Error);
}

TEST(RlFacts, RetrievalReturnsTheEntryHoldingTheAnswer) {
  const FactSet& a = fixture();
  auto store = a.document_store();
  EXPECT_EQ(store->documents().size(), a.documents());
  int total = 0, found = 0;
  for (Split s : {Split::Train, Split::Test})
    for (const auto& f : a.all(s)) {
      ++total;
      bool hit = false;
      for (const auto& p : store->search(f.subject, 3))
        for (const auto& sp : f.supports) hit = hit || p.document == sp.first;
      found += hit;
      EXPECT_TRUE(hit) << f.question;
    }
  EXPECT_GT(total, 30);
  EXPECT_EQ(found, total);
}

TEST(RlFacts, GroundingEvalEndToEndOnATinyModel) {
  auto tok = std::make_shared<Tokenizer>(Tokenizer::load(tiny_model().string()));
  std::shared_ptr<CausalLM> model = load_model(tiny_model().string());
  Engine engine(model, tok);
  auto vocab = agent::VocabIndex::build(*tok);
  FactsEvalConfig cfg;
  cfg.problems = 5;
  cfg.max_new_tokens = 6;
  cfg.concurrency = 2;
  std::vector<FactSample> details;
  for (GroundingMode mode : {GroundingMode::Off, GroundingMode::Inject, GroundingMode::Rag, GroundingMode::Agent}) {
    const FactsOutcomes o = evaluate_facts(engine, vocab, fixture(), mode, cfg, &details);
    EXPECT_EQ(o.correct + o.incorrect + o.not_attempted, 5);
    int64_t fam = 0;
    for (const auto& [f, c] : o.by_family) fam += c[0] + c[1] + c[2];
    EXPECT_EQ(fam, 5);
    ASSERT_EQ(details.size(), 5u);
    for (const auto& d : details) {
      EXPECT_EQ(d.outcome, grade_fact(*d.fact, d.content));
      EXPECT_GE(d.steps, 1);
    }
    if (mode == GroundingMode::Inject || mode == GroundingMode::Rag) {
      EXPECT_EQ(o.searched, 5);
      for (const auto& d : details)  // inject searches the fact's key word, rag the question as the user wrote it
        EXPECT_EQ(d.query, mode == GroundingMode::Inject ? d.fact->subject : d.fact->question);
    }
    if (mode == GroundingMode::Off) {
      EXPECT_EQ(o.searched, 0);
    }
    const json j = facts_outcomes_json(o);
    for (const char* k : {"mode", "problems", "correct", "incorrect", "not_attempted", "incorrect_rate", "searched", "by_family"})
      EXPECT_TRUE(j.contains(k)) << k;
  }
  FactsOutcomes off, on;
  off.problems = on.problems = 10;
  off.incorrect = 6, on.incorrect = 2;
  EXPECT_DOUBLE_EQ(grounding_report_json(off, on)["incorrect_rate_ratio"].get<double>(), 2.0 / 6.0);
  off.incorrect = 0;
  EXPECT_TRUE(grounding_report_json(off, on)["incorrect_rate_ratio"].is_null());
  engine.shutdown(false);
}

TEST(RlFacts, EvalCliReportsBothModes) {
  const fs::path out = fs::temp_directory_path() / ("baleine_facts_eval_" + std::to_string(::getpid()) + ".json");
  const std::string cmd = std::string(BALEINE_BINARY) + " eval --model " + tiny_model().string() + " --suite facts --facts " + kFacts +
                          " --problems 4 --max-tokens 4 --retrieval --retrieval-mode inject --out " + out.string() + " > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(out);
  const json r = json::parse(in);
  ASSERT_EQ(r["suites"].size(), 1u);
  const json& s = r["suites"][0];
  EXPECT_EQ(s["suite"], "facts");
  for (const char* mode : {"off", "on"}) {
    EXPECT_EQ(s[mode]["correct"].get<int64_t>() + s[mode]["incorrect"].get<int64_t>() + s[mode]["not_attempted"].get<int64_t>(), 4);
  }
  EXPECT_EQ(s["on"]["mode"], "inject");
  EXPECT_EQ(s["on"]["searched"], 4);
  EXPECT_TRUE(s.contains("incorrect_rate_ratio"));
  EXPECT_EQ(s["quote_search"], false);
  // The same with quotes searched (agent/quote_search.h): the flag reaches the loop and the report.
  const std::string qs = std::string(BALEINE_BINARY) + " eval --model " + tiny_model().string() + " --suite facts --facts " + kFacts +
                         " --problems 4 --max-tokens 8 --retrieval --retrieval-mode rag --quote-search --out " + out.string() + " > /dev/null";
  ASSERT_EQ(std::system(qs.c_str()), 0) << qs;
  std::ifstream in2(out);
  const json r2 = json::parse(in2);
  EXPECT_EQ(r2["suites"][0]["quote_search"], true);
  EXPECT_EQ(r2["suites"][0]["on"]["searched"], 4);
  fs::remove(out);
}

TEST(RlFacts, GroundingEvalOnTheServerEndpoint) {
  // A real `baleine serve` in process: closed book through /chat/completions, retrieval through an assistant
  // holding the entries as documents and /v1/responses (the server's own agent loop and file_search).
  auto tok = std::make_shared<Tokenizer>(Tokenizer::load(tiny_model().string()));
  auto engine = std::make_shared<Engine>(std::shared_ptr<CausalLM>(load_model(tiny_model().string())), tok);
  server::ServerOptions so;
  so.port = 0;
  so.db_path = ":memory:";
  so.format = ChatFormat::DeepSeekR1;
  so.web = false;
  server::Server srv(engine, so);
  srv.bind();
  std::thread t([&] { srv.run(); });
  EndpointConfig ec;
  ec.base_url = "http://127.0.0.1:" + std::to_string(srv.port()) + "/v1";
  ec.model = "deepseek-chat";
  FactsEvalConfig cfg;
  cfg.problems = 3;
  cfg.max_new_tokens = 6;
  for (GroundingMode mode : {GroundingMode::Off, GroundingMode::Agent}) {
    std::vector<FactSample> details;
    const FactsOutcomes o = evaluate_facts_endpoint(ec, fixture(), mode, cfg, &details);
    EXPECT_EQ(o.correct + o.incorrect + o.not_attempted, 3);
    ASSERT_EQ(details.size(), 3u);
    for (const auto& d : details) EXPECT_EQ(d.outcome, grade_fact(*d.fact, d.content));
  }
  // Quote search on the endpoint: the request carries the server's extensions (a bad one would be a 400).
  cfg.quote_search = true;
  EXPECT_EQ(evaluate_facts_endpoint(ec, fixture(), GroundingMode::Agent, cfg).problems, 3);
  EXPECT_THROW(evaluate_facts_endpoint(ec, fixture(), GroundingMode::Inject, cfg), Error);
  EXPECT_THROW(evaluate_facts_endpoint(ec, fixture(), GroundingMode::Rag, cfg), Error);
  srv.drain_and_stop();
  t.join();
}
