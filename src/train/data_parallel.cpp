#include "train/data_parallel.h"

#include <cmath>
#include <cstring>

#include "core/check.h"
#include "core/threadpool.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace baleine::train {

uint64_t fingerprint(const void* data, size_t bytes, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

void check_fingerprints_agree(Communicator& comm, uint64_t value, const std::string& what) {
  const std::vector<uint64_t> all = comm.allgather(value);
  std::vector<int> differ;
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0]) differ.push_back(int(r));
  if (differ.empty()) return;
  std::string ranks;
  for (int r : differ) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  BALEINE_FAIL("rank{} {} {} a different {} from rank 0's; every rank must run the same command on the same files",
               differ.size() > 1 ? "s" : "", ranks, differ.size() > 1 ? "have" : "has", what);
}

void check_same_recipe_on_every_rank(Communicator& comm, const std::string& recipe_path, bool resume, bool zero1) {
  const std::string text = read_json_file(recipe_path).dump();
  check_fingerprints_agree(comm, fingerprint(text.data(), text.size()), fmt::format("recipe ({})", recipe_path));
  const int64_t flags[2] = {resume ? 1 : 0, zero1 ? 1 : 0};
  check_fingerprints_agree(comm, fingerprint(flags, sizeof flags), "set of flags (--resume, --zero)");
}

void check_same_run_on_every_rank(Communicator& comm, const TrainRecipe& recipe, const TrainOptions& options,
                                  const TokenData& data) {
  check_same_recipe_on_every_rank(comm, recipe.source, options.resume, options.zero1);
  uint64_t h = fingerprint(data.train.data(), data.train.size() * 4);
  h = fingerprint(data.val.data(), data.val.size() * 4, h);
  check_fingerprints_agree(comm, h, fmt::format("training data ({})", recipe.data));
}

void check_same_layout_on_every_rank(Communicator& comm, const nn::Gradients& grads) {
  uint64_t h = fingerprint(nullptr, 0);
  for (const auto& [name, slot] : grads.names()) {
    h = fingerprint(name.data(), name.size(), h);
    const int64_t n = slot->numel();
    h = fingerprint(&n, sizeof n, h);
  }
  check_fingerprints_agree(comm, h, "parameter layout");
}

void broadcast_training_state(Communicator& comm, CausalLM& model, const nn::Gradients& layout, AdamW& opt,
                              bool resumed, int64_t& start_step, double& elapsed_s) {
  check_same_layout_on_every_rank(comm, layout);
  for (const auto& [name, slot] : layout.names()) comm.broadcast(slot->raw(), int64_t(slot->nbytes()), 0);
  if (resumed) {
    BALEINE_CHECK(opt.range_begin() == 0 && opt.range_end() == opt.layout_size(), "broadcast_training_state: needs the full optimizer");
    comm.broadcast(opt.exp_avg(), opt.layout_size() * 4, 0);
    comm.broadcast(opt.exp_avg_sq(), opt.layout_size() * 4, 0);
    int64_t steps[2] = {start_step, opt.steps()};
    comm.broadcast(steps, sizeof steps, 0);
    comm.broadcast(&elapsed_s, sizeof elapsed_s, 0);
    start_step = steps[0];
    opt.set_steps(steps[1]);
  }
  model.prepare();  // re-derive what depends on the received weights
}

void keep_moment_shard(Communicator& comm, CausalLM& model, AdamW& opt, const AdamWConfig& config) {
  auto [b, e] = comm.block_range(opt.layout_size(), comm.rank());
  AdamW shard(config);
  shard.attach(model, b, e);
  if (e > b) {
    std::memcpy(shard.exp_avg(), opt.exp_avg() + b, size_t(e - b) * 4);
    std::memcpy(shard.exp_avg_sq(), opt.exp_avg_sq() + b, size_t(e - b) * 4);
  }
  shard.set_steps(opt.steps());
  opt = std::move(shard);
}

void reduce_gradients(Communicator& comm, nn::Gradients& grads, bool zero1) {
  if (zero1) comm.reduce_scatter_sum(grads.flat(), grads.size());
  else comm.allreduce_sum(grads.flat(), grads.size());
}

double clip_grad_norm_by_blocks(Communicator& comm, nn::Gradients& grads, double max_norm) {
  auto [begin, end] = comm.block_range(grads.size(), comm.rank());
  const float* g = grads.flat() + begin;
  double ss = parallel_sum(end - begin, 1 << 14, [&](int64_t b, int64_t e) {
    double s = 0;
    for (int64_t i = b; i < e; ++i) s += double(g[i]) * g[i];
    return s;
  });
  comm.allreduce_sum(&ss, 1);
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const float scale = float(max_norm / (norm + 1e-6));  // as clip_grad_norm (torch's + 1e-6)
    float* all = grads.flat();
    for (int64_t i = 0; i < grads.size(); ++i) all[i] *= scale;
  }
  return norm;
}

void allgather_updated_weights(Communicator& comm, const nn::Gradients& layout, std::vector<float>& scratch) {
  scratch.resize(size_t(layout.size()));
  for (const auto& [name, slot] : layout.names())
    std::memcpy(scratch.data() + layout.offset_of(slot), slot->raw(), slot->nbytes());
  comm.allgather_blocks(scratch.data(), layout.size());
  for (const auto& [name, slot] : layout.names())
    std::memcpy(slot->raw(), scratch.data() + layout.offset_of(slot), slot->nbytes());
}

AdamW gather_moments(Communicator& comm, CausalLM& model, AdamW& shard, const AdamWConfig& config) {
  AdamW full(config);
  full.attach(model);
  BALEINE_CHECK(full.layout_size() == shard.layout_size(), "gather_moments: layouts differ");
  auto [b, e] = comm.block_range(full.layout_size(), comm.rank());
  BALEINE_CHECK(shard.range_begin() == b && shard.range_end() == e, "gather_moments: the shard is not this rank's block");
  if (e > b) {
    std::memcpy(full.exp_avg() + b, shard.exp_avg(), size_t(e - b) * 4);
    std::memcpy(full.exp_avg_sq() + b, shard.exp_avg_sq(), size_t(e - b) * 4);
  }
  comm.allgather_blocks(full.exp_avg(), full.layout_size());
  comm.allgather_blocks(full.exp_avg_sq(), full.layout_size());
  full.set_steps(shard.steps());
  return full;
}

}  // namespace baleine::train
