#include "train/trainer.h"

#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/learner.h"
#include "train/replicas.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/check.h"
#include "core/comm.h"
#include "core/threadpool.h"
#include "io/safetensors.h"
#include "models/deepseek.h"
#include "models/weights.h"

namespace baleine::train {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted = true; }

uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

TrainRecipe load_recipe(const std::string& path) {
  json j = read_json_file(path);
  BALEINE_CHECK(j.is_object(), "{}: a recipe is a JSON object", path);
  TrainRecipe r;
  r.source = path;
  static const std::vector<std::string> known = {
      "model", "data", "out", "seq_len", "batch_size", "steps", "lr", "adamw", "grad_clip", "mtp_lambda",
      "bias_update_speed", "sequence_balance_alpha", "init_std", "seed", "checkpoint_every", "eval_every", "eval_batches", "log_every",
      "price_per_core_hour", "replicas"};
  for (auto& [k, v] : j.items())
    BALEINE_CHECK(std::find(known.begin(), known.end(), k) != known.end(), "{}: unknown key '{}'", path, k);
  auto num = [&](const json& o, const char* key, double def, const std::string& where, double lo, double hi) {
    if (!o.contains(key)) return def;
    BALEINE_CHECK(o[key].is_number(), "{}: key '{}{}' must be a number", path, where, key);
    double v = o[key].get<double>();
    BALEINE_CHECK(std::isfinite(v) && v >= lo && v <= hi, "{}: key '{}{}' = {} is outside [{}, {}]", path, where, key, v, lo, hi);
    return v;
  };
  BALEINE_CHECK(j.contains("model") && j["model"].is_object(), "{}: key 'model' (an HF config object) is required", path);
  r.model = j["model"];
  parse_model_config(r.model, path + " key 'model'");  // validates now, naming the recipe
  BALEINE_CHECK(j.contains("data") && j["data"].is_string(), "{}: key 'data' (a shard directory) is required", path);
  r.data = j["data"].get<std::string>();
  if (!fs::path(r.data).is_absolute()) r.data = (fs::path(path).parent_path() / r.data).lexically_normal().string();
  if (j.contains("out")) {
    BALEINE_CHECK(j["out"].is_string(), "{}: key 'out' must be a string", path);
    r.out = j["out"].get<std::string>();
  }
  r.seq_len = int64_t(num(j, "seq_len", 128, "", 2, 1 << 20));
  r.batch_size = int64_t(num(j, "batch_size", 8, "", 1, 1 << 20));
  r.steps = int64_t(num(j, "steps", 100, "", 1, 1e12));
  r.grad_clip = num(j, "grad_clip", 1.0, "", 0, 1e9);
  r.mtp_lambda = num(j, "mtp_lambda", 0.3, "", 0, 100);
  r.bias_update_speed = num(j, "bias_update_speed", 0.001, "", 0, 1);
  r.sequence_balance_alpha = num(j, "sequence_balance_alpha", 0.0, "", 0, 10);
  r.init_std = num(j, "init_std", 0.02, "", 0, 10);
  r.seed = uint64_t(num(j, "seed", 1234, "", 0, 9e15));
  r.checkpoint_every = int64_t(num(j, "checkpoint_every", 50, "", 1, 1e12));
  r.eval_every = int64_t(num(j, "eval_every", 50, "", 1, 1e12));
  r.eval_batches = int64_t(num(j, "eval_batches", 4, "", 0, 1e6));
  r.log_every = int64_t(num(j, "log_every", 1, "", 1, 1e12));
  r.price_per_core_hour = num(j, "price_per_core_hour", 0.05, "", 0, 1e6);
  r.replicas = int(num(j, "replicas", 1, "", 1, 64));
  if (j.contains("lr")) {
    const json& l = j["lr"];
    BALEINE_CHECK(l.is_object(), "{}: key 'lr' must be an object", path);
    std::string shape = l.value("schedule", std::string("cosine"));
    if (shape == "cosine") r.lr.shape = LrShape::Cosine;
    else if (shape == "wsd") r.lr.shape = LrShape::WarmupStableDecay;
    else if (shape == "constant") r.lr.shape = LrShape::Constant;
    else BALEINE_FAIL("{}: key 'lr.schedule' is '{}' (cosine, wsd or constant)", path, shape);
    r.lr.max_lr = num(l, "max", 3e-4, "lr.", 0, 10);
    r.lr.min_lr = num(l, "min", r.lr.max_lr / 10, "lr.", 0, 10);
    r.lr.warmup_steps = int64_t(num(l, "warmup_steps", 0, "lr.", 0, 1e12));
    r.lr.decay_fraction = num(l, "decay_fraction", 0.2, "lr.", 0, 1);
  }
  r.lr.total_steps = r.steps;
  if (j.contains("adamw")) {
    const json& a = j["adamw"];
    BALEINE_CHECK(a.is_object(), "{}: key 'adamw' must be an object", path);
    r.adamw.beta1 = num(a, "beta1", 0.9, "adamw.", 0, 0.999999);
    r.adamw.beta2 = num(a, "beta2", 0.95, "adamw.", 0, 0.999999);
    r.adamw.eps = num(a, "eps", 1e-8, "adamw.", 0, 1);
    r.adamw.weight_decay = num(a, "weight_decay", 0.1, "adamw.", 0, 10);
  }
  return r;
}

