// infer/sampler.h — choosing the next token from logits as a chain of stages:
//   penalties -> logit bias -> constraint mask -> temperature -> top-k -> top-p -> min-p -> draw.
// Each stage narrows or reshapes a candidate list; the draw takes the argmax (temperature 0) or a seeded draw.
// defines: SamplingParams, apply_penalties, TokenConstraint, Candidates, SamplerContext, SamplerStage,
//          PenaltyStage, LogitBiasStage, ConstraintStage, TemperatureStage, TopKStage, TopPStage, MinPStage, SamplerChain,
//          speculative_verify, Sampler
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace baleine {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (argmax, lowest id on ties)
  int64_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // nucleus; 1: off
  float min_p = 0.0f;        // drop tokens with p < min_p · p_max; 0: off
  uint64_t seed = 0;
  // OpenAI penalties on tokens already generated: logit -= presence·[count > 0] + frequency·count.
  float presence_penalty = 0.0f, frequency_penalty = 0.0f;
  // CTRL / llama.cpp repetition penalty on tokens seen in prompt or output: logit / r if > 0 else logit · r; 1: off.
  float repetition_penalty = 1.0f;
  // OpenAI logit_bias: (token id, bias in [-100, 100]) added to the logit before temperature; -100 bans the token
  // outright (its logit becomes -inf), since an additive -100 need not beat a very confident logit.
  std::vector<std::pair<int32_t, float>> logit_bias;
};

// Applies the penalties of `p` in place. `generated`: completion tokens so far; `context`: prompt + completion
// (for the repetition penalty).
void apply_penalties(std::span<float> logits, const SamplingParams& p, std::span<const int32_t> generated,
                     std::span<const int32_t> context);

// A sampler stage that restricts which tokens may come next (JSON / grammar constrained decoding). The engine
// calls mask() on the logits before sampling (set disallowed entries to -inf) and accept() with the chosen token.
// Called only from the engine thread.
class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  virtual void mask(std::span<float> logits) = 0;
  virtual void accept(int32_t token) = 0;
  // True once the constrained text is complete (the engine then finishes with FinishReason::Stop).
  virtual bool complete() const { return false; }
};

// The candidate list a chain works on. Before any truncating stage it is the whole vocabulary in id order
// (logits[i] belongs to id i, `ids` empty); truncating stages sort it by logit (descending, lower id first on
// ties) and keep a prefix, filling `ids`.
struct Candidates {
  std::vector<float> logits;
  std::vector<int32_t> ids;  // empty: identity (full vocabulary, id order)
  bool sorted = false;

  int64_t size() const { return int64_t(logits.size()); }
  int32_t id(int64_t i) const { return ids.empty() ? int32_t(i) : ids[size_t(i)]; }
  // Sorts by logit (descending, lower id first on ties); fills ids.
  void sort();
  void truncate(int64_t n);
  // Softmax of the current logits, in candidate order (double).
  std::vector<double> probabilities() const;
};

// What stages may look at besides the logits.
struct SamplerContext {
  std::span<const int32_t> generated;  // completion tokens so far
  std::span<const int32_t> context;    // prompt + completion
};

class SamplerStage {
 public:
  virtual ~SamplerStage() = default;
  virtual const char* name() const = 0;
  virtual void apply(Candidates& c, const SamplerContext& ctx) = 0;
};

