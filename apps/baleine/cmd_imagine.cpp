// baleine imagine --model DIR --prompt "..." --out a.png: text-to-image with a Janus-Pro model (CFG, N at once).
#include <fmt/format.h>

#include <chrono>
#include <filesystem>

#include "apps/baleine/command.h"
#include "apps/baleine/model_files.h"
#include "core/progress.h"
#include "infer/image_generation.h"
#include "io/png.h"
#include "models/janus.h"

namespace baleine::app {
namespace {

struct ImagineArgs {
  std::string model, prompt, prompt_ids, out = "image.png";
  int32_t pad_id = -1;
  ImageGenOptions gen;
  bool quiet = false;
};

// a.png with 3 images: a-0.png, a-1.png, a-2.png; one image: a.png itself.
std::string output_path(const std::string& out, int64_t i, int64_t n) {
  if (n == 1) return out;
  std::filesystem::path p(out);
  return (p.parent_path() / (p.stem().string() + "-" + std::to_string(i) + p.extension().string())).string();
}

int run_imagine(ImagineArgs& a) {
  BALEINE_CHECK(is_janus_model_dir(a.model), "{}: not a Janus-Pro model directory (config.json with model_type "
                "multi_modality)", a.model);
  BALEINE_CHECK(a.prompt.empty() != a.prompt_ids.empty(), "give exactly one of --prompt and --prompt-ids");
  std::vector<int32_t> ids;
  int32_t pad = a.pad_id;
  if (!a.prompt.empty()) {
    Tokenizer tok = load_tokenizer_for(a.model);
    ids = janus_prompt_ids(tok, a.prompt);
    if (pad < 0) {
      auto p = tok.token_id("<｜▁pad▁｜>");
      BALEINE_CHECK(p.has_value(), "{}: the tokenizer has no <｜▁pad▁｜> token for the unconditional row; pass --pad-id",
                    a.model);
      pad = *p;
    }
  } else {
    ids = parse_int_list(a.prompt_ids, "--prompt-ids");
    BALEINE_CHECK(pad >= 0, "--prompt-ids needs --pad-id (the token that blanks the unconditional row)");
  }
  auto t0 = std::chrono::steady_clock::now();
  auto model = load_janus(a.model);
  auto t1 = std::chrono::steady_clock::now();
  ProgressBar bar("drawing", model->config().image_tokens(), "tokens", !a.quiet);
  a.gen.on_token = [&](int64_t, int64_t) { bar.add(1); };
  GeneratedImages g = generate_images(*model, ids, pad, a.gen);
  bar.finish();
  auto t2 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < g.count; ++i) {
    const std::string path = output_path(a.out, i, g.count);
    io::write_png(path, to_rgb8(g.pixels, i), g.size, g.size);
    fmt::print("{}\n", path);
  }
  if (!a.quiet)
    fmt::print(stderr, "{} image(s) of {}x{} ({} tokens each) in {:.2f} s (load {:.2f} s)\n", g.count, g.size, g.size,
               model->config().image_tokens(), std::chrono::duration<double>(t2 - t1).count(),
               std::chrono::duration<double>(t1 - t0).count());
  return 0;
}

CommandRegistration reg{{"imagine", "Draw pictures from a caption with a Janus-Pro model (PNG files)",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<ImagineArgs>();
                           sub.add_option("--model", a->model, "Janus-Pro model directory (config.json, weights, tokenizer.json)")->required();
                           sub.add_option("--prompt", a->prompt, "Caption of the picture");
                           sub.add_option("--prompt-ids", a->prompt_ids, "The prompt as token ids (1,2,3), instead of --prompt");
                           sub.add_option("--pad-id", a->pad_id, "Token id of the unconditional row (default: the tokenizer's <｜▁pad▁｜>)");
                           sub.add_option("--out", a->out, "PNG path; with --parallel N, NAME-0.png ... NAME-(N-1).png");
                           sub.add_option("--parallel", a->gen.parallel, "Images drawn at once")->check(CLI::Range(int64_t(1), int64_t(64)));
                           sub.add_option("--cfg-weight", a->gen.cfg_weight, "Classifier-free guidance weight (Janus: 5; 1 = none)")->check(CLI::Range(0.0, 100.0));
                           sub.add_option("--temperature", a->gen.temperature, "Sampling temperature (Janus: 1; 0 = greedy)")->check(CLI::Range(0.0, 100.0));
                           sub.add_option("--seed", a->gen.seed, "Random seed (the same seed draws the same pictures)");
                           sub.add_flag("--quiet", a->quiet, "No progress bar or timing");
                           return [a] { return run_imagine(*a); };
                         }}};

}  // namespace
}  // namespace baleine::app
