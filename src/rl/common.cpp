#include "rl/common.h"
#include <algorithm>
#include <cmath>
#include <cstring>

#include <filesystem>

#include "agent/agent_loop.h"
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
  BALEINE_CHECK(p.model->trainable(), "{}: '{}' is a {} model, which has no training pass", where, dir,
                p.model->config().model_type);
  train::materialize_params(*p.model);
  p.tokenizer = Tokenizer::load(dir);
  BALEINE_CHECK(p.tokenizer.vocab_size() <= p.model->config().vocab_size,
                "{}: the tokenizer has {} ids, more than the model's vocab_size {}", where, p.tokenizer.vocab_size(),
                p.model->config().vocab_size);
  return p;
}

Conversation parse_conversation(const json& j, const std::string& where) {
  BALEINE_CHECK(j.is_object() && j.contains("messages") && j["messages"].is_array(),
                "{}: expected an object with a 'messages' array", where);
  Conversation c;
  try {
    c.messages = agent::chat_messages_from_openai(j["messages"]);
    if (j.contains("tools")) c.tools = agent::parse_tools(j["tools"]);
    c.tool_choice = agent::parse_tool_choice(j.value("tool_choice", json()), c.tools);
  } catch (const Error& e) {
    std::string msg = e.what();  // "[file:line] message": keep the message, name the data line
    if (msg.rfind('[', 0) == 0 && msg.find("] ") != std::string::npos) msg = msg.substr(msg.find("] ") + 2);
    BALEINE_FAIL("{}: {}", where, msg);
  }
  c.reasoning.assign(c.messages.size(), "");
  for (size_t i = 0; i < c.messages.size(); ++i) {
    const json& m = j["messages"][i];
    if (m.contains("reasoning_content") && !m["reasoning_content"].is_null()) {
      BALEINE_CHECK(m["reasoning_content"].is_string() && c.messages[i].role == "assistant",
                    "{}: messages[{}].reasoning_content must be a string on an assistant message", where, i);
      c.reasoning[i] = m["reasoning_content"].get<std::string>();
    }
    ChatMessage& cm = c.messages[i];
    if (cm.role == "assistant") {
      // As the agent loop stores a turn: a turn of only tool calls has no content.
      cm.has_content = !cm.content.empty() || cm.tool_calls.empty();
      for (auto& call : cm.tool_calls) {
        BALEINE_CHECK(std::find_if(c.tools.begin(), c.tools.end(), [&](const agent::ToolFunction& t) { return t.name == call.name; }) !=
                          c.tools.end(),
                      "{}: messages[{}] calls '{}', which is not among the conversation's 'tools'", where, i, call.name);
        const json args = json::parse(call.arguments, nullptr, false);
        BALEINE_CHECK(!args.is_discarded() && args.is_object(), "{}: messages[{}] calls '{}' with arguments that are not a JSON object",
                      where, i, call.name);
      }
    }
  }
  return c;
}

std::vector<ChatMessage> parse_messages(const json& j, const std::string& where) {
  return parse_conversation(j, where).messages;
}

namespace {

const std::string kEos = "<｜end▁of▁sentence｜>", kAssistantTag = "<｜Assistant｜>";

// The tool-call block of an assistant turn as the template writes it ("<｜tool▁calls▁begin｜>…<｜tool▁calls▁end｜>").
std::string tool_calls_text(const std::vector<ToolCall>& calls) {
  ChatMessage m;
  m.role = "assistant";
  m.has_content = false;
  m.content.clear();
  m.tool_calls = calls;
  ChatTemplateOptions o;
  o.add_generation_prompt = false;
  o.bos_token = "";
  std::string s = apply_chat_template(ChatFormat::DeepSeekV3, {m}, o);
  BALEINE_CHECK(s.rfind(kAssistantTag, 0) == 0 && s.size() >= kAssistantTag.size() + kEos.size(), "chat template: unexpected tool-call rendering");
  return s.substr(kAssistantTag.size(), s.size() - kAssistantTag.size() - kEos.size());
}

}  // namespace