TokenData TokenData::load(const std::string& dir) {
  const std::string index_path = (fs::path(dir) / "index.json").string();
  BALEINE_CHECK(fs::exists(index_path), "{}: missing (is '{}' a directory written by `baleine data`?)", index_path, dir);
  json idx = read_json_file(index_path);
  BALEINE_CHECK(idx.value("format", "") == "baleine-tokens-v1", "{}: format must be 'baleine-tokens-v1'", index_path);
  TokenData d;
  d.vocab_size = idx.value("vocab_size", int64_t(0));
  if (idx.contains("tokenizer") && idx["tokenizer"].is_object() && idx["tokenizer"].contains("path")) {
    fs::path tp = idx["tokenizer"]["path"].get<std::string>();
    if (fs::is_regular_file(tp)) tp = tp.parent_path();
    if (fs::exists(tp / "tokenizer.json")) d.tokenizer_dir = tp.string();
  }
  auto read_split = [&](const char* split, std::vector<uint32_t>& out) {
    if (!idx.contains("splits") || !idx["splits"].contains(split)) return;
    for (const json& s : idx["splits"][split]["shards"]) {
      fs::path f = fs::path(dir) / s.at("file").get<std::string>();
      std::ifstream in(f, std::ios::binary);
      BALEINE_CHECK(in.good(), "{}: missing shard listed in {}", f.string(), index_path);
      const int64_t n = s.at("tokens").get<int64_t>();
      BALEINE_CHECK(int64_t(fs::file_size(f)) == n * 4, "{}: {} bytes, index says {} tokens", f.string(), fs::file_size(f), n);
      size_t at = out.size();
      out.resize(at + size_t(n));
      in.read(reinterpret_cast<char*>(out.data() + at), std::streamsize(n * 4));
    }
  };
  read_split("train", d.train);
  read_split("val", d.val);
  BALEINE_CHECK(!d.train.empty(), "{}: no training tokens", index_path);
  return d;
}

std::vector<int32_t> TokenData::window(bool validation, uint64_t seed, int64_t step, int64_t j, int64_t len) const {
  const std::vector<uint32_t>& src = validation && !val.empty() ? val : train;
  BALEINE_CHECK(int64_t(src.size()) >= len, "the {} split has {} tokens, fewer than seq_len {}",
                validation ? "val" : "train", src.size(), len);
  const uint64_t span = uint64_t(int64_t(src.size()) - len) + 1;
  const uint64_t offset = mix(seed ^ mix(uint64_t(step) * 2 + (validation ? 1 : 0)) ^ mix(uint64_t(j) + 0x51ed)) % span;
  std::vector<int32_t> w(static_cast<size_t>(len));
  for (int64_t i = 0; i < len; ++i) w[size_t(i)] = int32_t(src[size_t(offset) + size_t(i)]);
  return w;
}

