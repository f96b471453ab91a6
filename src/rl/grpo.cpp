#include "rl/grpo.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/check.h"
#include "core/comm.h"
#include "infer/batch_generate.h"
#include "rl/eval.h"
#include "rl/objectives.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/learner.h"

namespace baleine::rl {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<double> group_advantages(const std::vector<double>& r, bool scale) {
  const double n = double(r.size());
  double mean = 0;
  for (double x : r) mean += x;
  mean /= n;
  double var = 0;
  for (double x : r) var += (x - mean) * (x - mean);
  const double sd = r.size() > 1 ? std::sqrt(var / (n - 1)) : 0.0;
  std::vector<double> a(r.size());
  for (size_t i = 0; i < r.size(); ++i) a[i] = scale ? (r[i] - mean) / (sd + 1e-4) : r[i] - mean;
  return a;
}

LossAveraging loss_averaging_from_name(const std::string& name) {
  if (name == "token") return LossAveraging::Token;
  if (name == "sequence") return LossAveraging::Sequence;
  if (name == "constant") return LossAveraging::Constant;
  BALEINE_FAIL("unknown loss averaging '{}' (token, sequence or constant)", name);
}

double overlong_reward(int64_t length, int64_t max_len, int64_t buffer, double penalty) {
  if (buffer <= 0) return 0.0;
  BALEINE_CHECK(buffer <= max_len, "the overlong buffer ({}) exceeds the generation budget ({})", buffer, max_len);
  const int64_t free = max_len - buffer;
  if (length <= free) return 0.0;
  if (length >= max_len) return -penalty;
  return -penalty * double(length - free) / double(buffer);
}

bool group_is_informative(const std::vector<double>& r) {
  return std::any_of(r.begin(), r.end(), [&](double x) { return x != r.front(); });
}

namespace {
// Consecutive chunks of sequences whose total length stays within pack_tokens (a longer one is alone).
template <class Len>
std::vector<std::pair<size_t, size_t>> chunks(size_t n, Len len, int64_t pack_tokens) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t b = 0;
  while (b < n) {
    size_t e = b;
    int64_t total = 0;
    while (e < n && (e == b || total + len(e) <= pack_tokens)) total += len(e++);
    out.emplace_back(b, e);
    b = e;
  }
  return out;
}
}  // namespace

std::vector<std::vector<double>> sequence_logprobs(CausalLM& model, const std::vector<std::vector<int32_t>>& seqs,
                                                   int64_t pack_tokens) {
  std::vector<std::vector<double>> out(seqs.size());
  for (auto [b, e] : chunks(seqs.size(), [&](size_t i) { return int64_t(seqs[i].size()); }, pack_tokens)) {
    std::vector<int32_t> tokens;
    std::vector<int64_t> lengths;
    for (size_t i = b; i < e; ++i) tokens.insert(tokens.end(), seqs[i].begin(), seqs[i].end()), lengths.push_back(int64_t(seqs[i].size()));
    model.objective_and_grad(tokens, lengths, [&](const ObjectiveInput& in, float*) {
      auto lp = target_logprobs(in);
      int64_t at = 0;
      for (size_t i = b; i < e; ++i) {
        out[i].assign(lp.begin() + at, lp.begin() + at + int64_t(seqs[i].size()));
        at += int64_t(seqs[i].size());
      }
      return 0.0;
    }, nullptr);
  }
  return out;
}

