// baleine generate [--model PATH] --prompt TEXT --max-tokens N: prints the continuation as it is generated.
// With a Janus-Pro model: the prompt is a question in Janus's chat format, about the --image files if any.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "apps/baleine/command.h"
#include "core/check.h"
#include "infer/image_understanding.h"
#include "infer/sampler.h"
#include "io/image.h"
#include "io/image_resize.h"
#include "models/janus.h"
#include "models/default_model.h"
#include "models/model.h"
#include "apps/baleine/model_files.h"
#include "tokenizer/tokenizer.h"

namespace baleine::app {
namespace {

struct GenerateArgs {
  std::string model, prompt, system;
  std::vector<std::string> images;
  bool system_set = false;
  int64_t max_tokens = 64;
  SamplingParams sampling;
  bool bos = true, stats = false, ignore_eos = false;
};

// Janus-Pro reads the pictures (SigLIP + aligner) and answers the prompt about them.
int run_generate_janus(const GenerateArgs& a) {
  auto model = load_janus(a.model);
  const JanusConfig& c = model->config();
  BALEINE_CHECK(a.images.empty() || c.has_vision, "{}: this Janus checkpoint has no vision tower; it cannot read --image",
                a.model);
  Tokenizer tok = load_tokenizer_for(a.model);
  std::vector<float> pixels;
  for (const std::string& path : a.images) {
    io::RgbImage img = io::read_image_file(path);
    std::vector<float> px = io::janus_preprocess(img, c.vision.image_size, c.image_min_size, c.image_mean, c.image_std);
    pixels.insert(pixels.end(), px.begin(), px.end());
  }
  std::vector<JanusMessage> msgs = {{"user", a.prompt, int64_t(a.images.size())}};
  JanusPrompt prompt = janus_understanding_prompt(tok, msgs, a.system_set ? a.system : janus_system_prompt(),
                                                  c.has_vision ? c.vision.tokens() : 1);
  auto t0 = std::chrono::steady_clock::now();
  Tensor rows;
  if (!a.images.empty()) rows = model->image_rows(pixels.data(), int64_t(a.images.size()));
  UnderstandOptions o;
  o.sampling = a.sampling;
  o.max_tokens = a.max_tokens;
  if (!a.ignore_eos && tok.eos_id() >= 0) o.stop_tokens = {tok.eos_id()};
  StreamDecoder out(tok, /*skip_special=*/true);
  o.on_token = [&](int32_t id) {
    std::string text = out.push(id);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  };
  UnderstandResult r = understand_images(*model, prompt, rows, o);
  std::string rest = out.flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputc('\n', stdout);
  if (a.stats) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print(stderr, "{} image(s), prompt {} tokens, generated {} tokens in {:.3f} s\n", a.images.size(),
               r.prompt_tokens, r.tokens.size(), s);
  }
  return 0;
}

int run_generate(const GenerateArgs& a) {
  if (!a.model.empty() && is_janus_model_dir(a.model)) return run_generate_janus(a);
  BALEINE_CHECK(a.images.empty(), "--image needs a Janus-Pro model (--model DIR with model_type multi_modality)");
  // Without --model: the model committed under models/default (or $BALEINE_DEFAULT_MODEL).
  const std::string path = a.model.empty() ? default_model_path() : a.model;
  Tokenizer tok = load_tokenizer_for(path);
  auto model = load_model(path);
  std::vector<int32_t> prompt = tok.encode(a.prompt, a.bos && tok.bos_id() >= 0);
  BALEINE_CHECK(!prompt.empty(), "the prompt is empty");
  const int64_t ctx = model->config().max_position_embeddings;
  BALEINE_CHECK(int64_t(prompt.size()) < ctx, "the prompt has {} tokens; the model's context is {}", prompt.size(), ctx);
  const int64_t budget = std::min<int64_t>(a.max_tokens, ctx - int64_t(prompt.size()));
  auto seq = model->new_sequence(int64_t(prompt.size()) + budget);
  Sampler sampler(a.sampling);
  StreamDecoder out(tok, /*skip_special=*/true);
  auto t0 = std::chrono::steady_clock::now();
  Tensor logits = model->forward(*seq, prompt);
  auto t1 = std::chrono::steady_clock::now();
  int64_t generated = 0;
  const float* last = logits.f32() + (logits.dim(0) - 1) * logits.dim(1);
  std::vector<float> row(last, last + logits.dim(1));
  while (generated < budget) {
    int32_t next = sampler.sample(row);
    ++generated;
    if (next == tok.eos_id() && !a.ignore_eos) break;
    std::string text = out.push(next);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    if (generated == budget) break;
    Tensor step = model->forward(*seq, std::span<const int32_t>(&next, 1));
    row.assign(step.f32(), step.f32() + step.dim(1));
  }
  std::string rest = out.flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputc('\n', stdout);
  auto t2 = std::chrono::steady_clock::now();
  if (a.stats) {
    double pp = std::chrono::duration<double>(t1 - t0).count(), tg = std::chrono::duration<double>(t2 - t1).count();
    fmt::print(stderr, "prompt {} tokens in {:.3f} s ({:.1f} tok/s); generated {} tokens in {:.3f} s ({:.1f} tok/s)\n",
               prompt.size(), pp, double(prompt.size()) / pp, generated, tg, double(generated) / tg);
  }
  return 0;
}

CommandRegistration reg{{"generate", "Continue a prompt with a model (streams the text)",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<GenerateArgs>();
                           sub.add_option("--model", a->model, "Model directory (config.json, safetensors, tokenizer.json) or .gguf file; default: the embedded models/default");
                           sub.add_option("--prompt", a->prompt, "Text to continue")->required();
                           sub.add_option("--max-tokens", a->max_tokens, "Tokens to generate at most")->check(CLI::Range(int64_t(1), int64_t(1) << 30));
                           sub.add_option("--temperature", a->sampling.temperature, "0 = greedy")->check(CLI::Range(0.0f, 100.0f));
                           sub.add_option("--top-k", a->sampling.top_k, "Keep the k most likely tokens (0 = off)")->check(CLI::NonNegativeNumber);
                           sub.add_option("--top-p", a->sampling.top_p, "Nucleus sampling mass")->check(CLI::Range(0.0f, 1.0f));
                           sub.add_option("--min-p", a->sampling.min_p, "Drop tokens below min_p x the best")->check(CLI::Range(0.0f, 1.0f));
                           sub.add_option("--seed", a->sampling.seed, "Random seed");
                           sub.add_option("--image", a->images, "A PNG or JPEG picture the prompt asks about (repeatable; Janus-Pro models)");
                           sub.add_option("--system", a->system, "System prompt for Janus-Pro (default: Janus's own)")
                               ->each([a](const std::string&) { a->system_set = true; });
                           sub.add_flag("--stats", a->stats, "Print prefill/decode speed on stderr");
                           sub.add_flag("--ignore-eos", a->ignore_eos, "Keep generating past the end-of-sequence token");
                           return [a] { return run_generate(*a); };
                         }}};

}  // namespace
}  // namespace baleine::app
