// rl/distill.h — sequence-level distillation data: teacher samples on a task suite, rejection-sampled with the
// graders, written as chat conversations for `baleine sft` (works across tokenizers: only text crosses over).
// Logit distillation is `baleine distill --config` (rl/sft.h with a teacher; rl/objectives.h for the losses).
// defines: RejectionConfig, RejectionStats, rejection_sample
#pragma once
#include <string>

#include "rl/eval.h"

namespace baleine::rl {

struct RejectionConfig {
  Split split = Split::Train;
  int64_t problems = 1000, offset = 0, k = 4, keep_per_problem = 1;
  SamplingParams sampling;
  PromptFormat format = PromptFormat::Plain;  // how the teacher is prompted
};
struct RejectionStats {
  int64_t problems = 0, samples = 0, correct = 0, kept = 0, problems_with_one = 0;
};
// Appends one JSONL conversation per kept sample to `out`: user = chat_user_message(problem), assistant =
// "<think>\n" + the teacher's reasoning + "</think>\n<answer>" + its (correct) answer + "</answer>".
// Batched: the teacher completes all k samples of up to kEvalBatchSamples / k problems per call; samples after a
// problem's keep_per_problem-th kept one are not looked at (as if never drawn), so the output is the same as
// one at a time. One at a time (CompleteFn, e.g. an endpoint): a problem's sampling stops at its last kept one.
RejectionStats rejection_sample(const BatchCompleteFn& teacher, const TaskSuite& suite, const RejectionConfig& cfg,
                                std::string& out);
RejectionStats rejection_sample(const CompleteFn& teacher, const TaskSuite& suite, const RejectionConfig& cfg,
                                std::string& out);

}  // namespace baleine::rl