GrpoLossStats grpo_loss_and_grad(CausalLM& model, const std::vector<GrpoSequence>& batch, const GrpoLossConfig& cfg,
                                 nn::Gradients* grads, int64_t pack_tokens, GrpoBatchTotals whole) {
  GrpoLossStats st;
  int64_t total_tokens = 0;
  for (const auto& s : batch) {
    BALEINE_CHECK(s.prompt_len >= 1 && s.prompt_len < int64_t(s.tokens.size()), "a GRPO sequence needs a prompt and a completion");
    BALEINE_CHECK(s.old_logp.size() == s.tokens.size(), "old_logp has {} rows for {} tokens", s.old_logp.size(), s.tokens.size());
    BALEINE_CHECK(cfg.beta == 0 || s.ref_logp.size() == s.tokens.size(), "ref_logp has {} rows for {} tokens", s.ref_logp.size(),
                  s.tokens.size());
    total_tokens += int64_t(s.tokens.size()) - s.prompt_len;
  }
  if (batch.empty()) return st;
  const double all_tokens = double(whole.tokens > 0 ? whole.tokens : total_tokens);
  const double all_sequences = double(whole.sequences > 0 ? whole.sequences : int64_t(batch.size()));
  BALEINE_CHECK(cfg.averaging != LossAveraging::Constant || cfg.constant_tokens > 0,
                "constant loss averaging needs constant_tokens > 0");
  // Weight of each completion token in the batch objective.
  auto coef = [&](const GrpoSequence& s) {
    switch (cfg.averaging) {
      case LossAveraging::Token: return 1.0 / all_tokens;
      case LossAveraging::Sequence: return 1.0 / (all_sequences * double(int64_t(s.tokens.size()) - s.prompt_len));
      case LossAveraging::Constant: break;
    }
    return 1.0 / (all_sequences * double(cfg.constant_tokens));
  };
  double clipped = 0, ratio_sum = 0, kl_sum = 0;
  for (auto [b, e] : chunks(batch.size(), [&](size_t i) { return int64_t(batch[i].tokens.size()); }, pack_tokens)) {
    std::vector<int32_t> tokens;
    std::vector<int64_t> lengths;
    for (size_t i = b; i < e; ++i)
      tokens.insert(tokens.end(), batch[i].tokens.begin(), batch[i].tokens.end()), lengths.push_back(int64_t(batch[i].tokens.size()));
    auto fn = [&](std::span<const double> logp, std::span<double> dlogp) {
      double loss = 0;
      int64_t at = 0;
      for (size_t i = b; i < e; ++i) {
        const GrpoSequence& s = batch[i];
        const double c = coef(s);
        const int64_t n = int64_t(s.tokens.size());
        for (int64_t t = s.prompt_len - 1; t + 1 < n; ++t) {  // row t predicts completion token t+1
          auto r = grpo_token_loss(logp[size_t(at + t)], s.old_logp[size_t(t)], cfg.beta != 0 ? s.ref_logp[size_t(t)] : 0.0,
                                   s.advantage, cfg.eps_low, cfg.eps_high, cfg.beta);
          loss += c * r.loss;
          dlogp[size_t(at + t)] = c * r.dlogp;
          clipped += r.clipped, ratio_sum += r.ratio, kl_sum += r.kl;
        }
        at += n;
      }
      return loss;
    };
    st.loss += model.objective_and_grad(tokens, lengths, logprob_objective(fn), grads);
  }
  st.tokens = total_tokens;
  st.clip_frac = clipped / double(total_tokens);
  st.ratio_mean = ratio_sum / double(total_tokens);
  st.kl = kl_sum / double(total_tokens);
  return st;
}

