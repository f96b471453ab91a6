#include "rl/common.h"
#include <algorithm>
#include <cmath>
#include <cstring>

#include <filesystem>

#include "core/check.h"
#include "train/checkpoint.h"

namespace baleine::rl {

namespace fs = std::filesystem;
using nlohmann::json;

Policy load_policy(const std::string& dir, const std::string& where) {
  BALEINE_CHECK(fs::exists(fs::path(dir) / "config.json"), "{}: '{}' is not a model directory (no config.json)", where, dir);
  BALEINE_CHECK(fs::exists(fs::path(dir) / "tokenizer.json"), "{}: '{}' has no tokenizer.json", where, dir);
  Policy p;
  p.dir = dir;
  p.config = train::read_json_file((fs::path(dir) / "config.json").string());
  p.model = load_model(dir);
  p.ds = dynamic_cast<DeepSeekModel*>(p.model.get());
  BALEINE_CHECK(p.ds != nullptr, "{}: '{}' is a {} model; training is implemented for deepseek_v3/deepseek_v2", where,
                dir, p.model->config().model_type);
  train::materialize_params(*p.model);
  p.tokenizer = Tokenizer::load(dir);
  BALEINE_CHECK(p.tokenizer.vocab_size() <= p.model->config().vocab_size,
                "{}: the tokenizer has {} ids, more than the model's vocab_size {}", where, p.tokenizer.vocab_size(),
                p.model->config().vocab_size);
  return p;
}

std::vector<ChatMessage> parse_messages(const json& j, const std::string& where) {
  BALEINE_CHECK(j.is_object() && j.contains("messages") && j["messages"].is_array(),
                "{}: expected an object with a 'messages' array", where);
  std::vector<ChatMessage> out;
  for (const json& m : j["messages"]) {
    BALEINE_CHECK(m.is_object() && m.contains("role") && m["role"].is_string(), "{}: every message needs a 'role'", where);
    ChatMessage c;
    c.role = m["role"].get<std::string>();
    BALEINE_CHECK(c.role == "system" || c.role == "user" || c.role == "assistant" || c.role == "tool",
                  "{}: unknown role '{}'", where, c.role);
    BALEINE_CHECK(m.contains("content") && m["content"].is_string(), "{}: a '{}' message needs a string 'content'", where, c.role);
    c.content = m["content"].get<std::string>();
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<TokenizedSample> tokenize_conversation(const Tokenizer& tok, ChatFormat format,
                                                   const std::vector<ChatMessage>& messages) {
  std::vector<TokenizedSample> out;
  TokenizedSample cur;
  std::string text;  // what `cur` holds, as text
  auto append = [&](const std::string& piece, bool trained) {
    auto ids = tok.encode(piece);
    cur.tokens.insert(cur.tokens.end(), ids.begin(), ids.end());
    cur.trained.insert(cur.trained.end(), ids.size(), trained ? 1 : 0);
    text += piece;
  };
  ChatTemplateOptions gen, nogen;
  nogen.add_generation_prompt = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role != "assistant") continue;
    std::vector<ChatMessage> before(messages.begin(), messages.begin() + int64_t(i)),
        upto(messages.begin(), messages.begin() + int64_t(i) + 1);
    const std::string prompt = apply_chat_template(format, before, gen);
    // The assistant's text: what rendering the turn adds after the generation prompt. DeepSeek-R1 renders a
    // turn without its reasoning (history form), so its text comes from the V3 form, whose generation prompt
    // lacks only the "<think>\n" that R1's has.
    std::string reply;
    if (format == ChatFormat::DeepSeekR1) {
      const std::string p3 = apply_chat_template(ChatFormat::DeepSeekV3, before, gen);
      const std::string f3 = apply_chat_template(ChatFormat::DeepSeekV3, upto, nogen);
      BALEINE_CHECK(f3.compare(0, p3.size(), p3) == 0, "chat template: turn {} does not extend its prompt", i);
      reply = f3.substr(p3.size());
      for (const char* open : {"<think>\n", "<think>"})
        if (reply.rfind(open, 0) == 0) {
          reply = reply.substr(std::strlen(open));
          break;
        }
    } else {
      const std::string full = apply_chat_template(format, upto, nogen);
      BALEINE_CHECK(full.compare(0, prompt.size(), prompt) == 0, "chat template: turn {} does not extend its prompt", i);
      reply = full.substr(prompt.size());
    }
    if (text.empty() || prompt.compare(0, text.size(), text) != 0) {  // history rewritten: a new sample
      if (!cur.tokens.empty()) out.push_back(std::move(cur));
      cur = {};
      text.clear();
      append(prompt, false);
    } else {
      append(prompt.substr(text.size()), false);
    }
    append(reply, true);
  }
  if (!cur.tokens.empty()) out.push_back(std::move(cur));
  return out;
}

Generation generate(CausalLM& model, const std::vector<int32_t>& prompt, int64_t max_new, const SamplingParams& sp,
                    int32_t eos_id) {
  Generation g;
  const int64_t ctx = model.config().max_position_embeddings;
  BALEINE_CHECK(!prompt.empty() && int64_t(prompt.size()) < ctx, "the prompt has {} tokens; the context is {}",
                prompt.size(), ctx);
  const int64_t budget = std::min<int64_t>(max_new, ctx - int64_t(prompt.size()));
  auto seq = model.new_sequence(int64_t(prompt.size()) + budget);
  Sampler sampler(sp);
  Tensor logits = model.forward(*seq, prompt);
  const int64_t V = logits.dim(1);
  std::vector<float> row(logits.f32() + (logits.dim(0) - 1) * V, logits.f32() + logits.dim(0) * V);
  while (int64_t(g.tokens.size()) < budget) {
    const int32_t next = sampler.sample(row);
    g.tokens.push_back(next);
    if (next == eos_id) {
      g.finished = true;
      break;
    }
    if (int64_t(g.tokens.size()) == budget) break;
    Tensor step = model.forward(*seq, std::span<const int32_t>(&next, 1));
    row.assign(step.f32(), step.f32() + V);
  }
  return g;
}

std::string json_line(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

RecipeReader::RecipeReader(nlohmann::json j, std::string source, std::vector<std::string> known)
    : j_(std::move(j)), source_(std::move(source)) {
  BALEINE_CHECK(j_.is_object(), "{}: a recipe is a JSON object", source_);
  for (auto& [k, v] : j_.items())
    BALEINE_CHECK(std::find(known.begin(), known.end(), k) != known.end(), "{}: unknown key '{}'", source_, k);
}

double RecipeReader::number(const std::string& key, double def, double lo, double hi) const {
  if (!j_.contains(key)) return def;
  BALEINE_CHECK(j_[key].is_number(), "{}: key '{}' must be a number", source_, key);
  const double v = j_[key].get<double>();
  BALEINE_CHECK(std::isfinite(v) && v >= lo && v <= hi, "{}: key '{}' = {} is outside [{}, {}]", source_, key, v, lo, hi);
  return v;
}

int64_t RecipeReader::integer(const std::string& key, int64_t def, int64_t lo, int64_t hi) const {
  if (!j_.contains(key)) return def;
  BALEINE_CHECK(j_[key].is_number_integer(), "{}: key '{}' must be an integer", source_, key);
  const int64_t v = j_[key].get<int64_t>();
  BALEINE_CHECK(v >= lo && v <= hi, "{}: key '{}' = {} is outside [{}, {}]", source_, key, v, lo, hi);
  return v;
}

bool RecipeReader::boolean(const std::string& key, bool def) const {
  if (!j_.contains(key)) return def;
  BALEINE_CHECK(j_[key].is_boolean(), "{}: key '{}' must be true or false", source_, key);
  return j_[key].get<bool>();
}

std::string RecipeReader::string(const std::string& key, const std::string& def, bool required) const {
  if (!j_.contains(key)) {
    BALEINE_CHECK(!required, "{}: key '{}' is required", source_, key);
    return def;
  }
  BALEINE_CHECK(j_[key].is_string(), "{}: key '{}' must be a string", source_, key);
  return j_[key].get<std::string>();
}

std::string RecipeReader::path(const std::string& key, bool required) const {
  std::string p = string(key, "", required);
  if (p.empty() || fs::path(p).is_absolute()) return p;
  return (fs::path(source_).parent_path() / p).lexically_normal().string();
}

train::LrSchedule RecipeReader::lr(int64_t total_steps, double default_lr) const {
  train::LrSchedule s;
  s.shape = train::LrShape::Constant;
  s.max_lr = s.min_lr = default_lr;
  s.total_steps = total_steps;
  if (!j_.contains("lr")) return s;
  RecipeReader l(j_["lr"], source_ + " key 'lr'", {"schedule", "max", "min", "warmup_steps", "decay_fraction"});
  const std::string shape = l.string("schedule", "constant");
  if (shape == "cosine") s.shape = train::LrShape::Cosine;
  else if (shape == "wsd") s.shape = train::LrShape::WarmupStableDecay;
  else if (shape == "constant") s.shape = train::LrShape::Constant;
  else BALEINE_FAIL("{}: key 'lr.schedule' is '{}' (cosine, wsd or constant)", source_, shape);
  s.max_lr = l.number("max", default_lr, 0, 10);
  s.min_lr = l.number("min", s.max_lr / 10, 0, 10);
  s.warmup_steps = l.integer("warmup_steps", 0, 0, int64_t(1e12));
  s.decay_fraction = l.number("decay_fraction", 0.2, 0, 1);
  return s;
}

train::AdamWConfig RecipeReader::adamw() const {
  train::AdamWConfig c;
  if (!j_.contains("adamw")) return c;
  RecipeReader a(j_["adamw"], source_ + " key 'adamw'", {"beta1", "beta2", "eps", "weight_decay"});
  c.beta1 = a.number("beta1", c.beta1, 0, 0.999999);
  c.beta2 = a.number("beta2", c.beta2, 0, 0.999999);
  c.eps = a.number("eps", c.eps, 0, 1);
  c.weight_decay = a.number("weight_decay", c.weight_decay, 0, 10);
  return c;
}

}  // namespace baleine::rl
