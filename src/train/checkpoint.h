// train/checkpoint.h — run directories shared by `baleine train`, `sft`, `grpo` and `distill`: atomic files,
// checkpoints <out>/checkpoints/step-NNNNNNNN/ (a complete model directory: config.json, model.safetensors,
// tokenizer files, plus optimizer.safetensors and state.json), the `latest` pointer, the newest two kept.
// defines: read_json_file, write_file_atomic, step_name, Checkpointer, restore_checkpoint, truncate_metrics
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/model.h"
#include "train/adamw.h"

namespace baleine::train {

nlohmann::json read_json_file(const std::string& path);
// Writes text atomically: temp file, fsync, rename, fsync of the directory.
void write_file_atomic(const std::filesystem::path& path, const std::string& text);
std::string step_name(int64_t step);  // "step-00000042"

struct Checkpointer {
  std::filesystem::path root;  // <out>/checkpoints
  std::string tokenizer_dir;   // copied in so a checkpoint is a complete model directory
  // state must hold "step"; becomes state.json. config is the model's HF config.json.
  void save(CausalLM& model, AdamW& opt, const nlohmann::json& config, const nlohmann::json& state);
  std::string latest() const;  // "" when there is none
};

// Loads parameters and optimizer moments from checkpoint directory `dir` into model/opt (attaching opt) and
// returns its state.json.
nlohmann::json restore_checkpoint(const std::filesystem::path& dir, CausalLM& model, AdamW& opt);
// Keeps the metrics lines whose "step" is <= step (a resumed run rewrites the rest identically).
void truncate_metrics(const std::filesystem::path& metrics_path, int64_t step);

}  // namespace baleine::train
