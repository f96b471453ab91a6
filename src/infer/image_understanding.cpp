// infer/image_understanding.cpp — prompts with pictures and their decoding (see image_understanding.h).
#include "infer/image_understanding.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "core/check.h"

namespace baleine {

const std::string& janus_system_prompt() {
  static const std::string s =
      "You are a helpful language and vision assistant. You are able to understand the visual content that the user "
      "provides, and assist the user with a variety of tasks using natural language.";
  return s;
}

namespace {

int32_t required_token(const Tokenizer& tok, const char* text) {
  auto id = tok.token_id(text);
  BALEINE_CHECK(id.has_value(), "the tokenizer has no {} token: it is not a Janus tokenizer", text);
  return *id;
}

}  // namespace

JanusPrompt janus_understanding_prompt(const Tokenizer& tok, std::span<const JanusMessage> messages,
                                       const std::string& system, int64_t image_tokens) {
  BALEINE_CHECK(image_tokens >= 1, "image_tokens must be positive");
  const int32_t placeholder = required_token(tok, "<image_placeholder>");
  const int32_t boi = required_token(tok, "<begin_of_image>"), eoi = required_token(tok, "<end_of_image>");
  JanusPrompt p;
  p.image_tokens = image_tokens;
  if (tok.bos_id() >= 0) p.ids.push_back(tok.bos_id());
  // The text between images is encoded in pieces: each image tag is exactly one id (processing_vlm's
  // add_image_token), never whatever the surrounding text would merge into.
  std::string pending = system.empty() ? std::string() : system + "\n\n";
  auto flush = [&] {
    if (pending.empty()) return;
    std::vector<int32_t> ids = tok.encode(pending, false, /*allow_special=*/false);
    p.ids.insert(p.ids.end(), ids.begin(), ids.end());
    pending.clear();
  };
  for (const JanusMessage& m : messages) {
    if (m.role == "user") {
      pending += "<|User|>: ";
      for (int64_t i = 0; i < m.images; ++i) {
        flush();
        p.ids.push_back(boi);
        p.image_offsets.push_back(int64_t(p.ids.size()));
        p.ids.insert(p.ids.end(), size_t(image_tokens), placeholder);
        p.ids.push_back(eoi);
        pending += "\n";
      }
      pending += m.text + "\n\n";
    } else if (m.role == "assistant") {
      BALEINE_CHECK(m.images == 0, "an assistant turn cannot carry images");
      pending += "<|Assistant|>: " + m.text;
      flush();
      if (tok.eos_id() >= 0) p.ids.push_back(tok.eos_id());  // sep2 <｜end▁of▁sentence｜>
    } else {
      throw Error(fmt::format("role '{}' is not supported here (user or assistant; the system prompt is separate)", m.role));
    }
  }
  pending += "<|Assistant|>:";
  flush();
  return p;
}

UnderstandResult understand_images(JanusModel& model, const JanusPrompt& prompt, const Tensor& rows,
                                   const UnderstandOptions& o) {
  const JanusConfig& c = model.config();
  CausalLM& lm = model.language_model();
  const int64_t d = c.language.hidden_size, T = prompt.image_tokens, P = int64_t(prompt.ids.size());
  const int64_t n_img = int64_t(prompt.image_offsets.size());
  BALEINE_CHECK(P >= 1, "the prompt is empty");
  BALEINE_CHECK(o.max_tokens >= 1, "max_tokens must be at least 1");
  if (n_img > 0)
    BALEINE_CHECK(rows.defined() && rows.ndim() == 3 && rows.dim(0) == n_img && rows.dim(1) == T && rows.dim(2) == d,
                  "image rows must be [{}, {}, {}], got {}", n_img, T, d, rows.defined() ? rows.shape_string() : "none");
  const int64_t ctx = c.language.max_position_embeddings;
  BALEINE_CHECK(P < ctx, "the prompt has {} tokens (images included); the model's context is {}", P, ctx);
  const int64_t budget = std::min(o.max_tokens, ctx - P);
  const int64_t block = 16, capacity = P + budget;
  auto pool = lm.new_kv_pool((capacity + block - 1) / block, block);
  auto seq = lm.new_sequence(pool, capacity);

  // Prefill in runs: text ids, then an image's rows in place of its placeholders, ...; logits of the last row only.
  Tensor logits;
  int64_t at = 0;
  for (int64_t i = 0; i <= n_img; ++i) {
    const int64_t end = i < n_img ? prompt.image_offsets[size_t(i)] : P;
    BALEINE_CHECK(end >= at && end + (i < n_img ? T : 0) <= P, "image offsets are out of order or out of the prompt");
    const bool last_run = i == n_img;
    if (end > at) {
      BatchItem it;
      it.seq = seq.get();
      it.tokens = std::span<const int32_t>(prompt.ids.data() + at, size_t(end - at));
      it.no_logits = !last_run;
      logits = lm.forward_batch(std::span<BatchItem>(&it, 1), MlaMode::Absorbed);
    }
    if (last_run) break;
    BatchItem img;
    img.seq = seq.get();
    img.input_embeds = std::span<const float>(rows.f32() + i * T * d, size_t(T * d));
    img.no_logits = true;
    lm.forward_batch(std::span<BatchItem>(&img, 1), MlaMode::Absorbed);
    at = end + T;
  }
  BALEINE_CHECK(logits.defined(), "the prompt must end with text after its last image");

  UnderstandResult r;
  r.prompt_tokens = P;
  Sampler sampler(o.sampling);
  std::vector<float> row(logits.f32() + (logits.dim(0) - 1) * logits.dim(1), logits.f32() + logits.numel());
  while (int64_t(r.tokens.size()) < budget) {
    const int32_t next = sampler.sample(row);
    if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), next) != o.stop_tokens.end()) {
      r.stopped = true;
      break;
    }
    r.tokens.push_back(next);
    if (o.on_token && !o.on_token(next)) break;
    if (int64_t(r.tokens.size()) == budget) break;
    BatchItem it;
    it.seq = seq.get();
    it.tokens = std::span<const int32_t>(&r.tokens.back(), 1);
    Tensor step = lm.forward_batch(std::span<BatchItem>(&it, 1), MlaMode::Absorbed);
    row.assign(step.f32(), step.f32() + step.dim(1));
  }
  return r;
}

}  // namespace baleine
