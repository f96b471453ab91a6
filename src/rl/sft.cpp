#include "rl/sft.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "core/check.h"
#include "core/comm.h"
#include "rl/objectives.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/learner.h"

namespace baleine::rl {

namespace fs = std::filesystem;
using nlohmann::json;

SftRecipe load_sft_recipe(const std::string& path, bool distill) {
  std::vector<std::string> keys = {"model", "data", "val_data", "out", "chat_format", "seq_len", "batch_size", "steps",
                                   "lr", "adamw", "grad_clip", "seed", "checkpoint_every", "eval_every", "log_every"};
  if (distill) keys.insert(keys.end(), {"teacher", "beta", "temperature"});
  RecipeReader j(train::read_json_file(path), path, keys);
  SftRecipe r;
  r.source = path;
  r.model = j.path("model", true);
  r.data = j.path("data", true);
  r.val_data = j.path("val_data", false);
  r.out = j.string("out", r.out);
  r.chat_format = chat_format_from_name(j.string("chat_format", "deepseek-r1"));
  r.seq_len = j.integer("seq_len", r.seq_len, 2, 1 << 20);
  r.batch_size = j.integer("batch_size", r.batch_size, 1, 1 << 20);
  r.steps = j.integer("steps", r.steps, 1, int64_t(1e12));
  r.lr = j.lr(r.steps, 1e-4);
  r.adamw = j.adamw();
  r.grad_clip = j.number("grad_clip", r.grad_clip, 0, 1e9);
  r.seed = uint64_t(j.integer("seed", 1234, 0, int64_t(9e15)));
  r.checkpoint_every = j.integer("checkpoint_every", r.checkpoint_every, 1, int64_t(1e12));
  r.eval_every = j.integer("eval_every", r.eval_every, 1, int64_t(1e12));
  r.log_every = j.integer("log_every", r.log_every, 1, int64_t(1e12));
  if (distill) {
    r.teacher = j.path("teacher", true);
    r.distill_beta = j.number("beta", 0.0, 0, 1);
    r.distill_temperature = j.number("temperature", 1.0, 0.01, 100);
  }
  return r;
}

std::vector<TokenizedSample> load_chat_jsonl(const std::string& path, const Tokenizer& tok, ChatFormat format) {
  std::ifstream in(path);
  BALEINE_CHECK(in.good(), "{}: cannot open", path);
  std::vector<TokenizedSample> out;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      BALEINE_FAIL("{}:{}: invalid JSON at byte {}", path, n, e.byte);
    }
    const std::string where = fmt::format("{}:{}", path, n);
    auto samples = tokenize_conversation(tok, format, parse_conversation(j, where));
    BALEINE_CHECK(!samples.empty(), "{}: the conversation has no assistant message", where);
    for (auto& s : samples) out.push_back(std::move(s));
  }
  BALEINE_CHECK(!out.empty(), "{}: no conversations", path);
  return out;
}

