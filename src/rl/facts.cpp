#include "rl/facts.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>

#include "agent/retrieval.h"
#include "core/check.h"

namespace baleine::rl {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

uint64_t fnv1a(std::string_view s, uint64_t seed = 0) {
  uint64_t h = 1469598103934665603ull ^ (seed * 0x9e3779b97f4a7c15ull);
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(uint8_t(s[a]))) ++a;
  while (b > a && std::isspace(uint8_t(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(uint8_t(c)));
  return s;
}

std::vector<std::string> split(const std::string& s, const std::string& sep) {
  std::vector<std::string> out;
  size_t at = 0;
  for (;;) {
    size_t p = s.find(sep, at);
    out.push_back(s.substr(at, p == std::string::npos ? std::string::npos : p - at));
    if (p == std::string::npos) return out;
    at = p + sep.size();
  }
}

// The documents ({"text"}) of one corpus jsonl file; none when the file is missing.
std::vector<std::string> read_docs(const fs::path& path) {
  std::vector<std::string> out;
  if (!fs::exists(path)) return out;
  std::ifstream in(path);
  BALEINE_CHECK(in.good(), "{}: cannot open", path.string());
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    BALEINE_CHECK(!j.is_discarded() && j.is_object() && j.contains("text") && j["text"].is_string(),
                  "{}:{}: expected a JSON object with a string 'text'", path.string(), n);
    out.push_back(j["text"].get<std::string>());
  }
  return out;
}

bool plain_word(const std::string& w) {  // letters only (WordNet lemmas with '_', digits, '.' are skipped)
  if (w.size() < 3 || w.size() > 24) return false;
  for (char c : w)
    if (!std::isalpha(uint8_t(c))) return false;
  return true;
}

struct Candidates {
  std::vector<Fact> facts;
  std::map<std::string, std::string> docs;  // name -> text
};

// WordNet lines "w1, w2, w3 (noun): gloss; "example"".
void wordnet_facts(const std::vector<std::string>& docs, bool want_synonym, bool want_pos, Candidates& c) {
  static const std::regex line_re(R"(^(.+?) \((noun|verb|adjective|adverb)\): (.+)$)");
  std::map<std::string, std::set<std::string>> pos_of;  // word -> parts of speech
  struct Entry {
    std::vector<std::string> words;
    std::string pos, text;
  };
  std::vector<Entry> entries;
  for (const auto& d : docs)
    for (const auto& line : split(d, "\n")) {
      std::smatch m;
      if (!std::regex_match(line, m, line_re)) continue;
      Entry e;
      for (auto& w : split(m[1].str(), ", ")) e.words.push_back(trim(w));
      e.pos = m[2].str();
      e.text = line;
      for (const auto& w : e.words) pos_of[lower(w)].insert(e.pos);
      entries.push_back(std::move(e));
    }
  // Document names: the entry's words and part of speech ("wordnet: affluence, richness (noun)"), numbered
  // when two synsets share them.
  std::vector<std::string> names(entries.size());
  std::map<std::string, int> name_count;
  std::map<std::string, std::vector<size_t>> synsets_of;  // "word|pos" -> entries
  for (size_t k = 0; k < entries.size(); ++k) {
    const Entry& e = entries[k];
    std::string base = "wordnet: " + e.text.substr(0, e.text.find(" (")) + " (" + e.pos + ")";
    const int n = ++name_count[base];
    names[k] = n == 1 ? base : base + " #" + std::to_string(n);
    for (const auto& w : e.words) synsets_of[lower(w) + "|" + e.pos].push_back(k);
  }
  std::set<std::string> seen;
  for (size_t k = 0; k < entries.size(); ++k) {
    const Entry& e = entries[k];
    const std::string& doc = names[k];
    if (want_synonym && e.words.size() >= 2 && e.words.size() <= 4 && plain_word(e.words[0])) {
      Fact f;
      f.family = "synonym";
      f.subject = e.words[0];
      f.key = "synonym:" + lower(f.subject) + ":" + e.pos;
      std::vector<size_t> order = {k};  // this entry first, then the word's other synsets
      for (size_t other : synsets_of[lower(f.subject) + "|" + e.pos])
        if (other != k) order.push_back(other);
      for (size_t o : order) {
        std::string first;
        for (const auto& w : entries[o].words)
          if (lower(w) != lower(f.subject) && plain_word(w)) {
            if (first.empty()) first = w;
            if (std::find(f.aliases.begin(), f.aliases.end(), w) == f.aliases.end()) f.aliases.push_back(w);
          }
        if (!first.empty()) f.supports.emplace_back(names[o], first);
      }
      if (!f.supports.empty() && f.supports[0].first == doc && seen.insert(f.key).second) {
        f.answer = f.supports[0].second;
        f.question = "What is a synonym of the " + e.pos + " \"" + f.subject + "\"?";
        f.document = doc;
        f.passage = e.text;
        for (size_t o : order) c.docs[names[o]] = entries[o].text;
        c.facts.push_back(std::move(f));
      }
    }
    if (want_pos && e.words.size() == 1 && plain_word(e.words[0]) && pos_of[lower(e.words[0])].size() == 1) {
      Fact f;
      f.family = "pos";
      f.subject = e.words[0];
      f.key = "pos:" + lower(f.subject);
      if (seen.insert(f.key).second) {
        f.answer = e.pos;
        f.aliases = {e.pos};
        if (e.pos == "adjective") f.aliases.push_back("adj");
        if (e.pos == "adverb") f.aliases.push_back("adv");
        f.question = "Which part of speech is the word \"" + f.subject + "\"?";
        f.document = doc;
        f.passage = e.text;
        f.supports = {{doc, e.pos}};
        c.docs[doc] = e.text;
        c.facts.push_back(std::move(f));
      }
    }
  }
}

// The expansion of `acronym` at the start of `def`: words whose initials spell it (small words skipped).
std::optional<std::string> acronym_expansion(const std::string& acronym, const std::string& def) {
  static const std::set<std::string> small = {"of", "for", "and", "the", "in", "on", "to", "a", "an", "with", "de", "&"};
  std::vector<std::string> words;
  std::string w;
  for (char ch : def) {
    if (ch == ' ' || ch == '-' || ch == '/') {
      if (!w.empty()) words.push_back(w);
      w.clear();
      if (ch != ' ') words.push_back(std::string(1, ch));
    } else {
      w += ch;
    }
  }
  if (!w.empty()) words.push_back(w);
  size_t letter = 0;
  std::string out;
  for (size_t i = 0; i < words.size() && i < 16 && letter < acronym.size(); ++i) {
    std::string word = words[i];
    if (word == "-" || word == "/") {
      if (out.empty()) return std::nullopt;
      out += word;
      continue;
    }
    while (!word.empty() && (word.back() == '.' || word.back() == ',' || word.back() == ';' || word.back() == ')')) word.pop_back();
    while (!word.empty() && word.front() == '(') word.erase(0, 1);
    if (word.empty()) return std::nullopt;
    const char want = char(std::tolower(uint8_t(acronym[letter])));
    if (std::tolower(uint8_t(word[0])) == want && (std::isupper(uint8_t(word[0])) || std::isdigit(uint8_t(word[0])))) {
      // A word may cover several letters ("ABnormal END"): its leading capitals.
      size_t k = 0;
      while (k < word.size() && letter < acronym.size() && std::toupper(uint8_t(word[k])) == uint8_t(acronym[letter]) &&
             (k == 0 || std::isupper(uint8_t(word[k]))))
        ++k, ++letter;
    } else if (!small.count(lower(word)) || out.empty()) {
      return std::nullopt;
    }
    out += (out.empty() || out.back() == '-' || out.back() == '/' ? "" : " ") + word;
  }
  if (letter != acronym.size()) return std::nullopt;
  return out;
}

// FOLDOC / Jargon paragraphs: a short term paragraph followed by "<tags> definition".
void foldoc_facts(const std::vector<std::string>& docs, Candidates& c) {
  static const std::regex acro_re(R"(^[A-Z][A-Z0-9]{1,6}$)"), def_re(R"(^<[^>]*>\s*(.*)$)");
  std::set<std::string> seen;
  for (const auto& d : docs) {
    const auto paras = split(d, "\n\n");
    for (size_t i = 0; i + 1 < paras.size(); ++i) {
      const std::string term = trim(paras[i]);
      std::smatch m;
      if (!std::regex_match(term, acro_re)) continue;
      int letters = 0;
      for (char ch : term) letters += std::isalpha(uint8_t(ch)) ? 1 : 0;
      if (letters < 2) continue;
      const std::string& def = paras[i + 1];
      if (!std::regex_match(def, m, def_re)) continue;
      auto exp = acronym_expansion(term, m[1].str());
      if (!exp || !seen.insert(term).second) continue;
      Fact f;
      f.family = "acronym";
      f.subject = term;
      f.key = "acronym:" + term;
      f.answer = *exp;
      f.aliases = {*exp};
      f.question = "What does the acronym " + term + " stand for?";
      f.document = "foldoc: " + term;
      f.passage = term + "\n\n" + def;
      f.supports = {{f.document, f.answer}};
      c.docs[f.document] = f.passage;
      c.facts.push_back(std::move(f));
    }
  }
}

// GCIDE paragraphs "Abacus  n.; pl. L. Abaci, E. Abacuses. [...]": the English plural.
void gcide_facts(const std::vector<std::string>& docs, Candidates& c) {
  static const std::regex pl_re(R"(^([A-Z][a-z]{2,20})  (?:\([^)]*\), )?n\.; pl\. (?:E\. )?([A-Z][a-z]{2,22})[.,;])");
  std::set<std::string> seen;
  for (const auto& d : docs)
    for (const auto& para : split(d, "\n\n")) {
      std::smatch m;
      if (!std::regex_search(para, m, pl_re)) continue;
      const std::string word = lower(m[1].str()), plural = lower(m[2].str());
      if (plural == word || plural.substr(0, 2) != word.substr(0, 2) || !seen.insert(word).second) continue;
      Fact f;
      f.family = "plural";
      f.subject = word;
      f.key = "plural:" + word;
      f.answer = plural;
      f.answer_as_written = m[2].str();
      f.aliases = {plural};
      f.question = "What is the plural of the noun \"" + word + "\"?";
      f.document = "gcide: " + m[1].str();
      f.passage = para.size() > 600 ? para.substr(0, para.rfind(' ', 600)) : para;
      f.supports = {{f.document, f.answer}};
      c.docs[f.document] = f.passage;
      c.facts.push_back(std::move(f));
    }
}

bool is_test_key(const std::string& key) { return fnv1a(key, 77) % 5 == 0; }  // 20% held out, seed-independent

}  // namespace