GrpoRecipe load_grpo_recipe(const std::string& path) {
  RecipeReader j(train::read_json_file(path), path,
                 {"model", "out", "suite", "prompt_format", "reward", "prompts_per_step", "group_size", "max_new_tokens",
                  "steps", "inner_iterations", "temperature", "top_p", "scale_rewards", "epsilon", "epsilon_high", "beta",
                  "loss_averaging", "variant", "dynamic_sampling", "dynamic_sampling_rounds", "overlong_buffer",
                  "overlong_penalty", "lr", "adamw", "grad_clip", "seed", "eval_every", "eval_problems", "checkpoint_every",
                  "log_samples"});
  GrpoRecipe r;
  r.source = path;
  r.model = j.path("model", true);
  r.out = j.string("out", r.out);
  if (j.raw().contains("suite")) r.suite = j.raw()["suite"];
  make_suite(r.suite, 0, path + " key 'suite'");  // validates now
  r.prompt_format = prompt_format_from_name(j.string("prompt_format", "plain"));
  if (j.raw().contains("reward")) {
    RecipeReader rw(j.raw()["reward"], path + " key 'reward'", {"correct", "formatted", "otherwise"});
    r.reward.correct = rw.number("correct", 1.0, -100, 100);
    r.reward.formatted = rw.number("formatted", 0.1, -100, 100);
    r.reward.otherwise = rw.number("otherwise", 0.0, -100, 100);
  }
  r.prompts_per_step = j.integer("prompts_per_step", r.prompts_per_step, 1, 1 << 16);
  r.group_size = j.integer("group_size", r.group_size, 2, 1 << 12);
  r.max_new_tokens = j.integer("max_new_tokens", r.max_new_tokens, 1, 1 << 20);
  r.steps = j.integer("steps", r.steps, 1, int64_t(1e12));
  r.inner_iterations = j.integer("inner_iterations", 1, 1, 64);
  r.temperature = j.number("temperature", 1.0, 0.01, 10);
  r.top_p = j.number("top_p", 1.0, 0.01, 1);
  // A variant sets the defaults of its keys; a key given in the recipe wins.
  const std::string variant = j.string("variant", "grpo");
  BALEINE_CHECK(variant == "grpo" || variant == "dr_grpo" || variant == "dapo",
                "{}: key 'variant' is '{}' (grpo, dr_grpo or dapo)", path, variant);
  const bool dr = variant == "dr_grpo", dapo = variant == "dapo";
  const std::string scale = j.string("scale_rewards", dr ? "none" : "group");
  BALEINE_CHECK(scale == "group" || scale == "none", "{}: key 'scale_rewards' is '{}' (group or none)", path, scale);
  r.scale_rewards = scale == "group";
  r.loss.eps_low = j.number("epsilon", 0.2, 0, 1);
  r.loss.eps_high = j.number("epsilon_high", dapo ? 0.28 : r.loss.eps_low, 0, 10);
  r.loss.beta = j.number("beta", 0.0, 0, 100);
  const std::string avg = j.string("loss_averaging", dr ? "constant" : "token");
  try {
    r.loss.averaging = loss_averaging_from_name(avg);
  } catch (const Error& e) {
    BALEINE_FAIL("{}: key 'loss_averaging': {}", path, e.what());
  }
  r.loss.constant_tokens = r.max_new_tokens;
  r.dynamic_sampling = j.boolean("dynamic_sampling", dapo);
  r.dynamic_sampling_rounds = j.integer("dynamic_sampling_rounds", r.dynamic_sampling_rounds, 1, 64);
  // DAPO: a 4,096-token buffer under a 20,480-token budget, a fifth of it.
  r.overlong_buffer = j.integer("overlong_buffer", dapo ? r.max_new_tokens / 5 : 0, 0, r.max_new_tokens);
  r.overlong_penalty = j.number("overlong_penalty", 1.0, 0, 100);
  r.lr = j.lr(r.steps, 1e-5);
  r.adamw = j.adamw();
  r.adamw.weight_decay = j.raw().contains("adamw") ? r.adamw.weight_decay : 0.0;
  r.grad_clip = j.number("grad_clip", 1.0, 0, 1e9);
  r.seed = uint64_t(j.integer("seed", 1234, 0, int64_t(9e15)));
  r.eval_every = j.integer("eval_every", r.eval_every, 1, int64_t(1e12));
  r.eval_problems = j.integer("eval_problems", r.eval_problems, 0, 1 << 20);
  r.checkpoint_every = j.integer("checkpoint_every", r.checkpoint_every, 1, int64_t(1e12));
  r.log_samples = j.integer("log_samples", r.log_samples, 0, 1 << 20);
  return r;
}