std::vector<PackedWindow> pack_samples(const std::vector<TokenizedSample>& samples, int64_t seq_len, uint64_t seed) {
  std::vector<size_t> order(samples.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<PackedWindow> windows;
  std::vector<int64_t> room;  // free tokens per window (first fit)
  for (size_t i : order) {
    const auto& s = samples[i];
    const int64_t len = std::min<int64_t>(int64_t(s.tokens.size()), seq_len);
    if (len < 2) continue;
    size_t w = 0;
    while (w < windows.size() && room[w] < len) ++w;
    if (w == windows.size()) windows.emplace_back(), room.push_back(seq_len);
    PackedWindow& pw = windows[w];
    pw.tokens.insert(pw.tokens.end(), s.tokens.begin(), s.tokens.begin() + len);
    pw.lengths.push_back(len);
    for (int64_t t = 0; t < len; ++t) pw.weights.push_back(t + 1 < len && s.trained[size_t(t + 1)] ? 1.0f : 0.0f);
    room[w] -= len;
  }
  return windows;
}

int run_sft(const SftRecipe& r, bool resume, bool zero1) {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  Policy pol = load_policy(r.model, r.source + " key 'model'");
  BALEINE_CHECK(r.seq_len <= pol.model->config().max_position_embeddings, "{}: seq_len {} exceeds the model context {}",
                r.source, r.seq_len, pol.model->config().max_position_embeddings);
  auto train_windows = pack_samples(load_chat_jsonl(r.data, pol.tokenizer, r.chat_format), r.seq_len, r.seed);
  std::vector<PackedWindow> val_windows;
  if (!r.val_data.empty()) val_windows = pack_samples(load_chat_jsonl(r.val_data, pol.tokenizer, r.chat_format), r.seq_len, r.seed);
  BALEINE_CHECK(!train_windows.empty(), "{}: no sample has 2 tokens or more", r.data);
  int64_t trained_tokens = 0;
  for (const auto& w : train_windows) trained_tokens += int64_t(std::count(w.weights.begin(), w.weights.end(), 1.0f));
  Communicator& comm = world();
  const int rank = comm.rank(), ranks = comm.size();
  const bool root = rank == 0;
  if (ranks > 1) {  // every rank must run the same recipe on the same windows
    train::check_same_recipe_on_every_rank(comm, r.source, resume, zero1);
    uint64_t h = train::fingerprint(nullptr, 0);
    for (const auto& w : train_windows) h = train::fingerprint(w.tokens.data(), w.tokens.size() * 4, h);
    train::check_fingerprints_agree(comm, h, fmt::format("training data ({})", r.data));
  }
  if (root) fmt::print(stderr, "sft: {} windows of <= {} tokens, {} assistant tokens per epoch\n", train_windows.size(), r.seq_len,
             trained_tokens);

  CausalLM& model = *pol.model;
  std::unique_ptr<CausalLM> teacher;
  CausalLM* teacher_lm = nullptr;
  if (!r.teacher.empty()) {
    Policy t = load_policy(r.teacher, r.source + " key 'teacher'");
    BALEINE_CHECK(t.model->config().vocab_size == model.config().vocab_size &&
                      t.tokenizer.vocab_size() == pol.tokenizer.vocab_size(),
                  "{}: logit distillation needs one vocabulary; teacher {} ids, student {} (use sequence-level "
                  "distillation: baleine distill --teacher ... --out data.jsonl, then baleine sft)", r.source,
                  t.model->config().vocab_size, model.config().vocab_size);
    for (int32_t id = 0; id < int32_t(pol.tokenizer.vocab_size()); ++id)
      BALEINE_CHECK(t.tokenizer.token_bytes(id) == pol.tokenizer.token_bytes(id),
                    "{}: teacher and student tokenizers differ at id {}", r.source, id);
    teacher = std::move(t.model);
    teacher_lm = teacher.get();
  }
  train::LearnerSetup setup;
  setup.out = r.out;
  setup.tokenizer_dir = pol.dir;
  setup.model_config = pol.config;
  setup.adamw = r.adamw;
  setup.lr = r.lr;
  setup.grad_clip = r.grad_clip;
  setup.resume = resume;
  setup.zero1 = zero1;
  train::Learner learner(model, setup);
  const int64_t start_step = learner.start_step();
  nn::Gradients& grads = learner.grads();

  // Window k of the run: epoch k / N visits the windows in its own seeded order.
  const int64_t N = int64_t(train_windows.size());
  auto window_at = [&](int64_t k) -> const PackedWindow& {
    const int64_t epoch = k / N;
    std::vector<int64_t> perm(static_cast<size_t>(N));
    std::iota(perm.begin(), perm.end(), 0);
    std::mt19937_64 rng(r.seed ^ (0x5f7ull + uint64_t(epoch) * 0x9e3779b97f4a7c15ull));
    std::shuffle(perm.begin(), perm.end(), rng);
    return train_windows[size_t(perm[size_t(k % N)])];
  };
  // Mean NLL over the assistant tokens of a set of windows (1/count per trained row). Under mpirun each rank
  // passes its share of the windows: the count and the loss are summed over ranks (the gradients by the caller).
  auto run_windows = [&](const std::vector<const PackedWindow*>& ws, nn::Gradients* g, int64_t* count_out) {
    int64_t count = 0;
    for (const auto* w : ws) count += int64_t(std::count(w->weights.begin(), w->weights.end(), 1.0f));
    comm.allreduce_sum(&count, 1);
    double loss = 0;
    if (count_out) *count_out = count;
    if (count == 0) return 0.0;
    for (const auto* w : ws) {
      std::vector<float> wt = w->weights;
      for (auto& x : wt) x /= float(count);
      if (!teacher_lm) {
        loss += model.objective_and_grad(w->tokens, w->lengths, weighted_nll(std::move(wt)), g);
        continue;
      }
      std::vector<float> teacher_logits;
      teacher_lm->objective_and_grad(w->tokens, w->lengths, [&](const ObjectiveInput& in, float*) {
        teacher_logits.assign(in.logits, in.logits + in.T * in.V);
        return 0.0;
      }, nullptr);
      loss += model.objective_and_grad(w->tokens, w->lengths,
                                       distill_objective(std::move(teacher_logits), std::move(wt),
                                                         DistillLoss{r.distill_beta, r.distill_temperature}), g);
    }
    comm.allreduce_sum(&loss, 1);
    return loss;
  };
  int exit_code = 0;
  for (int64_t step = start_step; step < r.steps; ++step) {
    auto ts = std::chrono::steady_clock::now();
    grads.zero();
    std::vector<const PackedWindow*> batch;
    int64_t tokens = 0;
    auto [first, last] = comm.block_range(r.batch_size, rank);  // window j of the global batch, on any world size
    for (int64_t j = 0; j < r.batch_size; ++j) {
      const PackedWindow& w = window_at(step * r.batch_size + j);
      if (j >= first && j < last) batch.push_back(&w);
      tokens += int64_t(w.tokens.size());
    }
    int64_t count = 0;
    const double loss = run_windows(batch, &grads, &count);
    if (!std::isfinite(loss)) {
      if (root) fmt::print(stderr, "\nerror: loss is not finite at step {}; stopping\n", step + 1);
      exit_code = 1;
      break;
    }
    const train::Learner::Update u = learner.update(step);
    const double norm = u.grad_norm, lr = u.lr;
    model.prepare();  // keep the derived inference weights (absorbed MLA) in step with the parameters
    const int64_t done = step + 1;
    const double step_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    json m = {{"step", done}, {"loss", loss}, {"lr", lr}, {"grad_norm", norm}, {"assistant_tokens", count},
              {"tokens_per_s", double(tokens) / step_s}, {"epoch", double(done * r.batch_size) / double(N)}};
    if (!val_windows.empty() && (done % r.eval_every == 0 || done == r.steps)) {
      std::vector<const PackedWindow*> all;
      auto [vb, ve] = comm.block_range(int64_t(val_windows.size()), rank);
      for (int64_t i = vb; i < ve; ++i) all.push_back(&val_windows[size_t(i)]);
      m["val_loss"] = run_windows(all, nullptr, nullptr);
    }
    if (ranks > 1) m["ranks"] = ranks;
    if (done % r.log_every == 0 || m.contains("val_loss")) learner.log(0, m);
    if (root) fmt::print(stderr, "\rstep {}/{} loss {:.4f} lr {:.2e} {:.0f} tok/s{}", done, r.steps, loss, lr,
               double(tokens) / step_s, m.contains("val_loss") ? fmt::format(" val {:.4f}\n", m["val_loss"].get<double>()) : "");
    if (done % r.checkpoint_every == 0 || done == r.steps) {
      learner.save(done, {{"seed", r.seed}, {"kind", "sft"}});
    }
  }
  if (root) fmt::print(stderr, "\nsft: {:.1f} s; checkpoints in {}\n", learner.elapsed(), learner.checkpointer().root.string());
  return exit_code;
}

}  // namespace baleine::rl
