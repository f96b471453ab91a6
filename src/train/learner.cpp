#include "train/learner.h"

#include "core/check.h"
#include "train/data_parallel.h"

namespace baleine::train {

namespace fs = std::filesystem;
using nlohmann::json;

Learner::Learner(CausalLM& model, LearnerSetup setup)
    : model_(model), setup_(std::move(setup)), comm_(world()),
      ckpt_{setup_.out / "checkpoints", setup_.tokenizer_dir}, opt_(setup_.adamw) {
  const bool is_root = root();
  if (is_root) fs::create_directories(setup_.out);
  std::vector<fs::path> log_paths;
  for (const auto& name : setup_.logs) log_paths.push_back(setup_.out / name);
  // Rank 0 alone reads the checkpoint and the others receive its contents, so the run directory need not be on a
  // shared filesystem, and a checkpoint written by any world size resumes on any other.
  const std::string latest = setup_.resume && is_root ? ckpt_.latest() : "";
  int64_t resumed = latest.empty() ? 0 : 1;
  comm_.broadcast(&resumed, sizeof resumed, 0);
  resumed_ = resumed != 0;
  if (is_root && resumed_) {
    const fs::path dir = ckpt_.root / latest;
    json state = restore_checkpoint(dir, model_, opt_);
    start_step_ = state.at("step").get<int64_t>();
    opt_.set_steps(state.at("optimizer_steps").get<int64_t>());
    elapsed_before_ = state.value("elapsed_s", 0.0);
    for (const auto& p : log_paths) truncate_metrics(p, start_step_);
    fmt::print(stderr, "resuming from {} (step {}){}\n", dir.string(), start_step_,
               ranks() > 1 ? fmt::format(" on {} ranks", ranks()) : "");
  } else {
    if (setup_.resume && is_root) fmt::print(stderr, "no checkpoint in {}: starting from scratch\n", ckpt_.root.string());
    if (setup_.fresh_start) setup_.fresh_start();
    opt_.attach(model_);
    if (is_root)
      for (const auto& p : log_paths) std::ofstream(p, std::ios::trunc);
  }
  grads_.allocate(model_);
  if (ranks() > 1) broadcast_training_state(comm_, model_, grads_, opt_, resumed_, start_step_, elapsed_before_);
  setup_.zero1 = setup_.zero1 && ranks() > 1;
  if (setup_.zero1) keep_moment_shard(comm_, model_, opt_, setup_.adamw);
  logs_.resize(log_paths.size());
  if (is_root)
    for (size_t i = 0; i < log_paths.size(); ++i) logs_[i].open(log_paths[i], std::ios::app);
  t0_ = std::chrono::steady_clock::now();
}

Learner::~Learner() = default;

double Learner::elapsed() const {
  return elapsed_before_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

Learner::Update Learner::update(int64_t step, float divisor) {
  Update u;
  if (ranks() > 1) reduce_gradients(comm_, grads_, setup_.zero1);
  if (divisor != 1.0f)
    for (int64_t i = 0; i < grads_.size(); ++i) grads_.flat()[i] /= divisor;
  u.grad_norm = ranks() > 1 ? clip_grad_norm_by_blocks(comm_, grads_, setup_.grad_clip) : clip_grad_norm(grads_, setup_.grad_clip);
  u.lr = lr_at(setup_.lr, step);
  opt_.step(grads_, u.lr);
  if (setup_.zero1) allgather_updated_weights(comm_, grads_, weights_scratch_);
  return u;
}

void Learner::save(int64_t step, json state) {
  state["step"] = step;
  state["optimizer_steps"] = opt_.steps();
  state["elapsed_s"] = elapsed();
  if (setup_.zero1) {
    AdamW full = gather_moments(comm_, model_, opt_, setup_.adamw);
    if (root()) ckpt_.save(model_, full, setup_.model_config, state);
  } else if (root()) {
    ckpt_.save(model_, opt_, setup_.model_config, state);
  }
}

void Learner::log(size_t index, const json& line) {
  if (!root()) return;
  logs_.at(index) << line.dump() << "\n" << std::flush;
}

}  // namespace baleine::train