FactOptions fact_options_from_spec(const json& spec, const std::string& where) {
  FactOptions o;
  if (!spec.is_object()) return o;
  for (auto& [k, v] : spec.items())
    BALEINE_CHECK(k == "name" || k == "data" || k == "families" || k == "max_per_family",
                  "{}: unknown key '{}' for the facts questions (data, families, max_per_family)", where, k);
  if (spec.contains("data")) {
    BALEINE_CHECK(spec["data"].is_string(), "{}: 'data' must be a directory path", where);
    o.data = spec["data"].get<std::string>();
  }
  if (spec.contains("families")) {
    BALEINE_CHECK(spec["families"].is_string(), "{}: 'families' must be a comma-separated string", where);
    o.families = split(spec["families"].get<std::string>(), ",");
    for (auto& f : o.families) {
      f = trim(f);
      BALEINE_CHECK(f == "synonym" || f == "pos" || f == "acronym" || f == "plural",
                    "{}: unknown fact family '{}' (synonym, pos, acronym, plural)", where, f);
    }
  }
  if (spec.contains("max_per_family")) {
    BALEINE_CHECK(spec["max_per_family"].is_number_integer() && spec["max_per_family"].get<int64_t>() > 0,
                  "{}: 'max_per_family' must be a positive integer", where);
    o.max_per_family = spec["max_per_family"].get<int64_t>();
  }
  return o;
}

