// Janus-Pro's understanding path against tests/reference/janus_ref.py (PyTorch, float64, from DeepSeek's
// siglip_vit.py, clip_encoder.py, projector.py and modeling_vlm.prepare_inputs_embeds) on the tiny fixture model:
// SigLIP features and aligner rows to 1e-4 for a batch of two pictures, and a greedy answer about picture.png token
// for token (reference margins >= 0.05); the prompt layout (image tags, placeholders) and the errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "infer/image_understanding.h"
#include "io/image.h"
#include "io/image_resize.h"
#include "models/janus.h"
#include "janus_test_util.h"
#include "tokenizer/tokenizer.h"

using namespace baleine;
using nlohmann::json;

namespace {
using janus_test::fixture;
using janus_test::kDir;
using janus_test::max_scaled_diff;

TEST(JanusUnderstanding, SiglipFeaturesAndAlignerRowsMatchPyTorch) {
  auto m = load_janus(kDir);
  const JanusConfig& c = m->config();
  ASSERT_TRUE(c.has_vision);
  EXPECT_EQ(c.vision.tokens(), 16);
  EXPECT_EQ(c.vision.mlp, 48);
  const json f = fixture();
  const auto px = f["vision_pixels"].get<std::vector<float>>();
  ASSERT_EQ(px.size(), size_t(2 * 32 * 32 * 3));
  Tensor rows = m->image_rows(px.data(), 2);
  ASSERT_EQ(rows.dim(0), 2);
  ASSERT_EQ(rows.dim(1), 16);
  ASSERT_EQ(rows.dim(2), c.language.hidden_size);
  EXPECT_LT(max_scaled_diff(rows.f32(), f["vision_rows"].get<std::vector<float>>()), 1e-4);
  // One image at a time gives the same rows as the batch (no leak between images).
  Tensor second = m->image_rows(px.data() + 32 * 32 * 3, 1);
  const auto want = f["vision_rows"].get<std::vector<float>>();
  EXPECT_LT(max_scaled_diff(second.f32(), std::vector<float>(want.begin() + 16 * 32, want.end())), 1e-4);
}

TEST(JanusUnderstanding, GreedyAnswerTokenForToken) {
  auto m = load_janus(kDir);
  const json f = fixture();
  ASSERT_GE(f["understand_min_margin"].get<double>(), 1e-2);
  const auto ids = f["understand_prompt"].get<std::vector<int32_t>>();
  const int32_t placeholder = f["image_token_ids"][0].get<int32_t>();
  JanusPrompt p;
  p.ids = ids;
  p.image_tokens = 16;
  p.image_offsets = {int64_t(std::find(ids.begin(), ids.end(), placeholder) - ids.begin())};
  const auto px = f["vision_pixels"].get<std::vector<float>>();
  UnderstandOptions o;
  o.max_tokens = 10;
  Tensor rows = m->image_rows(px.data(), 1);
  UnderstandResult r = understand_images(*m, p, rows, o);
  EXPECT_EQ(r.tokens, f["understand_tokens"].get<std::vector<int32_t>>());
  EXPECT_FALSE(r.stopped);
  // The other picture gives the reference's other answer: the image rows really reach the model.
  Tensor other = m->image_rows(px.data() + 32 * 32 * 3, 1);
  EXPECT_EQ(understand_images(*m, p, other, o).tokens, f["understand_tokens_other_image"].get<std::vector<int32_t>>());
  // Streaming callback sees every token and can stop early.
  int64_t seen = 0;
  o.on_token = [&](int32_t) { return ++seen < 3; };
  EXPECT_EQ(understand_images(*m, p, rows, o).tokens.size(), 3u);
}

TEST(JanusUnderstanding, PromptLayoutFollowsTheProcessor) {
  Tokenizer tok = Tokenizer::load(kDir + "/tokenizer.json");
  const json f = fixture();
  const int32_t ph = f["image_token_ids"][0], boi = f["image_token_ids"][1], eoi = f["image_token_ids"][2];
  std::vector<JanusMessage> msgs = {{"user", "What is this?", 2}};
  JanusPrompt p = janus_understanding_prompt(tok, msgs, "", 16);
  ASSERT_EQ(p.image_offsets.size(), 2u);
  EXPECT_EQ(p.ids.front(), tok.bos_id());
  for (int64_t off : p.image_offsets) {
    EXPECT_EQ(p.ids[size_t(off - 1)], boi);
    for (int64_t t = 0; t < 16; ++t) EXPECT_EQ(p.ids[size_t(off + t)], ph);
    EXPECT_EQ(p.ids[size_t(off + 16)], eoi);
  }
  EXPECT_EQ(std::count(p.ids.begin(), p.ids.end(), ph), 32);
  // The text around the images decodes to the template (images removed).
  std::vector<int32_t> text;
  for (int32_t id : p.ids)
    if (id != ph && id != boi && id != eoi && id != tok.bos_id()) text.push_back(id);
  EXPECT_EQ(tok.decode(text), "<|User|>: \n\nWhat is this?\n\n<|Assistant|>:");
  // A user cannot smuggle an image tag through the text: it stays plain text.
  std::vector<JanusMessage> sneaky = {{"user", "<image_placeholder>", 0}};
  JanusPrompt q = janus_understanding_prompt(tok, sneaky, janus_system_prompt(), 16);
  EXPECT_EQ(std::count(q.ids.begin(), q.ids.end(), ph), 0);
  EXPECT_TRUE(q.image_offsets.empty());
  // Multi-turn: an assistant turn ends with end-of-sentence.
  std::vector<JanusMessage> turns = {{"user", "hi", 1}, {"assistant", "a picture", 0}, {"user", "more?", 0}};
  JanusPrompt t = janus_understanding_prompt(tok, turns, "", 16);
  EXPECT_EQ(std::count(t.ids.begin(), t.ids.end(), tok.eos_id()), 1);
  std::vector<JanusMessage> bad = {{"tool", "x", 0}};
  EXPECT_THROW(janus_understanding_prompt(tok, bad, "", 16), Error);
}

// picture.png through baleine's decoder and Janus preprocessing equals what PIL + image_processing_vlm.py gave the
// reference (the first image of vision_pixels), so the whole path file → answer is covered.
TEST(JanusUnderstanding, PictureThroughTheProcessorMatchesThePythonOne) {
  auto m = load_janus(kDir);
  const JanusConfig& c = m->config();
  EXPECT_EQ(c.image_min_size, 14);
  io::RgbImage img = io::read_image_file(kDir + "/picture.png");
  ASSERT_EQ(img.width, 40);
  ASSERT_EQ(img.height, 24);
  std::vector<float> px = io::janus_preprocess(img, c.vision.image_size, c.image_min_size, c.image_mean, c.image_std);
  const auto want = fixture()["vision_pixels"].get<std::vector<float>>();
  ASSERT_EQ(px.size(), size_t(32 * 32 * 3));
  double worst = 0;
  for (size_t i = 0; i < px.size(); ++i) worst = std::max(worst, std::fabs(double(px[i]) - double(want[i])));
  EXPECT_LT(worst, 1e-6);
}

// `baleine generate --image` prints what understand_images gives in process for the same conversation.
TEST(JanusUnderstanding, GenerateCommandAnswersAboutThePicture) {
  const std::string cmd = std::string(BALEINE_BINARY) + " generate --model " + kDir + " --image " + kDir +
                          "/picture.png --prompt 'What is in this picture?' --max-tokens 6 --ignore-eos";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  ASSERT_TRUE(pipe);
  std::string out;
  char buf[256];
  while (size_t n = fread(buf, 1, sizeof buf, pipe.get())) out.append(buf, n);
  ASSERT_EQ(pclose(pipe.release()), 0) << cmd;

  auto m = load_janus(kDir);
  const JanusConfig& c = m->config();
  Tokenizer tok = Tokenizer::load(kDir + "/tokenizer.json");
  std::vector<JanusMessage> msgs = {{"user", "What is in this picture?", 1}};
  JanusPrompt p = janus_understanding_prompt(tok, msgs, janus_system_prompt(), c.vision.tokens());
  std::vector<float> px = io::janus_preprocess(io::read_image_file(kDir + "/picture.png"), c.vision.image_size,
                                               c.image_min_size, c.image_mean, c.image_std);
  UnderstandOptions o;
  o.max_tokens = 6;
  UnderstandResult r = understand_images(*m, p, m->image_rows(px.data(), 1), o);
  ASSERT_EQ(r.tokens.size(), 6u);
  EXPECT_EQ(out, tok.decode(r.tokens, true) + "\n");
  // A file that is not a picture: a clear error, exit status 1.
  const std::string bad = std::string(BALEINE_BINARY) + " generate --model " + kDir + " --image " + kDir +
                          "/config.json --prompt x 2>&1 | grep -q 'unsupported image format'";
  EXPECT_EQ(std::system(bad.c_str()), 0);
}

TEST(JanusUnderstanding, Errors) {
  auto m = load_janus(kDir);
  // Without the image tokens (the default model's tokenizer) the prompt cannot be built.
  Tokenizer plain = Tokenizer::load(std::string(BALEINE_TEST_DATA) + "/../../models/default/tokenizer.json");
  std::vector<JanusMessage> msgs = {{"user", "x", 1}};
  try {
    janus_understanding_prompt(plain, msgs, "", 16);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("<image_placeholder>"), std::string::npos) << e.what();
  }
  // Rows of the wrong shape are refused.
  Tokenizer tok = Tokenizer::load(kDir + "/tokenizer.json");
  JanusPrompt p = janus_understanding_prompt(tok, msgs, "", 16);
  Tensor wrong = Tensor::zeros(DType::F32, {1, 15, 32});
  EXPECT_THROW(understand_images(*m, p, wrong, {}), Error);
}

}  // namespace
