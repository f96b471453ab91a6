// Janus-Pro's generation path against tests/reference/janus_ref.py (PyTorch, float64, written from DeepSeek's
// Janus code) on a tiny random model: image-token embeddings, gen_head logits and VQ-decoder pixels to 1e-4, and a
// whole CFG generation at temperature 0 token for token (greedy margins >= 0.14 in the reference), batched two
// images at once; plus the config and file errors a user can hit.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "infer/image_generation.h"
#include "io/png.h"
#include "models/janus.h"
#include "janus_test_util.h"

using namespace baleine;
using nlohmann::json;

namespace {
using janus_test::fixture;
using janus_test::kDir;
using janus_test::max_scaled_diff;

TEST(Janus, EmbeddingsHeadAndDecoderMatchPyTorch) {
  auto m = load_janus(kDir);
  const json f = fixture();
  const int64_t d = m->config().language.hidden_size, V = m->config().image_token_size;
  const auto ids = f["embed_ids"].get<std::vector<int32_t>>();
  std::vector<float> emb(ids.size() * size_t(d));
  m->image_embeddings(emb.data(), ids.data(), int64_t(ids.size()));
  EXPECT_LT(max_scaled_diff(emb.data(), f["embeds"].get<std::vector<float>>()), 1e-4);

  const auto h = f["head_hidden"].get<std::vector<float>>();
  std::vector<float> logits(h.size() / size_t(d) * size_t(V));
  m->image_logits(logits.data(), h.data(), int64_t(h.size()) / d);
  EXPECT_LT(max_scaled_diff(logits.data(), f["head_logits"].get<std::vector<float>>()), 1e-4);

  const auto codes = f["rand_codes"].get<std::vector<int32_t>>();
  Tensor px = m->decode_images(codes.data(), 2);
  ASSERT_EQ(px.dim(0), 2);
  ASSERT_EQ(px.dim(1), 16);
  ASSERT_EQ(px.dim(3), 3);
  EXPECT_LT(max_scaled_diff(px.f32(), f["rand_pixels"].get<std::vector<float>>()), 1e-4);
}

TEST(Janus, GreedyCfgGenerationTokenForToken) {
  auto m = load_janus(kDir);
  const json f = fixture();
  const auto prompt = f["prompt"].get<std::vector<int32_t>>();
  const auto want = f["codes"].get<std::vector<int32_t>>();
  ImageGenOptions o;
  o.parallel = 2;  // both images must equal the one-image reference: rows do not leak into each other
  o.temperature = 0;
  o.cfg_weight = f["cfg_weight"].get<double>();
  int64_t steps = 0;
  o.on_token = [&](int64_t done, int64_t total) { steps = done; EXPECT_EQ(total, 16); };
  GeneratedImages g = generate_images(*m, prompt, f["pad_id"].get<int32_t>(), o);
  EXPECT_EQ(steps, 16);
  ASSERT_EQ(g.codes.size(), 2 * want.size());
  EXPECT_EQ(std::vector<int32_t>(g.codes.begin(), g.codes.begin() + 16), want);
  EXPECT_EQ(std::vector<int32_t>(g.codes.begin() + 16, g.codes.end()), want);
  EXPECT_LT(max_scaled_diff(g.pixels.f32(), f["pixels"].get<std::vector<float>>()), 1e-4);

  o.cfg_weight = 1.0;  // no guidance: the conditional row alone (the reference draws another picture)
  o.parallel = 1;
  GeneratedImages g1 = generate_images(*m, prompt, f["pad_id"].get<int32_t>(), o);
  EXPECT_EQ(g1.codes, f["codes_cfg1"].get<std::vector<int32_t>>());

  auto rgb = to_rgb8(g.pixels, 1);
  ASSERT_EQ(rgb.size(), size_t(16 * 16 * 3));
  const float* p = g.pixels.f32() + 16 * 16 * 3;
  for (size_t i = 0; i < rgb.size(); ++i)
    ASSERT_EQ(rgb[i], uint8_t(std::clamp((p[i] + 1.0f) / 2.0f * 255.0f, 0.0f, 255.0f)));
}

TEST(Janus, SamplingIsSeededPerImage) {
  auto m = load_janus(kDir);
  const auto prompt = fixture()["prompt"].get<std::vector<int32_t>>();
  ImageGenOptions o;
  o.temperature = 4.0;  // this fixture's gen_head is confident: at T = 1 the three pictures can coincide
  o.seed = 42;
  o.parallel = 3;
  GeneratedImages a = generate_images(*m, prompt, 1, o);
  o.parallel = 1;
  GeneratedImages b = generate_images(*m, prompt, 1, o);
  // Image 0 is the same picture whether drawn alone or with others; images 0..2 differ from each other.
  EXPECT_EQ(std::vector<int32_t>(a.codes.begin(), a.codes.begin() + 16), b.codes);
  EXPECT_NE(std::vector<int32_t>(a.codes.begin(), a.codes.begin() + 16),
            std::vector<int32_t>(a.codes.begin() + 16, a.codes.begin() + 32));
}

TEST(Janus, BadInputsGiveClearErrors) {
  auto m = load_janus(kDir);
  const std::vector<int32_t> prompt{3, 4, 5};
  ImageGenOptions o;
  EXPECT_THROW(generate_images(*m, std::vector<int32_t>{}, 1, o), Error);
  EXPECT_THROW(generate_images(*m, prompt, int32_t(m->config().language.vocab_size), o), Error);  // pad outside the vocabulary
  o.parallel = 0;
  EXPECT_THROW(generate_images(*m, prompt, 1, o), Error);
  o.parallel = 1;
  o.temperature = -1;
  EXPECT_THROW(generate_images(*m, prompt, 1, o), Error);
  std::vector<int32_t> too_long(250, 3);  // 250 + 16 image tokens > 256 positions
  o.temperature = 1;
  try {
    generate_images(*m, too_long, 1, o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds the context"), std::string::npos) << e.what();
  }
  const std::vector<int32_t> bad_code{40};
  EXPECT_THROW(m->decode_images(bad_code.data(), 1), Error);
}

json config() {
  std::ifstream in(kDir + "/config.json");
  return json::parse(in);
}

std::string config_error(const json& j) {
  try {
    parse_janus_config(j, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Janus, ConfigErrorsNameTheField) {
  json j = config();
  j["gen_vision_config"]["cls"] = "VQ-32";
  EXPECT_NE(config_error(j).find("gen_vision_config.cls"), std::string::npos) << config_error(j);
  j = config();
  j["gen_vision_config"]["params"]["image_size"] = 18;  // not a multiple of the VQ's 4× downsampling
  EXPECT_NE(config_error(j).find("image_size"), std::string::npos) << config_error(j);
  j = config();
  j["gen_head_config"]["params"]["n_embed"] = 31;
  EXPECT_NE(config_error(j).find("gen_head_config"), std::string::npos) << config_error(j);
  j = config();
  j["gen_aligner_config"]["params"]["projector_type"] = "linear";
  EXPECT_NE(config_error(j).find("projector_type"), std::string::npos) << config_error(j);
  j = config();
  j.erase("language_config");
  EXPECT_NE(config_error(j).find("language_config"), std::string::npos) << config_error(j);
  // The text loader points Janus users at `imagine` instead of failing on an unknown model_type.
  try {
    load_model_config(kDir);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("baleine imagine"), std::string::npos) << e.what();
  }
}

TEST(Janus, MissingTensorNamesFileAndTensor) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("janus_missing_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(kDir + "/config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  json j = config();
  j["gen_vision_config"]["params"]["num_res_blocks"] = 2;  // the checkpoint has 1: res.2 is missing
  std::ofstream(dir / "config.json") << j.dump();
  fs::copy_file(kDir + "/model.safetensors", dir / "model.safetensors", fs::copy_options::overwrite_existing);
  try {
    load_janus(dir.string());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("gen_vision_model.decoder.conv_blocks.0.res.2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}

TEST(Janus, RealConfigsCountParameters) {
  // Janus-Pro-7B's config.json as DeepSeek ships it (only a few language keys: LlamaConfig defaults fill the rest).
  JanusConfig c7 = load_janus_config(std::string(BALEINE_TEST_DATA) + "/configs/janus-pro-7b");
  EXPECT_EQ(c7.language.hidden_size, 4096);
  EXPECT_EQ(c7.language.num_hidden_layers, 30);
  EXPECT_EQ(c7.language.intermediate_size, 11008);
  EXPECT_EQ(c7.image_tokens(), 576);
  JanusStats s7 = janus_stats(c7);
  EXPECT_NEAR(s7.language / 1e9, 6.91, 0.01);  // 30 × 202.4M + 2 × 102400 × 4096
  JanusConfig c1 = load_janus_config(std::string(BALEINE_TEST_DATA) + "/configs/janus-pro-1b");
  JanusStats s1 = janus_stats(c1);
  EXPECT_NEAR(s1.language / 1e9, 1.65, 0.01);
  EXPECT_GT(s1.vq_decoder, 30e6);
  EXPECT_GT(s1.vision, 250e6);
}

}  // namespace

namespace {

TEST(Png, RoundTripAndBadFiles) {
  std::vector<uint8_t> rgb(5 * 3 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = uint8_t(i * 37 + 11);
  auto bytes = io::png_encode(rgb, 5, 3);
  io::RgbImage back = io::png_decode(bytes, "mem");
  EXPECT_EQ(back.width, 5);
  EXPECT_EQ(back.height, 3);
  EXPECT_EQ(back.rgb, rgb);
  EXPECT_THROW(io::png_decode(std::vector<uint8_t>{1, 2, 3}, "mem"), Error);
  auto cut = bytes;
  cut.resize(cut.size() / 2);  // truncated: libpng reports it, we throw
  EXPECT_THROW(io::png_decode(cut, "mem"), Error);
  try {
    io::png_decode(bytes, "big.png", 10);  // 15 pixels > 10 allowed
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("big.png"), std::string::npos) << e.what();
  }
  EXPECT_THROW(io::png_encode(rgb, 4, 3), Error);  // size mismatch
}

// The CLI end to end: `baleine imagine` writes the greedy CFG picture, identical to the library's.
TEST(Janus, ImagineCommandWritesThePicture) {
  const json f = fixture();
  std::string ids;
  for (int32_t t : f["prompt"].get<std::vector<int32_t>>()) ids += (ids.empty() ? "" : ",") + std::to_string(t);
  const std::string out = (std::filesystem::temp_directory_path() / ("janus_cli_" + std::to_string(::getpid()) + ".png")).string();
  const std::string cmd = std::string(BALEINE_BINARY) + " imagine --quiet --model " + kDir + " --prompt-ids " + ids +
                          " --pad-id 1 --temperature 0 --out " + out + " > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  io::RgbImage img = io::read_png(out);
  auto m = load_janus(kDir);
  ImageGenOptions o;
  o.temperature = 0;
  GeneratedImages g = generate_images(*m, f["prompt"].get<std::vector<int32_t>>(), 1, o);
  EXPECT_EQ(img.width, 16);
  EXPECT_EQ(img.rgb, to_rgb8(g.pixels, 0));
  std::filesystem::remove(out);
  // A Janus command on a model that is not Janus fails with a clear message, not a crash.
  const std::string bad = std::string(BALEINE_BINARY) + " imagine --model " + std::string(BALEINE_TEST_DATA) +
                          "/parity/llama --prompt-ids 1,2 --pad-id 0 --out " + out + " 2>&1 | grep -q 'not a Janus-Pro'";
  EXPECT_EQ(std::system(bad.c_str()), 0);
}

}  // namespace