FactSet::FactSet(FactOptions options, uint64_t seed) : options_(std::move(options)), seed_(seed) {
  BALEINE_CHECK(!options_.data.empty(), "facts: no dictionary data directory given ('data': the corpus raw/debian directory)");
  BALEINE_CHECK(fs::is_directory(options_.data), "facts: '{}' is not a directory", options_.data);
  auto want = [&](const char* f) { return std::find(options_.families.begin(), options_.families.end(), f) != options_.families.end(); };
  const fs::path dir(options_.data);
  Candidates c;
  if (want("synonym") || want("pos")) wordnet_facts(read_docs(dir / "wordnet.jsonl"), want("synonym"), want("pos"), c);
  if (want("acronym")) foldoc_facts(read_docs(dir / "foldoc.jsonl"), c);
  if (want("plural")) gcide_facts(read_docs(dir / "gcide.jsonl"), c);
  // Keep at most max_per_family per family: the smallest hashes of the key (spread over the alphabet).
  std::map<std::string, std::vector<Fact>> by_family;
  for (auto& f : c.facts) by_family[f.family].push_back(std::move(f));
  std::set<std::string> kept_docs;
  std::vector<Fact> kept;
  for (auto& [family, facts] : by_family) {
    std::stable_sort(facts.begin(), facts.end(), [](const Fact& a, const Fact& b) { return fnv1a(a.key, 5) < fnv1a(b.key, 5); });
    if (int64_t(facts.size()) > options_.max_per_family) facts.resize(size_t(options_.max_per_family));
    for (auto& f : facts) {
      for (const auto& sp : f.supports) kept_docs.insert(sp.first);
      kept.push_back(std::move(f));
    }
  }
  BALEINE_CHECK(!kept.empty(), "facts: no questions could be built from '{}' (wordnet.jsonl, foldoc.jsonl, gcide.jsonl)", options_.data);
  for (const auto& name : kept_docs) docs_.emplace_back(name, c.docs.at(name));
  // A seed-dependent order that interleaves the families.
  std::stable_sort(kept.begin(), kept.end(), [&](const Fact& a, const Fact& b) { return fnv1a(a.key, seed_) < fnv1a(b.key, seed_); });
  for (auto& f : kept) (is_test_key(f.key) ? test_ : train_).push_back(std::move(f));
}

