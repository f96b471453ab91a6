// infer/image_generation.cpp — the CFG loop of generate_images (see image_generation.h).
#include "infer/image_generation.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "core/check.h"

namespace baleine {

std::string janus_image_prompt(const std::string& caption) {
  return "<|User|>: " + caption + "\n\n<|Assistant|>:<begin_of_image>";
}

std::vector<int32_t> janus_prompt_ids(const Tokenizer& tok, const std::string& caption) {
  const std::string text = "<|User|>: " + caption + "\n\n<|Assistant|>:";
  std::vector<int32_t> ids = tok.encode(text, tok.bos_id() >= 0, /*allow_special=*/false);
  if (auto boi = tok.token_id("<begin_of_image>")) {
    ids.push_back(*boi);
  } else {
    const std::vector<int32_t> tag = tok.encode("<begin_of_image>", false, false);
    ids.insert(ids.end(), tag.begin(), tag.end());
  }
  return ids;
}

namespace {

// Guided logits → one code. Greedy takes the first maximum; sampling draws from softmax(l / T) in double.
int32_t pick(const float* cond, const float* uncond, int64_t V, double w, double T, std::mt19937_64& rng,
             std::vector<double>& buf) {
  buf.resize(size_t(V));
  for (int64_t j = 0; j < V; ++j) buf[size_t(j)] = double(uncond[j]) + w * (double(cond[j]) - double(uncond[j]));
  if (T <= 0) return int32_t(std::max_element(buf.begin(), buf.end()) - buf.begin());
  const double mx = *std::max_element(buf.begin(), buf.end());
  double sum = 0.0;
  for (double& v : buf) sum += (v = std::exp((v - mx) / T));
  double u = std::uniform_real_distribution<double>(0.0, sum)(rng), acc = 0.0;
  for (int64_t j = 0; j < V; ++j) {
    acc += buf[size_t(j)];
    if (u < acc) return int32_t(j);
  }
  return int32_t(V - 1);
}

}  // namespace

GeneratedImages generate_images(JanusModel& model, std::span<const int32_t> prompt_ids, int32_t pad_id,
                                const ImageGenOptions& o) {
  const JanusConfig& c = model.config();
  CausalLM& lm = model.language_model();
  const int64_t d = c.language.hidden_size, V = c.image_token_size, n_img = c.image_tokens();
  const int64_t P = int64_t(prompt_ids.size()), N = o.parallel;
  BALEINE_CHECK(P >= 1, "the image prompt is empty");
  BALEINE_CHECK(N >= 1 && N <= 64, "parallel must be in [1, 64], got {}", N);
  BALEINE_CHECK(pad_id >= 0 && pad_id < c.language.vocab_size, "pad id {} is outside the vocabulary [0, {})", pad_id,
                c.language.vocab_size);
  BALEINE_CHECK(std::isfinite(o.cfg_weight) && std::isfinite(o.temperature) && o.temperature >= 0,
                "cfg weight and temperature must be finite (temperature >= 0)");
  BALEINE_CHECK(P + n_img <= c.language.max_position_embeddings,
                "a prompt of {} tokens plus {} image tokens exceeds the context of {}", P, n_img,
                c.language.max_position_embeddings);
  const int64_t capacity = P + n_img, block = 16, rows = 2 * N;
  auto pool = lm.new_kv_pool(rows * ((capacity + block - 1) / block), block);
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (int64_t r = 0; r < rows; ++r) seqs.push_back(lm.new_sequence(pool, capacity));
  std::vector<int32_t> uncond(prompt_ids.begin(), prompt_ids.end());
  for (int64_t t = 1; t + 1 < P; ++t) uncond[size_t(t)] = pad_id;

  GeneratedImages out;
  out.count = N;
  out.size = c.image_size;
  out.codes.assign(size_t(N * n_img), 0);
  std::vector<std::mt19937_64> rngs;
  for (int64_t i = 0; i < N; ++i) {
    std::seed_seq seq{uint32_t(o.seed), uint32_t(o.seed >> 32), uint32_t(i)};
    rngs.emplace_back(seq);
  }
  std::vector<float> h(size_t(rows * d)), logits(size_t(rows * V)), emb(size_t(N * d));
  std::vector<double> buf;
  std::vector<BatchItem> items(static_cast<size_t>(rows));
  for (int64_t step = 0; step < n_img; ++step) {
    for (int64_t r = 0; r < rows; ++r) {
      BatchItem& it = items[size_t(r)];
      it = BatchItem{};
      it.seq = seqs[size_t(r)].get();
      it.no_logits = true;
      if (step == 0) it.tokens = r % 2 == 0 ? prompt_ids : std::span<const int32_t>(uncond);
      else it.input_embeds = std::span<const float>(emb.data() + (r / 2) * d, size_t(d));
    }
    Tensor hidden;
    lm.forward_batch(items, MlaMode::Absorbed, &hidden);  // [rows·T, d] before the final norm
    const int64_t T = step == 0 ? P : 1;
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(h.data() + r * d, hidden.f32() + ((r + 1) * T - 1) * d, size_t(d) * 4);
    lm.final_norm(h.data(), rows);
    model.image_logits(logits.data(), h.data(), rows);
    std::vector<int32_t> next(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; ++i) {
      next[size_t(i)] = pick(logits.data() + (2 * i) * V, logits.data() + (2 * i + 1) * V, V, o.cfg_weight,
                             o.temperature, rngs[size_t(i)], buf);
      out.codes[size_t(i * n_img + step)] = next[size_t(i)];
    }
    if (step + 1 < n_img) model.image_embeddings(emb.data(), next.data(), N);
    if (o.on_token) o.on_token(step + 1, n_img);
  }
  out.pixels = model.decode_images(out.codes.data(), N);
  return out;
}

std::vector<uint8_t> to_rgb8(const Tensor& pixels, int64_t image) {
  BALEINE_CHECK(pixels.ndim() == 4 && pixels.dim(3) == 3 && image >= 0 && image < pixels.dim(0),
                "to_rgb8: expected [N, H, W, 3] pixels and an image index below N");
  const int64_t n = pixels.dim(1) * pixels.dim(2) * 3;
  const float* p = pixels.f32() + image * n;
  std::vector<uint8_t> rgb(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::clamp((p[i] + 1.0f) / 2.0f * 255.0f, 0.0f, 255.0f);
    rgb[size_t(i)] = uint8_t(v);
  }
  return rgb;
}

}  // namespace baleine
