// baleine chat [--model M]: a terminal chat. Each turn renders the whole conversation with the model's chat
// template, streams the reply through the engine (the prefix cache makes earlier turns free) and splits it
// with OutputParser: reasoning (R1's <think>…</think>) is shown dimmed, the answer in normal text. Lines
// starting with '/' are commands: /reset (forget the conversation), /exit.
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "apps/baleine/command.h"
#include "apps/baleine/model_files.h"
#include "core/check.h"
#include "infer/engine.h"
#include "models/default_model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace baleine::app {
namespace {

namespace fs = std::filesystem;

ChatMessage message(std::string role, std::string content) {
  ChatMessage m;
  m.role = std::move(role);
  m.content = std::move(content);
  return m;
}

struct ChatArgs {
  std::string model, tokenizer, templ = "auto", system;
  int64_t max_tokens = 1024;
  SamplingParams sampling;
  bool no_color = false, force_color = false, stats = false, speculative = false;
};

// The chat format: --template, else the one the model names (baleine_chat_format, or DeepSeek-V3.2 / V4 by model
// type: see chat_format_of_model), else guessed from tokenizer_config.json's chat_template, else from the
// architecture.
ChatFormat pick_format(const ChatArgs& a, const std::string& tok_dir, const ModelConfig& c) {
  if (a.templ != "auto") return chat_format_from_name(a.templ);
  if (auto named = chat_format_of_model(a.model, tok_dir)) return *named;
  const fs::path cfg = fs::path(tok_dir) / "tokenizer_config.json";
  if (fs::exists(cfg)) {
    std::ifstream in(cfg);
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string()) {
      const std::string t = j["chat_template"].get<std::string>();
      if (t.find("<think>") != std::string::npos) return ChatFormat::DeepSeekR1;
      if (t.find("<|im_start|>") != std::string::npos) return ChatFormat::Qwen2;
      if (t.find("<|start_header_id|>") != std::string::npos) return ChatFormat::Llama3;
      if (t.find("<｜Assistant｜>") != std::string::npos) return ChatFormat::DeepSeekV3;
    }
  }
  switch (c.architecture) {
    case Architecture::Qwen2: return ChatFormat::Qwen2;
    case Architecture::Llama: return ChatFormat::Llama3;
    default: return ChatFormat::DeepSeekV3;
  }
}

