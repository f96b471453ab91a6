// infer/image_understanding.h — Janus-Pro reading pictures (janus/models/processing_vlm.py + modeling_vlm.py):
// a chat prompt in Janus's "deepseek" SFT format whose user turns carry images, each image written as
// <begin_of_image> + T × <image_placeholder> + <end_of_image> (T = the vision tower's tokens, 576 for Janus-Pro);
// the placeholder rows' embeddings are replaced by aligner(SigLIP(pixels)) (prepare_inputs_embeds) and the language
// model continues the text after "<|Assistant|>:".
// defines: JanusMessage, JanusPrompt, janus_system_prompt, janus_understanding_prompt, UnderstandOptions,
//          understand_images
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "infer/sampler.h"
#include "models/janus.h"
#include "tokenizer/tokenizer.h"

namespace baleine {

// One turn: role "user" or "assistant"; a user turn's images come first, one "<image_placeholder>\n" each, as in
// DeepSeek's examples ("<image_placeholder>\n{question}").
struct JanusMessage {
  std::string role, text;
  int64_t images = 0;
};

// The prompt as token runs and image slots, in order: ids with every image's T placeholder ids in place, and the
// offset of each image's first placeholder.
struct JanusPrompt {
  std::vector<int32_t> ids;
  std::vector<int64_t> image_offsets;
  int64_t image_tokens = 0;  // T per image
};

// VLChatProcessor.system_prompt, used when the conversation gives none.
const std::string& janus_system_prompt();

// Renders the conversation as Conversation.get_prompt does for sep_style DeepSeek (system + "\n\n", then
// "<|User|>: {text}\n\n", "<|Assistant|>: {text}<｜end▁of▁sentence｜>", ending with "<|Assistant|>:"), encodes
// it with BOS, message text as plain text (special-token spellings in it stay text), and expands each image.
// Throws baleine::Error when the tokenizer lacks the three image tokens or a role is unknown.
JanusPrompt janus_understanding_prompt(const Tokenizer& tok, std::span<const JanusMessage> messages,
                                       const std::string& system, int64_t image_tokens);

struct UnderstandOptions {
  SamplingParams sampling;          // temperature 0: greedy (DeepSeek's example: do_sample=False)
  int64_t max_tokens = 256;
  std::vector<int32_t> stop_tokens;  // usually the tokenizer's end of sentence
  // Called with each generated token (the stop token excluded); return false to stop early.
  std::function<bool(int32_t)> on_token;
};

struct UnderstandResult {
  std::vector<int32_t> tokens;  // without the stop token
  bool stopped = false;         // ended on a stop token
  int64_t prompt_tokens = 0;
};

// rows [n_images, T, hidden] from JanusModel::image_rows; one prefill in runs (tokens, image rows, tokens, ...),
// then decoding on one sequence.
UnderstandResult understand_images(JanusModel& model, const JanusPrompt& prompt, const Tensor& rows,
                                   const UnderstandOptions& options);

}  // namespace baleine