// Presence / frequency / repetition penalties (full-vocabulary stage: must run before truncation).
class PenaltyStage final : public SamplerStage {
 public:
  explicit PenaltyStage(const SamplingParams& p) : p_(p) {}
  const char* name() const override { return "penalties"; }
  void apply(Candidates& c, const SamplerContext& ctx) override;
 private:
  SamplingParams p_;
};
// Adds the request's logit_bias (full-vocabulary stage); a bias of -100 or less bans the token. Ids outside the
// vocabulary are ignored here (the server refuses them with a 400 before generation).
class LogitBiasStage final : public SamplerStage {
 public:
  explicit LogitBiasStage(std::vector<std::pair<int32_t, float>> bias) : bias_(std::move(bias)) {}
  const char* name() const override { return "logit_bias"; }
  void apply(Candidates& c, const SamplerContext& ctx) override;
 private:
  std::vector<std::pair<int32_t, float>> bias_;
};
// Masks disallowed tokens with -inf (full-vocabulary stage).
class ConstraintStage final : public SamplerStage {
 public:
  explicit ConstraintStage(std::shared_ptr<TokenConstraint> c) : c_(std::move(c)) {}
  const char* name() const override { return "constraint"; }
  void apply(Candidates& c, const SamplerContext& ctx) override;
 private:
  std::shared_ptr<TokenConstraint> c_;
};
// logits /= temperature (temperature > 0).
class TemperatureStage final : public SamplerStage {
 public:
  explicit TemperatureStage(float t) : t_(t) {}
  const char* name() const override { return "temperature"; }
  void apply(Candidates& c, const SamplerContext& ctx) override;
 private:
  float t_;
};
// Keeps the k most likely.
class TopKStage final : public SamplerStage {
 public:
  explicit TopKStage(int64_t k) : k_(k) {}
  const char* name() const override { return "top_k"; }
  void apply(Candidates& c, const SamplerContext& ctx) override;
 private:
  int64_t k_;
};
// Keeps the smallest prefix (by probability) whose mass reaches p (at least one token).
class TopPStage final : public SamplerStage {
 public:
  explicit TopPStage(float p) : p_(p) {}
  const char* name() const override { return "top_p"; }
  void apply(Candidates& c, const SamplerContext& ctx) override;
 private:
  float p_;
};
// Keeps tokens with p >= min_p · p_max.
class MinPStage final : public SamplerStage {
 public:
  explicit MinPStage(float p) : p_(p) {}
  const char* name() const override { return "min_p"; }
  void apply(Candidates& c, const SamplerContext& ctx) override;
 private:
  float p_;
};

// Stages in order, then the draw: greedy (argmax of the final logits, lowest id on ties) or a draw from their
// softmax with the chain's seeded generator.
class SamplerChain {
 public:
  SamplerChain(bool greedy, uint64_t seed) : greedy_(greedy), rng_(seed) {}
  // The standard chain for `p`: [penalties] [logit bias] [constraint] temperature top-k top-p min-p (stages that are off
  // are left out).
  static SamplerChain standard(const SamplingParams& p, std::shared_ptr<TokenConstraint> constraint = nullptr,
                               bool with_penalties = true);
  void add(std::unique_ptr<SamplerStage> s) { stages_.push_back(std::move(s)); }
  const std::vector<std::unique_ptr<SamplerStage>>& stages() const { return stages_; }
  // Runs the stages on `logits` and draws a token.
  int32_t sample(std::span<const float> logits, const SamplerContext& ctx = {});
  // The candidates after the stages (no draw), for tests and speculative sampling.
  Candidates filter(std::span<const float> logits, const SamplerContext& ctx = {});
  // Draws from prepared candidates (greedy or seeded softmax draw).
  int32_t draw(const Candidates& c);
  std::mt19937_64& rng() { return rng_; }
  bool greedy() const { return greedy_; }

 private:
  bool greedy_;
  std::mt19937_64 rng_;
  std::vector<std::unique_ptr<SamplerStage>> stages_;
};

// Speculative sampling's acceptance test (Leviathan et al. 2023, Chen et al. 2023): `draft` was drawn from q;
// it is kept with probability min(1, p(draft) / q(draft)), otherwise a token is drawn from the residual
// max(0, p - q) renormalised. The result is distributed exactly as p. p, q: probabilities over the vocabulary.
int32_t speculative_verify(std::span<const double> p, std::span<const double> q, int32_t draft, std::mt19937_64& rng);

// temperature -> top-k -> top-p -> min-p -> draw (penalties and constraints applied by the caller).
class Sampler {
 public:
  explicit Sampler(const SamplingParams& p) : chain_(SamplerChain::standard(p, nullptr, false)) {}
  int32_t sample(std::span<const float> logits) { return chain_.sample(logits); }
  SamplerChain& chain() { return chain_; }

 private:
  SamplerChain chain_;
};

}  // namespace baleine
