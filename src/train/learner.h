// train/learner.h — what every training command shares, written once: the run directory, the start (fresh, or
// resumed from the latest checkpoint, read by rank 0 and broadcast), the flat gradients, the optimizer (ZeRO-1
// shard under MPI), one update (reduce over ranks → clip → AdamW → all-gather), checkpoints and the JSONL logs.
// `train`, `sft`, `grpo` and logit `distill` are objectives that fill the gradients and call update().
// defines: LearnerSetup, Learner
#pragma once
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/comm.h"
#include "models/model.h"
#include "nn/grads.h"
#include "train/adamw.h"
#include "train/checkpoint.h"

namespace baleine::train {

struct LearnerSetup {
  std::filesystem::path out;              // run directory: checkpoints/ and the logs
  std::string tokenizer_dir;              // copied into every checkpoint (may be empty)
  nlohmann::json model_config;            // the checkpoints' config.json
  std::vector<std::string> logs = {"metrics.jsonl"};  // JSONL files under out, truncated to the resumed step
  AdamWConfig adamw;
  LrSchedule lr;
  double grad_clip = 1.0;
  bool resume = false;
  bool zero1 = false;                     // under MPI: shard the AdamW moments over ranks
  // Called on every rank when the run starts from scratch (or, on ranks other than 0, before rank 0's
  // checkpoint arrives): e.g. random initialisation. Null keeps the loaded weights.
  std::function<void()> fresh_start;
};

class Learner {
 public:
  Learner(CausalLM& model, LearnerSetup setup);
  ~Learner();

  Communicator& comm() { return comm_; }
  bool root() const { return comm_.rank() == 0; }
  int ranks() const { return comm_.size(); }
  // The step to continue from (0 for a fresh run) and the wall time the earlier part of the run took.
  int64_t start_step() const { return start_step_; }
  bool resumed() const { return resumed_; }
  double elapsed() const;
  nn::Gradients& grads() { return grads_; }
  AdamW& optimizer() { return opt_; }
  const Checkpointer& checkpointer() const { return ckpt_; }

  // Sums the gradients this rank accumulated over ranks, divides them by `divisor`, clips the global norm, and
  // takes one AdamW step at lr_at(setup.lr, step); every rank ends with the same weights. Returns the norm
  // before clipping and the learning rate.
  struct Update {
    double grad_norm = 0, lr = 0;
  };
  Update update(int64_t step, float divisor = 1.0f);
  // Writes checkpoint `step` (state gets step, optimizer_steps, elapsed_s); under ZeRO-1 every rank must call it.
  void save(int64_t step, nlohmann::json state);
  // Appends one line to log `index` (rank 0; the others ignore it).
  void log(size_t index, const nlohmann::json& line);
  std::ofstream& log_stream(size_t index) { return logs_.at(index); }

 private:
  CausalLM& model_;
  LearnerSetup setup_;
  Communicator& comm_;
  Checkpointer ckpt_;
  AdamW opt_;
  nn::Gradients grads_;
  std::vector<std::ofstream> logs_;
  std::vector<float> weights_scratch_;
  int64_t start_step_ = 0;
  bool resumed_ = false;
  double elapsed_before_ = 0;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace baleine::train