const Fact& FactSet::fact(Split split, int64_t index) const {
  const auto& v = all(split);
  BALEINE_CHECK(!v.empty(), "facts: the {} split is empty", split == Split::Train ? "train" : "test");
  BALEINE_CHECK(index >= 0, "facts: negative index");
  return v[size_t(index % int64_t(v.size()))];
}

std::shared_ptr<agent::DocumentStore> FactSet::document_store() const {
  if (!store_) {
    auto s = std::make_shared<agent::DocumentStore>(":memory:");
    for (const auto& [name, text] : docs_) s->add_document(name, text);
    store_ = s;
  }
  return store_;
}

const char* fact_outcome_name(FactOutcome o) {
  switch (o) {
    case FactOutcome::Correct: return "correct";
    case FactOutcome::Incorrect: return "incorrect";
    case FactOutcome::NotAttempted: return "not_attempted";
  }
  return "?";
}

std::string normalize_answer(std::string_view s) {
  std::string t;
  for (unsigned char ch : s) t += std::isalnum(ch) || ch >= 0x80 ? char(std::tolower(ch)) : ' ';
  std::string out;
  size_t at = 0;
  while (at < t.size()) {
    while (at < t.size() && t[at] == ' ') ++at;
    size_t end = t.find(' ', at);
    if (end == std::string::npos) end = t.size();
    const std::string w = t.substr(at, end - at);
    if (!w.empty() && w != "a" && w != "an" && w != "the") out += (out.empty() ? "" : " ") + w;
    at = end;
  }
  return out;
}

bool is_abstention(std::string_view answer) {
  const std::string n = normalize_answer(answer);
  if (n.empty()) return true;
  static const char* kPhrases[] = {"i don t know", "i do not know", "don t know", "not sure", "i m not sure", "no idea",
                                   "cannot find", "can t find", "could not find", "couldn t find", "no information",
                                   "not found", "unknown", "i cannot answer", "i can t answer", "unable to answer",
                                   "does not say", "doesn t say", "do not have", "don t have", "not in documents"};
  const std::string padded = " " + n + " ";
  for (const char* p : kPhrases)
    if (padded.find(" " + std::string(p) + " ") != std::string::npos) return true;
  return false;
}

std::string final_answer_text(std::string_view response) {
  std::string_view r = response;
  if (auto p = r.rfind("</think>"); p != std::string_view::npos) r = r.substr(p + 8);
  else if (r.find("<think>") != std::string_view::npos) return "";  // reasoning never closed: no answer
  if (auto a = r.rfind("<answer>"); a != std::string_view::npos) {
    auto b = r.find("</answer>", a);
    r = r.substr(a + 8, b == std::string_view::npos ? std::string_view::npos : b - a - 8);
  }
  std::string out;
  for (size_t i = 0; i < r.size(); ++i) {  // drop citation markers [1], [2]
    if (r[i] == '[') {
      size_t j = i + 1;
      while (j < r.size() && std::isdigit(uint8_t(r[j]))) ++j;
      if (j > i + 1 && j < r.size() && r[j] == ']') {
        i = j;
        continue;
      }
    }
    out += r[i];
  }
  for (const char* marker : {"<｜end▁of▁sentence｜>"})
    if (auto p = out.find(marker); p != std::string::npos) out.resize(p);
  return trim(out);
}

FactOutcome grade_fact(const Fact& f, std::string_view response) {
  const std::string answer = final_answer_text(response);
  const std::string n = " " + normalize_answer(answer) + " ";
  size_t words = 0;
  for (char ch : n) words += ch == ' ' ? 1 : 0;
  for (const auto& alias : f.aliases) {
    const std::string a = normalize_answer(alias);
    if (a.empty()) continue;
    size_t alias_words = 1;
    for (char ch : a) alias_words += ch == ' ' ? 1 : 0;
    if (n.find(" " + a + " ") != std::string::npos && words - 1 <= alias_words + 12) return FactOutcome::Correct;
  }
  return is_abstention(answer) ? FactOutcome::NotAttempted : FactOutcome::Incorrect;
}

}  // namespace baleine::rl