int run_chat(const ChatArgs& args) {
  ChatArgs a = args;
  if (a.model.empty()) a.model = default_model_path();  // the model committed in models/default
  BALEINE_CHECK(fs::exists(a.model), "{}: no such model directory (pass --model DIR)", a.model);
  const std::string tok_dir = a.tokenizer.empty() ? a.model : a.tokenizer;
  BALEINE_CHECK(fs::exists(fs::path(tok_dir) / "tokenizer.json"), "{}: no tokenizer.json (pass --tokenizer DIR)", tok_dir);
  auto tok = std::make_shared<const Tokenizer>(Tokenizer::load(tok_dir));
  std::shared_ptr<CausalLM> model(load_model(a.model));
  BALEINE_CHECK(tok->vocab_size() <= model->config().vocab_size,
                "the tokenizer has {} tokens but the model only {}", tok->vocab_size(), model->config().vocab_size);
  const ChatFormat format = pick_format(a, tok_dir, model->config());
  EngineOptions eo;
  eo.max_batch = 1;
  eo.speculative_mtp = a.speculative;
  Engine engine(model, tok, eo);

  ChatTemplateOptions topt;
  topt.bos_token = tok->bos_id() >= 0 ? tok->token_bytes(tok->bos_id()) : "";
  GenerationParams gp;
  gp.sampling = a.sampling;
  gp.skip_special_tokens = false;  // <think> markers must reach the parser
  for (const char* end : {"<|im_end|>", "<|eot_id|>", "<｜end▁of▁sentence｜>", "<|end_of_text|>"})
    if (auto id = tok->token_id(end)) gp.stop_tokens.push_back(*id);

  const bool color = a.force_color || (!a.no_color && ::isatty(STDOUT_FILENO));
  const bool tty_in = ::isatty(STDIN_FILENO);
  const char* dim = color ? "\x1b[2m" : "";
  const char* reset = color ? "\x1b[0m" : "";
  std::vector<ChatMessage> messages;
  if (!a.system.empty()) messages.push_back(message("system", a.system));
  if (tty_in) fmt::print(stderr, "baleine chat ({} layers, context {}). /reset clears the conversation, /exit quits.\n",
                         model->config().num_hidden_layers, engine.context());
  for (std::string line;;) {
    if (tty_in) fmt::print(stderr, "> ");
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      messages.erase(std::remove_if(messages.begin(), messages.end(), [](const ChatMessage& m) { return m.role != "system"; }),
                     messages.end());
      continue;
    }
    if (line.empty()) continue;
    messages.push_back(message("user", line));
    const std::string text = apply_chat_template(format, messages, topt);
    GenerationRequest req;
    req.prompt = tok->encode(text, false);
    req.params = gp;
    req.params.max_tokens = std::min<int64_t>(a.max_tokens, engine.context() - int64_t(req.prompt.size()));
    if (req.params.max_tokens < 1) {
      fmt::print(stderr, "the conversation ({} tokens) fills the context of {}; /reset to start again\n",
                 req.prompt.size(), engine.context());
      messages.pop_back();
      continue;
    }
    auto handle = engine.submit(std::move(req));
    // The hybrids' generation prompt opens <think> too (thinking is on here): their output starts as reasoning.
    OutputParser parser(generation_starts_in_reasoning(format, topt.thinking));
    std::string content;
    bool in_dim = false;
    auto show = [&](const OutputParser::Delta& d) {
      if (!d.reasoning.empty()) {
        if (!in_dim) fmt::print("{}", dim), in_dim = true;
        fmt::print("{}", d.reasoning);
      }
      if (!d.content.empty()) {
        if (in_dim) fmt::print("{}\n", reset), in_dim = false;
        fmt::print("{}", d.content);
        content += d.content;
      }
      std::fflush(stdout);
    };
    GenerationUsage usage;
    while (auto e = handle->next(std::chrono::hours(1))) {
      show(parser.push(e->text));
      if (e->finished) {
        show(parser.finish());
        if (e->finish_reason == FinishReason::Error) fmt::print(stderr, "\nerror: {}\n", e->error);
        usage = e->usage;
        break;
      }
    }
    if (in_dim) fmt::print("{}", reset);
    fmt::print("\n");
    std::fflush(stdout);
    messages.push_back(message("assistant", content));
    if (a.stats)
      fmt::print(stderr, "[{} prompt tokens ({} from cache), {} generated, prefill {:.3f} s, decode {:.1f} tok/s]\n",
                 usage.prompt_tokens, usage.cached_prompt_tokens, usage.completion_tokens, usage.prefill_seconds,
                 usage.decode_seconds > 0 ? double(usage.completion_tokens - 1) / usage.decode_seconds : 0.0);
  }
  engine.shutdown(false);
  return 0;
}

CommandRegistration reg{{"chat", "Chat with a model in the terminal (chat template, streaming, reasoning dimmed)",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<ChatArgs>();
                           sub.add_option("--model", a->model, "Model directory (default models/default)");
                           sub.add_option("--tokenizer", a->tokenizer, "Tokenizer directory (default: the model's)");
                           sub.add_option("--template", a->templ, "auto, deepseek-v3, deepseek-r1, deepseek-v3.1, deepseek-v3.2, deepseek-v4, qwen2 or llama3");
                           sub.add_option("--system", a->system, "System message");
                           sub.add_option("--max-tokens", a->max_tokens, "Reply length at most")->check(CLI::Range(int64_t(1), int64_t(1) << 30));
                           sub.add_option("--temperature", a->sampling.temperature, "0 = greedy")->check(CLI::Range(0.0f, 100.0f));
                           sub.add_option("--top-k", a->sampling.top_k, "Keep the k most likely tokens (0 = off)")->check(CLI::NonNegativeNumber);
                           sub.add_option("--top-p", a->sampling.top_p, "Nucleus sampling mass")->check(CLI::Range(0.0f, 1.0f));
                           sub.add_option("--min-p", a->sampling.min_p, "Drop tokens below min_p x the best")->check(CLI::Range(0.0f, 1.0f));
                           sub.add_option("--repetition-penalty", a->sampling.repetition_penalty, "1 = off")->check(CLI::Range(0.01f, 10.0f));
                           sub.add_option("--seed", a->sampling.seed, "Random seed");
                           sub.add_flag("--speculative", a->speculative, "Speculative decoding with the model's MTP module");
                           sub.add_flag("--no-color", a->no_color, "No ANSI colours (also off when stdout is not a terminal)");
                           sub.add_flag("--color", a->force_color, "ANSI colours even when stdout is not a terminal");
                           sub.add_flag("--stats", a->stats, "Print token counts and speed after each reply (stderr)");
                           return [a] { return run_chat(*a); };
                         }}};

}  // namespace
}  // namespace baleine::app