int run_training(const TrainRecipe& r, const TrainOptions& opts) {
  // Activations are allocated and freed every step; keep freed blocks in the heap instead of returning them
  // to the kernel (glibc mmaps large blocks by default), which otherwise costs a page fault per page per step.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  ModelConfig cfg = parse_model_config(r.model, r.source + " key 'model'");
  BALEINE_CHECK(r.seq_len <= cfg.max_position_embeddings, "{}: seq_len {} exceeds the model context {}", r.source, r.seq_len,
                cfg.max_position_embeddings);
  TokenData data = TokenData::load(r.data);
  if (data.vocab_size > 0)
    BALEINE_CHECK(data.vocab_size <= cfg.vocab_size, "{}: the data's vocabulary ({}) exceeds the model's vocab_size ({})",
                  r.source, data.vocab_size, cfg.vocab_size);
  auto model_ptr = create_model(cfg);
  CausalLM& model = *model_ptr;
  BALEINE_CHECK(model.trainable(), "{}: '{}' models have no training pass", r.source, cfg.model_type);
  // DeepSeek's own terms (MTP, expert balancing); a dense model (qwen2, llama) trains on the cross-entropy alone.
  auto* ds = dynamic_cast<DeepSeekModel*>(model_ptr.get());
  // (mtp_lambda is ignored without an MTP module, as for a DeepSeek config without one.)
  BALEINE_CHECK(ds || r.sequence_balance_alpha == 0, "{}: sequence_balance_alpha needs a DeepSeek MoE model; '{}' has "
                "no experts", r.source, cfg.model_type);
  if (ds) ds->set_sequence_balance_alpha(r.sequence_balance_alpha);
  Communicator& comm = world();
  const int rank = comm.rank(), ranks = comm.size();
  const bool root = rank == 0;
  if (ranks > 1) check_same_run_on_every_rank(comm, r, opts, data);
  LearnerSetup setup;
  setup.out = r.out;
  setup.tokenizer_dir = data.tokenizer_dir;
  setup.model_config = r.model;
  setup.adamw = r.adamw;
  setup.lr = r.lr;
  setup.grad_clip = r.grad_clip;
  setup.resume = opts.resume;
  setup.zero1 = opts.zero1;
  setup.fresh_start = [&] {
    init_params_random(model, r.seed, float(r.init_std));
    // The MTP modules' embedding and output head are optional copies: DeepSeek-V3 shares them with the main
    // model, so drop them and let prepare() point them at the main ones (they are drawn last, so the other
    // parameters' initial values do not change).
    model.for_each_param([](nn::Param& p) {
      if (p.optional && (p.name.ends_with(".embed_tokens.weight") || p.name.ends_with(".shared_head.head.weight"))) *p.tensor = Tensor();
    });
    model.prepare();
  };
  Learner learner(model, setup);
  const int64_t start_step = learner.start_step();
  nn::Gradients& grads = learner.grads();
  AdamW& opt = learner.optimizer();
  const Checkpointer& ckpt = learner.checkpointer();
  g_interrupted = false;
  auto old_handler = std::signal(SIGINT, on_sigint);

  // Replicas share the weights: build them once the weights are final (after a resume and its broadcast).
  Replicas replicas(model, grads, int(std::min<int64_t>(r.replicas, r.batch_size)), [&](CausalLM& m) {
    if (auto* d = dynamic_cast<DeepSeekModel*>(&m)) d->set_sequence_balance_alpha(r.sequence_balance_alpha);
  });
  const ModelStats stats = model_stats(cfg);
  const double flops_per_token = 6.0 * stats.active_params;  // forward + backward matmuls
  const int threads = ThreadPool::global().size() * ranks;  // cores in use over every rank
  auto elapsed = [&] { return learner.elapsed(); };
  auto make_state = [&](int64_t step) {
    double e = elapsed();
    double tokens = double(step) * double(r.batch_size * (r.seq_len - 1));
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return json{{"step", step}, {"optimizer_steps", opt.steps()}, {"elapsed_s", e}, {"tokens", tokens},
                {"peak_memory_mb", double(ru.ru_maxrss) / 1024.0},
                {"flops", tokens * flops_per_token}, {"core_hours", e * threads / 3600.0},
                {"cost_usd", e * threads / 3600.0 * r.price_per_core_hour}, {"seed", r.seed}};
  };
  // The validation set is the same eval_batches windows at every evaluation, so val_loss curves are comparable
  // across steps and across runs with the same seed.
  auto eval_loss = [&](int64_t) {
    double sum = 0;
    auto [first, last] = comm.block_range(r.eval_batches, rank);  // each rank its share of the windows
    for (int64_t b = first; b < last; ++b)
      sum += model.loss_and_grad(data.window(true, r.seed, /*step=*/0, b, r.seq_len), nullptr, 0.0).main;
    comm.allreduce_sum(&sum, 1);
    return r.eval_batches > 0 ? sum / double(r.eval_batches) : 0.0;
  };

  int exit_code = 0;
  for (int64_t step = start_step; step < r.steps; ++step) {
    auto step_start = std::chrono::steady_clock::now();
    const CommStats comm_before = comm.stats();
    grads.zero();
    replicas.zero_others();
    // Sequence j of the global batch is the same window on any world size; rank r takes a contiguous share,
    // split again into one contiguous group per replica (computed in parallel, summed in replica order).
    const auto share = comm.block_range(r.batch_size, rank);
    const int64_t first = share.first, last = share.second;  // (a lambda may not capture structured bindings in clang 14)
    std::vector<LossParts> parts(size_t(replicas.count()));
    replicas.run([&](int g) {
      CausalLM& m = replicas.model(g);
      if (auto* d = dynamic_cast<DeepSeekModel*>(&m)) d->reset_expert_load();
      const int64_t n = last - first, per = n / replicas.count(), extra = n % replicas.count();
      const int64_t b = first + g * per + std::min<int64_t>(g, extra), e = b + per + (g < extra ? 1 : 0);
      LossParts& lp = parts[size_t(g)];
      for (int64_t j = b; j < e; ++j) {
        auto l = m.loss_and_grad(data.window(false, r.seed, step, j, r.seq_len), &replicas.grads(g), r.mtp_lambda);
        lp.total += l.total / double(r.batch_size), lp.main += l.main / double(r.batch_size), lp.mtp += l.mtp / double(r.batch_size);
        lp.balance += l.balance / double(r.batch_size);
      }
    });
    replicas.sum_gradients();
    LossParts loss = parts[0];
    for (int g = 1; g < replicas.count(); ++g) {
      loss.total += parts[size_t(g)].total, loss.main += parts[size_t(g)].main, loss.mtp += parts[size_t(g)].mtp;
      loss.balance += parts[size_t(g)].balance;
      if (ds) {  // the replicas' expert loads join the model's, for the balance bias
        auto& into = ds->expert_load_counts();
        const auto& from = dynamic_cast<DeepSeekModel&>(replicas.model(g)).expert_load();
        for (size_t l = 0; l < into.size() && l < from.size(); ++l)
          for (size_t x = 0; x < into[l].size() && x < from[l].size(); ++x) into[l][x] += from[l][x];
      }
    }
    if (ranks > 1) {
      double parts[4] = {loss.total, loss.main, loss.mtp, loss.balance};
      comm.allreduce_sum(parts, 4);
      loss.total = parts[0], loss.main = parts[1], loss.mtp = parts[2], loss.balance = parts[3];
      if (ds)
        for (auto& layer_load : ds->expert_load_counts()) comm.allreduce_sum(layer_load.data(), int64_t(layer_load.size()));
    }
    if (!std::isfinite(loss.total)) {
      if (root) fmt::print(stderr, "\nerror: loss is {} at step {}; stopping (the last good checkpoint is kept: {})\n",
                 std::isnan(loss.total) ? "NaN" : "infinite", step + 1, ckpt.latest().empty() ? "none" : ckpt.latest());
      exit_code = 1;
      break;
    }
    const Learner::Update u = learner.update(step, float(r.batch_size));  // the mean over the global batch
    const double norm = u.grad_norm, lr = u.lr;
    if (ds) ds->update_balance_bias(r.bias_update_speed);
    if (opts.debug_step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opts.debug_step_delay_ms));

    const int64_t done = step + 1;
    const double step_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    json m = {{"step", done}, {"loss", loss.total}, {"loss_main", loss.main}, {"lr", lr}, {"grad_norm", norm},
              {"tokens_per_s", double(r.batch_size * (r.seq_len - 1)) / step_s}};
    if (ranks > 1) {
      m["ranks"] = ranks;
      m["comm_s"] = comm.stats().seconds - comm_before.seconds;
      m["comm_bytes"] = double(comm.stats().bytes_sent - comm_before.bytes_sent);
    }
    if (model.has_mtp() && r.mtp_lambda > 0) m["loss_mtp"] = loss.mtp;
    if (r.sequence_balance_alpha > 0) m["loss_balance"] = loss.balance;
    json balance = json::array();
    for (const auto& load : ds ? ds->expert_load() : std::vector<std::vector<int64_t>>{}) {
      if (load.empty()) continue;
      double mx = 0, mean = 0, entropy = 0, total = 0;
      for (int64_t c : load) mx = std::max(mx, double(c)), total += double(c);
      mean = total / double(load.size());
      for (int64_t c : load)
        if (c > 0) entropy -= double(c) / total * std::log(double(c) / total);
      balance.push_back({{"max_over_mean", mx / mean}, {"entropy", entropy / std::log(double(load.size()))}});
    }
    if (!balance.empty()) m["expert_balance"] = balance;
    if (done % r.eval_every == 0 || done == r.steps) m["val_loss"] = eval_loss(done);
    if (done % r.log_every == 0 || m.contains("val_loss")) learner.log(0, m);
    const double e = elapsed();
    const double eta = e / double(done - start_step + 1e-9) * double(r.steps - done) * (done > start_step ? 1 : 0);
    if (root) fmt::print(stderr, "\rstep {}/{} [{:3.0f}%] loss {:.4f} lr {:.2e} {:.0f} tok/s ETA {:.0f}s{}", done, r.steps,
               100.0 * double(done) / double(r.steps), loss.total, lr, m["tokens_per_s"].get<double>(), eta,
               m.contains("val_loss") ? fmt::format(" val {:.4f}\n", m["val_loss"].get<double>()) : "");
    int64_t interrupted_flag = g_interrupted.load() ? 1 : 0;
    comm.allreduce_max(&interrupted_flag, 1);  // every rank stops at the same step
    const bool interrupted = interrupted_flag != 0;
    if (done % r.checkpoint_every == 0 || done == r.steps || interrupted) {
      // Never write a checkpoint holding NaN/Inf weights: the previous one stays the one to resume from.
      bool finite = true;
      model.for_each_param([&](nn::Param& p) {
        if (!finite || !p.tensor->defined()) return;
        const float* w = p.tensor->f32();
        for (int64_t i = 0; i < p.tensor->numel(); ++i)
          if (!std::isfinite(w[i])) { finite = false; break; }
      });
      if (!finite) {
        if (root) fmt::print(stderr, "\nerror: parameters became NaN or infinite at step {}; stopping (the last good checkpoint is kept: {})\n",
                   done, ckpt.latest().empty() ? "none" : ckpt.latest());
        exit_code = 1;
        break;
      }
      try {
        learner.save(done, make_state(done));
      } catch (const std::exception& e) {
        // Disk full, quota, I/O error: the half-written directory is gone and `latest` still names the
        // previous checkpoint, which was not touched.
        const std::string prev = ckpt.latest();
        BALEINE_FAIL("the checkpoint at step {} could not be written ({}); {}", done, e.what(),
                     prev.empty() ? std::string("there is no earlier checkpoint")
                                  : fmt::format("the previous checkpoint {} is kept", (ckpt.root / prev).string()));
      }
    }
    if (interrupted) {
      if (root) fmt::print(stderr, "\ninterrupted: checkpoint saved at step {}; continue with --resume\n", done);
      exit_code = 130;
      break;
    }
  }
  std::signal(SIGINT, old_handler);
  json s = make_state(opt.steps());
  if (!root) return exit_code;
  fmt::print(stderr, "\ncompute: {:.3g} FLOPs, {:.4f} core-hours on {} threads, ${:.4f} at ${}/core-hour; peak memory {:.0f} MiB\n",
             s["flops"].get<double>(), s["core_hours"].get<double>(), threads, s["cost_usd"].get<double>(),
             r.price_per_core_hour, s["peak_memory_mb"].get<double>());
  write_file_atomic(fs::path(r.out) / "compute.json", s.dump(2));
  return exit_code;
}

}  // namespace baleine::train
