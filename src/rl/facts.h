// rl/facts.h — short factual questions built from the Debian dictionaries of the pretraining corpus (WordNet,
// FOLDOC, GCIDE), with gold answers and aliases, a disjoint train / held-out split, the dictionary entries as a
// retrieval document store, and three-way grading (correct / incorrect / not attempted).
// defines: Fact, FactOptions, FactSet, FactOutcome, fact_outcome_name, normalize_answer, is_abstention,
//          final_answer_text, grade_fact
//
// Families (each answer short and checkable):
//   synonym  WordNet "w1, w2 (noun): gloss" → "What is a synonym of the noun "w1"?"  gold: w2, aliases: the synset
//   pos      WordNet → "Which part of speech is the word "w"?"  (words with one part of speech only)
//   acronym  FOLDOC "ACM" + "<body> Association for Computing Machinery." → "What does the acronym ACM stand for?"
//            (kept only when the initials of the expansion's words spell the acronym)
//   plural   GCIDE "Abacus  n.; pl. Abacuses" → "What is the plural of "abacus"?"
// Input: the corpus jsonl files ({"text": ...}, scripts/corpus/extract.py): wordnet.jsonl, foldoc.jsonl,
// gcide.jsonl in a directory (missing files give no facts of their family).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "rl/tasks.h"

namespace baleine::agent {
class DocumentStore;
}

namespace baleine::rl {

struct Fact {
  std::string family;    // synonym | pos | acronym | plural
  std::string key;       // identity (family + subject): the split is a hash of it
  std::string subject;   // the word or acronym asked about (the retrieval query's key word)
  std::string question;
  std::string answer;    // the canonical gold answer
  std::string answer_as_written;  // the gold answer spelled as in the passage ("Nephridia" for "nephridia")
  std::vector<std::string> aliases;  // every accepted answer, the gold one included
  std::string document;  // the dictionary entry holding the answer: its document name in the store...
  std::string passage;   // ...and its text
  // Every entry that answers the question (document name, the answer it gives), `document` first: a word can
  // be in several WordNet synsets, each giving other synonyms.
  std::vector<std::pair<std::string, std::string>> supports;
};

struct FactOptions {
  std::string data;                 // directory with wordnet.jsonl, foldoc.jsonl, gcide.jsonl
  std::vector<std::string> families = {"synonym", "pos", "acronym", "plural"};
  int64_t max_per_family = 2000;    // candidates kept per family (chosen by a hash of the key, spread over A–Z)
};

// {"name": "facts", "data": DIR, "families": "synonym,pos,acronym,plural", "max_per_family": N}
FactOptions fact_options_from_spec(const nlohmann::json& spec, const std::string& where);

class FactSet {
 public:
  FactSet(FactOptions options, uint64_t seed);
  // Fact `index` of `split` (cycling; a seed-dependent order that interleaves the families). Throws when the
  // split is empty.
  const Fact& fact(Split split, int64_t index) const;
  const std::vector<Fact>& all(Split split) const { return split == Split::Train ? train_ : test_; }
  // Every kept dictionary entry (both splits' and the entries of the same words), one document each.
  std::shared_ptr<agent::DocumentStore> document_store() const;
  size_t documents() const { return docs_.size(); }
  const std::vector<std::pair<std::string, std::string>>& document_texts() const { return docs_; }

 private:
  FactOptions options_;
  uint64_t seed_;
  std::vector<Fact> train_, test_;
  std::vector<std::pair<std::string, std::string>> docs_;  // (name, text), sorted by name
  mutable std::shared_ptr<agent::DocumentStore> store_;
};

enum class FactOutcome { Correct, Incorrect, NotAttempted };
const char* fact_outcome_name(FactOutcome o);  // "correct", "incorrect", "not_attempted"

// Lower case, punctuation to spaces, articles (a, an, the) dropped, whitespace collapsed.
std::string normalize_answer(std::string_view s);
// "I don't know", "not sure", "cannot find", "no information", empty...: the answer declines.
bool is_abstention(std::string_view answer);
// The answer part of a response: after the last </think> when there is one, an <answer>…</answer> when present,
// else the text; citation markers like [1] removed; trimmed.
std::string final_answer_text(std::string_view response);
// Correct: a gold alias appears in the normalised answer as whole words (and the answer is short: at most
// 12 words beyond it); not attempted: no answer or an abstention; incorrect otherwise.
FactOutcome grade_fact(const Fact& f, std::string_view response);

}  // namespace baleine::rl
