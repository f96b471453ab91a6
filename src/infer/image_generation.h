// infer/image_generation.h — Janus-Pro text-to-image (generation_inference.py): classifier-free guidance with a
// conditional and an unconditional row per image in one batch, N images at once.
// defines: janus_image_prompt, ImageGenOptions, GeneratedImages, generate_images, to_rgb8
//
// Prompt: "<|User|>: {caption}\n\n<|Assistant|>:<begin_of_image>" (Janus's "deepseek" conversation with an empty
// system prompt, then the image start tag), encoded with BOS. The unconditional row is the same ids with every
// token but the first and the last replaced by the pad id — same length, so both rows share positions.
// Each of the image_tokens steps: final-normed last hidden state → gen_head → logits; guided logits
// l = u + w·(c − u); sample softmax(l / T) (argmax at T = 0); the code's image embedding feeds both rows.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "models/janus.h"
#include "tokenizer/tokenizer.h"

namespace baleine {

std::string janus_image_prompt(const std::string& caption);
// The prompt's ids: BOS (when the tokenizer has one), the template text with the caption as plain text (special-token
// spellings inside it are not specials), then the <begin_of_image> token (its text when the tokenizer lacks it).
std::vector<int32_t> janus_prompt_ids(const Tokenizer& tok, const std::string& caption);

struct ImageGenOptions {
  int64_t parallel = 1;      // images drawn at once (2× that many rows in the batch)
  double cfg_weight = 5.0;   // guidance weight w (1: no guidance)
  double temperature = 1.0;  // 0: greedy
  uint64_t seed = 0;         // image i samples from its own stream (seed, i): the same seed redraws the same pictures
  std::function<void(int64_t done, int64_t total)> on_token;  // after each of the image_tokens steps
};

struct GeneratedImages {
  int64_t count = 0, size = 0;    // count images of size × size pixels
  std::vector<int32_t> codes;     // [count, image_tokens]
  Tensor pixels;                  // [count, size, size, 3] f32, about [-1, 1]
};

// Throws (naming the problem) on an empty prompt, a pad id outside the vocabulary, parallel < 1, or a prompt
// that leaves no room for the image tokens in the context.
GeneratedImages generate_images(JanusModel& model, std::span<const int32_t> prompt_ids, int32_t pad_id,
                                const ImageGenOptions& options);

// Janus's conversion to 8-bit: clip((x + 1) / 2 · 255, 0, 255), truncated (numpy's float → uint8 assignment).
std::vector<uint8_t> to_rgb8(const Tensor& pixels, int64_t image);

}  // namespace baleine