std::vector<std::vector<RenderedPiece>> render_conversation(ChatFormat format, const Conversation& conv) {
  const bool deepseek = format == ChatFormat::DeepSeekV3 || format == ChatFormat::DeepSeekR1;
  std::vector<std::vector<RenderedPiece>> out;
  std::vector<RenderedPiece> cur;
  std::string text;  // what `cur` holds
  ChatTemplateOptions nogen;
  nogen.add_generation_prompt = false;
  const auto& messages = conv.messages;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role != "assistant") continue;
    const std::vector<ChatMessage> before(messages.begin(), messages.begin() + int64_t(i));
    const std::string prompt = agent::agent_turn_prompt(format, before, conv.tools, conv.tool_choice);
    const std::string& reasoning = i < conv.reasoning.size() ? conv.reasoning[i] : std::string();
    BALEINE_CHECK(m.tool_calls.empty() || deepseek, "messages[{}]: tool calls need a DeepSeek chat format", i);
    std::string reply;
    // R1 turns always hold a reasoning block (the server parses an R1 turn as starting inside one): a turn given
    // without reasoning and without its own </think> gets an empty one.
    const bool r1_needs_think = format == ChatFormat::DeepSeekR1 && m.content.find("</think>") == std::string::npos;
    if (!reasoning.empty() || !m.tool_calls.empty() || r1_needs_think) {
      // What the model generates; the server's parser (agent::parse_assistant_output) splits it back.
      const bool think = !reasoning.empty() || format == ChatFormat::DeepSeekR1;
      reply = (think ? "<think>\n" + reasoning + "\n</think>\n\n" : "") + m.content;
      if (!m.tool_calls.empty()) reply += tool_calls_text(m.tool_calls);
      if (deepseek) {
        reply += kEos;
      } else {  // the template's end of turn: what rendering the turn adds after its content
        ChatMessage t = m;
        t.content.clear();
        const std::string p = apply_chat_template(format, before, {});
        std::vector<ChatMessage> upto = before;
        upto.push_back(t);
        const std::string full = apply_chat_template(format, upto, nogen);
        BALEINE_CHECK(full.compare(0, p.size(), p) == 0, "chat template: turn {} does not extend its prompt", i);
        reply += full.substr(p.size());
      }
    } else if (format == ChatFormat::DeepSeekR1) {
      // DeepSeek-R1 renders a turn without its reasoning (history form): its text comes from the V3 form, whose
      // generation prompt lacks only the "<think>\n" that R1's has.
      std::vector<ChatMessage> view = add_tools_to_messages(before, conv.tools, conv.tool_choice), upto = view;
      upto.push_back(m);
      const std::string p3 = apply_chat_template(ChatFormat::DeepSeekV3, view);
      const std::string f3 = apply_chat_template(ChatFormat::DeepSeekV3, upto, nogen);
      BALEINE_CHECK(f3.compare(0, p3.size(), p3) == 0, "chat template: turn {} does not extend its prompt", i);
      reply = f3.substr(p3.size());
    } else {
      std::vector<ChatMessage> upto = add_tools_to_messages(before, conv.tools, conv.tool_choice);
      upto.push_back(m);
      const std::string full = apply_chat_template(format, upto, nogen);
      BALEINE_CHECK(full.compare(0, prompt.size(), prompt) == 0, "chat template: turn {} does not extend its prompt", i);
      reply = full.substr(prompt.size());
    }
    // R1's generation prompt opened the reasoning, and the server parses every R1 turn as starting inside it.
    if (format == ChatFormat::DeepSeekR1)
      for (const char* open : {"<think>\n", "<think>"})
        if (reply.rfind(open, 0) == 0) {
          reply = reply.substr(std::strlen(open));
          break;
        }
    if (text.empty() || prompt.compare(0, text.size(), text) != 0) {  // history rewritten: a new sample
      if (!cur.empty()) out.push_back(std::move(cur));
      cur = {};
      text.clear();
      cur.push_back({prompt, false});
    } else if (prompt.size() > text.size()) {
      cur.push_back({prompt.substr(text.size()), false});
    }
    cur.push_back({reply, true});
    text = prompt + reply;
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::vector<TokenizedSample> tokenize_conversation(const Tokenizer& tok, ChatFormat format, const Conversation& conv) {
  std::vector<TokenizedSample> out;
  for (const auto& pieces : render_conversation(format, conv)) {
    TokenizedSample s;
    for (const auto& p : pieces) {
      auto ids = tok.encode(p.text);
      s.tokens.insert(s.tokens.end(), ids.begin(), ids.end());
      s.trained.insert(s.trained.end(), ids.size(), p.trained ? 1 : 0);
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<TokenizedSample> tokenize_conversation(const Tokenizer& tok, ChatFormat format,
                                                   const std::vector<ChatMessage>& messages) {
  Conversation c;
  c.messages = messages;
  c.reasoning.assign(messages.size(), "");
  c.tool_choice.mode = agent::ToolChoiceMode::None;
  return tokenize_conversation(tok, format, c);
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
