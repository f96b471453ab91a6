// train/trainer.h — `baleine train`: recipe, deterministic data order, the step loop, metrics, atomic
// checkpoints with exact resume.
// defines: TrainRecipe, load_recipe, TokenData, run_training
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/adamw.h"

namespace baleine::train {

struct TrainRecipe {
  std::string source;            // the recipe file (for error messages)
  nlohmann::json model;          // HF config.json fields of the model to train
  std::string data;              // directory with index.json + shards (baleine data output)
  std::string out = "runs/train";
  int64_t seq_len = 128, batch_size = 8, steps = 100;
  LrSchedule lr;
  AdamWConfig adamw;
  double grad_clip = 1.0;
  double mtp_lambda = 0.3;
  double bias_update_speed = 0.001;  // γ of auxiliary-loss-free balancing (0 turns it off)
  double sequence_balance_alpha = 0.0;  // α of the complementary sequence-wise balance loss (0 turns it off)
  double init_std = 0.02;
  uint64_t seed = 1234;
  int64_t checkpoint_every = 50, eval_every = 50, eval_batches = 4, log_every = 1;
  double price_per_core_hour = 0.05;  // USD, for the compute report
  // Copies of the model sharing its weights that take a contiguous share of each batch in parallel threads (1:
  // the sequences one after the other, each op split over the threads). Results depend on this, not on --threads.
  int replicas = 1;
};

// Reads a JSON recipe; every error names the file and the key.
TrainRecipe load_recipe(const std::string& path);

// Token shards written by `baleine data` (index.json format "baleine-tokens-v1").
struct TokenData {
  std::vector<uint32_t> train, val;
  int64_t vocab_size = 0;
  std::string tokenizer_dir;  // where the shards' tokenizer lives (copied into checkpoints), empty if unknown
  static TokenData load(const std::string& dir);
  // Sequence j of step s: a window of `len` tokens at an offset that depends only on (seed, split, s, j),
  // so a resumed run reads exactly the same data.
  std::vector<int32_t> window(bool validation, uint64_t seed, int64_t step, int64_t j, int64_t len) const;
};

struct TrainOptions {
  bool resume = false;
  int64_t debug_step_delay_ms = 0;  // slows steps so tests can kill a run mid-way
  bool zero1 = false;               // under mpirun: shard the optimizer moments across ranks (ZeRO stage 1)
};

// Runs (or resumes) training; returns the process exit code. SIGINT saves a checkpoint and exits.
int run_training(const TrainRecipe& recipe, const TrainOptions& options);

}  // namespace baleine::train