int run_grpo(const GrpoRecipe& r, bool resume, bool zero1) {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  Policy pol = load_policy(r.model, r.source + " key 'model'");
  CausalLM& model = *pol.model;
  // The reference is the initial policy, frozen; with beta = 0 it is never loaded (as trl).
  std::unique_ptr<CausalLM> ref;
  if (r.loss.beta > 0) ref = load_model(r.model);
  CausalLM* ref_lm = ref.get();
  auto suite = make_suite(r.suite, r.seed, r.source + " key 'suite'");
  const AnswerFormat af = answer_format_of(r.prompt_format);
  const int32_t eos = pol.tokenizer.eos_id();
  BALEINE_CHECK(eos >= 0, "{}: the tokenizer has no end-of-sequence token", r.model);

  Communicator& comm = world();
  const int rank = comm.rank(), ranks = comm.size();
  const bool root = rank == 0;
  if (ranks > 1) train::check_same_recipe_on_every_rank(comm, r.source, resume, zero1);
  train::LearnerSetup setup;
  setup.out = r.out;
  setup.tokenizer_dir = pol.dir;
  setup.model_config = pol.config;
  setup.logs = {"metrics.jsonl", "samples.jsonl"};
  setup.adamw = r.adamw;
  setup.lr = r.lr;
  setup.grad_clip = r.grad_clip;
  setup.resume = resume;
  setup.zero1 = zero1;
  train::Learner learner(model, setup);
  const int64_t start_step = learner.start_step();
  nn::Gradients& grads = learner.grads();
  std::ofstream& metrics = learner.log_stream(0);
  std::ofstream& samples_log = learner.log_stream(1);

  auto evaluate = [&](int64_t step) {  // rank 0 alone (the others wait at the next collective)
    if (!root) return;
    EvalConfig ec;
    ec.problems = r.eval_problems;
    ec.k = 1;
    ec.max_new_tokens = r.max_new_tokens;
    ec.format = r.prompt_format;
    ec.reward = r.reward;
    auto rep = evaluate_suite(local_batch_completer(model, pol.tokenizer, r.max_new_tokens), *suite, ec);
    json m = {{"step", step}, {"eval_accuracy", rep.pass1}, {"eval_format", rep.format_rate},
              {"eval_reward", rep.mean_reward}, {"eval_tokens", rep.mean_tokens}};
    metrics << m.dump() << "\n" << std::flush;
    fmt::print(stderr, "\neval at step {}: held-out accuracy {:.3f} (greedy, {} problems), format {:.3f}, {:.1f} tokens\n",
               step, rep.pass1, r.eval_problems, rep.format_rate, rep.mean_tokens);
  };
  if (start_step == 0 && r.eval_problems > 0) evaluate(0);

  for (int64_t step = start_step; step < r.steps; ++step) {
    auto ts = std::chrono::steady_clock::now();
    // ---- rollouts
    std::vector<GrpoSequence> batch;
    std::vector<std::vector<int32_t>> seqs;
    double reward_sum = 0, correct = 0, formatted = 0, length_sum = 0, finished = 0;
    int64_t zero_var = 0, groups_drawn = 0, kept = 0, rounds = 0;
    // One round: prompts_per_step prompts × group_size samples, decoded together (infer/batch_generate.h). Each
    // round of each step has its own prompts, and each sample's seed depends only on (seed, step, round, sample),
    // so a resumed run draws the same completions. Round 0 is the plain GRPO batch.
    const int64_t max_rounds = r.dynamic_sampling ? r.dynamic_sampling_rounds : 1;
    // Under mpirun rank r decodes prompts [first, last) of every round: whole groups, so advantages stay local.
    auto [first, last] = comm.block_range(r.prompts_per_step, rank);
    for (int64_t round = 0; round < max_rounds && kept < r.prompts_per_step; ++round, ++rounds) {
      std::vector<Problem> problems;
      std::vector<std::vector<int32_t>> prompts;
      std::vector<BatchRequest> requests;
      for (int64_t i = first; i < last; ++i) {
        problems.push_back(suite->problem(Split::Train, (step * max_rounds + round) * r.prompts_per_step + i));
        prompts.push_back(pol.tokenizer.encode(render_prompt(problems.back(), r.prompt_format)));
        for (int64_t g = 0; g < r.group_size; ++g) {
          BatchRequest q;
          q.prompt = prompts.back();
          q.max_new_tokens = r.max_new_tokens;
          q.sampling.temperature = float(r.temperature);
          q.sampling.top_p = float(r.top_p);
          const uint64_t sample = uint64_t((round * r.prompts_per_step + i) * r.group_size + g);
          q.sampling.seed = r.seed ^ (uint64_t(step) * 0x9e3779b97f4a7c15ull + sample * 0x632be59bd9b4e019ull + 7);
          requests.push_back(std::move(q));
        }
      }
      BatchGenerateOptions bo;
      bo.stop_tokens = {eos};
      const std::vector<BatchOutput> gens = generate_batch(model, requests, bo);
      std::vector<std::vector<double>> round_rewards;
      std::vector<std::vector<GrpoSequence>> round_groups;
      for (int64_t i = first; i < last; ++i) {
        const Problem& p = problems[size_t(i - first)];
        const std::vector<int32_t>& prompt = prompts[size_t(i - first)];
        std::vector<double> rewards;
        std::vector<GrpoSequence> group;
        for (int64_t g = 0; g < r.group_size; ++g) {
          const BatchOutput& gen = gens[size_t((i - first) * r.group_size + g)];
          std::vector<int32_t> body = gen.tokens;
          if (gen.finished) body.pop_back();  // special tokens stay in the text: </think> is one
          const std::string text = pol.tokenizer.decode(body, false);
          Scored sc = score_response(*suite, p, "<think>" + text, af, r.reward);
          const int64_t length = gen.finished ? int64_t(gen.tokens.size()) : r.max_new_tokens;
          sc.reward += overlong_reward(length, r.max_new_tokens, r.overlong_buffer, r.overlong_penalty);
          rewards.push_back(sc.reward);
          reward_sum += sc.reward, correct += sc.grade.correct, formatted += sc.formatted;
          length_sum += double(gen.tokens.size()), finished += gen.finished;
          GrpoSequence s;
          s.tokens = prompt;
          s.tokens.insert(s.tokens.end(), gen.tokens.begin(), gen.tokens.end());
          s.prompt_len = int64_t(prompt.size());
          group.push_back(std::move(s));
          if (root && g < r.log_samples && i == 0 && round == 0)
            samples_log << json_line(json{{"step", step + 1}, {"question", p.question}, {"completion", text}, {"reward", sc.reward},
                                {"correct", sc.grade.correct}});
        }
        round_rewards.push_back(std::move(rewards));
        round_groups.push_back(std::move(group));
      }
      // Which groups the step keeps is decided over every prompt of the round, in prompt order, as one process
      // would: each rank learns every group's informativeness.
      std::vector<int64_t> informative(size_t(r.prompts_per_step), 0);
      for (int64_t i = first; i < last; ++i) informative[size_t(i)] = group_is_informative(round_rewards[size_t(i - first)]);
      comm.allreduce_sum(informative.data(), int64_t(informative.size()));
      for (int64_t i = 0; i < r.prompts_per_step; ++i) {
        ++groups_drawn;
        zero_var += !informative[size_t(i)];
        if (r.dynamic_sampling && (!informative[size_t(i)] || kept >= r.prompts_per_step)) continue;
        ++kept;
        if (i < first || i >= last) continue;
        std::vector<GrpoSequence>& group = round_groups[size_t(i - first)];
        auto adv = group_advantages(round_rewards[size_t(i - first)], r.scale_rewards);
        for (size_t g = 0; g < group.size(); ++g) {
          group[g].advantage = adv[g];
          seqs.push_back(group[g].tokens);
          batch.push_back(std::move(group[g]));
        }
      }
    }
    if (root) samples_log.flush();
    if (ranks > 1) {  // rollout statistics over every rank
      double sums[5] = {reward_sum, correct, formatted, length_sum, finished};
      comm.allreduce_sum(sums, 5);
      reward_sum = sums[0], correct = sums[1], formatted = sums[2], length_sum = sums[3], finished = sums[4];
    }
    const double gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    // ---- old-policy and reference log-probabilities (teacher-forced, the training form)
    auto old_lp = sequence_logprobs(model, seqs);
    std::vector<std::vector<double>> ref_lp;
    if (ref_lm) ref_lp = sequence_logprobs(*ref_lm, seqs);
    for (size_t s = 0; s < batch.size(); ++s) {
      batch[s].old_logp = std::move(old_lp[s]);
      if (ref_lm) batch[s].ref_logp = std::move(ref_lp[s]);
    }
    // ---- μ policy updates on this batch
    GrpoLossStats st;
    double norm = 0;
    const double lr = train::lr_at(r.lr, step);
    GrpoBatchTotals whole;  // the global batch the averaging divides by
    for (const auto& s : batch) whole.tokens += int64_t(s.tokens.size()) - s.prompt_len;
    whole.sequences = int64_t(batch.size());
    int64_t totals[2] = {whole.tokens, whole.sequences};
    comm.allreduce_sum(totals, 2);
    whole = {totals[0], totals[1]};
    for (int64_t it = 0; it < r.inner_iterations && whole.sequences > 0; ++it) {  // dynamic sampling may keep nothing
      grads.zero();
      st = grpo_loss_and_grad(model, batch, r.loss, &grads, 2048, whole);
      if (ranks > 1) {
        // Global means from the local ones, weighted by each rank's completion tokens.
        double parts[4] = {st.loss, st.kl * double(st.tokens), st.clip_frac * double(st.tokens), st.ratio_mean * double(st.tokens)};
        comm.allreduce_sum(parts, 4);
        st.loss = parts[0], st.kl = parts[1] / double(whole.tokens), st.clip_frac = parts[2] / double(whole.tokens);
        st.ratio_mean = parts[3] / double(whole.tokens), st.tokens = whole.tokens;
      }
      norm = learner.update(step).grad_norm;
      model.prepare();  // re-derive the absorbed-MLA weights (W^UK) that rollouts decode with
    }
    const int64_t done = step + 1;
    const double n = double(groups_drawn * r.group_size);  // every sample drawn
    const double step_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    json m = {{"step", done}, {"reward", reward_sum / n}, {"accuracy", correct / n}, {"format", formatted / n},
              {"response_tokens", length_sum / n}, {"finished", finished / n}, {"kl", st.kl}, {"loss", st.loss},
              {"clip_frac", st.clip_frac}, {"zero_variance_groups", double(zero_var) / double(groups_drawn)},
              {"groups_trained", double(whole.sequences) / double(r.group_size)}, {"sampling_rounds", rounds},
              {"grad_norm", norm}, {"lr", lr}, {"rollout_s", gen_s}, {"step_s", step_s}};
    if (ranks > 1) m["ranks"] = ranks;
    learner.log(0, m);
    if (root) fmt::print(stderr, "\rstep {}/{} reward {:.3f} acc {:.3f} len {:.1f} kl {:.4f} zero-var {:.2f} {:.1f}s", done, r.steps,
               reward_sum / n, correct / n, length_sum / n, st.kl, double(zero_var) / double(groups_drawn), step_s);
    if (r.eval_problems > 0 && (done % r.eval_every == 0 || done == r.steps)) evaluate(done);
    if (done % r.checkpoint_every == 0 || done == r.steps) {
      learner.save(done, {{"seed", r.seed}, {"kind", "grpo"}});
    }
  }
  if (root) fmt::print(stderr, "\ngrpo: {:.1f} s; metrics in {}\n", learner.elapsed(), (fs::path(r.out) / "metrics.jsonl").string());
  return 0;
}

}  // namespace baleine::rl
