// models/janus.h — DeepSeek's Janus-Pro (janus/models/modeling_vlm.py): one Llama language model that reads and
// draws images. Generation: the LM's final-normed hidden state goes through gen_head (Linear, GELU, Linear) to
// logits over the 16,384 VQ codes; a drawn code re-enters the LM as gen_aligner(gen_embed(code)) (an 8-d
// codebook-index embedding lifted by a GELU MLP); the 576 codes of a 384×384 picture are decoded by the VQ-16
// decoder (models/janus_vq.h). Understanding: SigLIP (models/siglip.h) + the aligner MLP give the rows that
// replace the <image_placeholder> embeddings of a prompt.
// defines: JanusConfig, parse_janus_config, load_janus_config, is_janus_config, JanusStats, janus_stats,
//          JanusModel, load_janus
#pragma once
#include <array>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "core/arena.h"
#include "models/config.h"
#include "models/janus_vq.h"
#include "models/model.h"
#include "models/siglip.h"
#include "nn/vision_layers.h"

namespace baleine {

struct JanusConfig {
  ModelConfig language;            // language_config (LlamaConfig defaults for absent keys)
  // Generation side.
  int64_t image_token_size = 16384;  // gen_vision_config.params.image_token_size (= VQ codebook size)
  int64_t gen_embed_dim = 8;         // gen_vision_config.params.n_embed (= VQ codebook dim)
  int64_t gen_aligner_in = 8, gen_aligner_width = 0, gen_aligner_depth = 2;  // gen_aligner_config.params
  int64_t gen_head_in = 0, gen_head_mid = 0, gen_head_out = 16384;           // gen_head_config.params
  VqConfig vq;                       // "VQ-16" (+ baleine's extension keys)
  int64_t image_size = 384;          // pixels per side of a generated picture (generation_inference.py: img_size)
  // Understanding side: SigLIP (vision_config) + aligner (aligner_config) feeding the LM at <image_placeholder> rows.
  bool has_vision = false;           // vision_config present
  std::string vision_model_name;     // vision_config.params.model_name, e.g. siglip_large_patch16_384
  int64_t vision_image_size = 384;
  SiglipConfig vision;
  int64_t aligner_in = 1024, aligner_width = 0, aligner_depth = 2;
  // preprocessor_config.json (VLMImageProcessor) next to config.json; Janus-Pro's values as defaults.
  int64_t image_min_size = 14;
  std::array<float, 3> image_mean{0.5f, 0.5f, 0.5f}, image_std{0.5f, 0.5f, 0.5f};

  int64_t tokens_per_side() const { return image_size / vq.downsample(); }
  int64_t image_tokens() const { return tokens_per_side() * tokens_per_side(); }
};

bool is_janus_config(const nlohmann::json& j);  // model_type "multi_modality"
JanusConfig parse_janus_config(const nlohmann::json& j, const std::string& source);
JanusConfig load_janus_config(const std::string& path);  // a config.json or a directory holding one
bool is_janus_model_dir(const std::string& path);

// Parameter counts per component (what `baleine info` prints for a Janus config).
struct JanusStats {
  double language = 0, gen_head = 0, gen_embed = 0, gen_aligner = 0, vq_decoder = 0, vq_encoder = 0;
  double vision = 0, aligner = 0;  // SigLIP encoder (its blocks, embeddings and final norm) and understanding aligner
  double total() const { return language + gen_head + gen_embed + gen_aligner + vq_decoder + vq_encoder + vision + aligner; }
};
JanusStats janus_stats(const JanusConfig& c);

class JanusModel {
 public:
  explicit JanusModel(const JanusConfig& config);
  const JanusConfig& config() const { return cfg_; }
  CausalLM& language_model() { return *lm_; }

  // Every parameter of the generation path under its checkpoint name (language_model.*, gen_embed, gen_aligner,
  // gen_head, gen_vision_model.{quantize, post_quant_conv, decoder}).
  void for_each_param(const nn::ParamVisitor& v);
  void prepare();

  // out [n, hidden] = gen_aligner(gen_embed(ids)): what an image token feeds the LM.
  void image_embeddings(float* out, const int32_t* ids, int64_t n);
  // logits [n, image_token_size] = gen_head(h) for final-normed hidden rows h [n, hidden].
  void image_logits(float* out, const float* h, int64_t n);
  // Understanding: rows [N, T, hidden] = aligner(SigLIP(pixels [N, S, S, 3])), S = config().vision.image_size,
  // pixels preprocessed (io/image_resize.h janus_preprocess). Throws when the checkpoint has no vision tower.
  Tensor image_rows(const float* pixels, int64_t N);
  // codes [N, image_tokens] → pixels [N, image_size, image_size, 3] f32 in about [-1, 1].
  Tensor decode_images(const int32_t* codes, int64_t N) const;

 private:
  JanusConfig cfg_;
  std::unique_ptr<CausalLM> lm_;
  nn::Embedding gen_embed_;
  nn::GeluMlp gen_aligner_, gen_head_;
  VqDecoder vq_;
  SiglipEncoder vision_;
  nn::GeluMlp aligner_;
  Arena arena_;
};

// Loads a Janus-Pro checkpoint directory (config.json + weights).
std::unique_ptr<JanusModel> load_janus(const std::string& dir);

}  // namespace baleine
