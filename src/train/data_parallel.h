// train/data_parallel.h — the pieces of data-parallel training over a Communicator, shared by the training
// loops: agreeing that every rank runs the same thing, the global gradient norm over reduced blocks, ZeRO-1's
// weight all-gather and moment gather for checkpoints.
// defines: fingerprint, check_fingerprints_agree, check_same_run_on_every_rank, check_same_layout_on_every_rank,
//          broadcast_training_state, keep_moment_shard, reduce_gradients,
//          clip_grad_norm_by_blocks, allgather_updated_weights, gather_moments
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/comm.h"
#include "models/model.h"
#include "nn/grads.h"
#include "train/adamw.h"

namespace baleine::train {

struct TrainRecipe;
struct TrainOptions;
struct TokenData;

// FNV-1a over bytes, chained from `seed`.
uint64_t fingerprint(const void* data, size_t bytes, uint64_t seed = 0xcbf29ce484222325ull);

// Fails on every rank, naming the ranks that differ from rank 0, unless every rank has the same `fingerprint`.
void check_fingerprints_agree(Communicator& comm, uint64_t value, const std::string& what);
// The recipe file's JSON and the --resume / --zero flags must be the same on every rank.
void check_same_recipe_on_every_rank(Communicator& comm, const std::string& recipe_path, bool resume, bool zero1);
// The recipe file's JSON, the options and the training data must be the same on every rank.
void check_same_run_on_every_rank(Communicator& comm, const TrainRecipe& recipe, const TrainOptions& options,
                                  const TokenData& data);
// Every rank must lay out the same parameters (names and sizes) in the same order.
void check_same_layout_on_every_rank(Communicator& comm, const nn::Gradients& grads);

// After rank 0 restored a checkpoint (or every rank initialised the model and attached a full optimizer):
// checks every rank lays out the same parameters, then gives every rank rank 0's weights and, when `resumed`,
// its moments, step counters (start_step, the optimizer's) and elapsed time. Calls model.prepare().
void broadcast_training_state(Communicator& comm, CausalLM& model, const nn::Gradients& layout, AdamW& opt,
                              bool resumed, int64_t& start_step, double& elapsed_s);
// ZeRO-1: replaces the full optimizer `opt` by this rank's block of it (moments and step count kept).
void keep_moment_shard(Communicator& comm, CausalLM& model, AdamW& opt, const AdamWConfig& config);
// Sums the gradients over ranks: all of them, or with zero1 only this rank's block (reduce-scatter).
void reduce_gradients(Communicator& comm, nn::Gradients& grads, bool zero1);

// clip_grad_norm over gradients already summed across ranks: rank r squares its block of the flat arena, the
// partial sums are added in rank order, so plain data parallel and ZeRO-1 (where only that block is valid) get
// the same norm. Scales the valid gradients so the norm is at most max_norm; returns the norm before clipping.
double clip_grad_norm_by_blocks(Communicator& comm, nn::Gradients& grads, double max_norm);

// ZeRO-1 after the optimizer updated this rank's block: every rank receives every block of the weights.
void allgather_updated_weights(Communicator& comm, const nn::Gradients& layout, std::vector<float>& scratch);

// ZeRO-1: the full moments assembled from every rank's shard (every rank takes part; each gets the full copy).
AdamW gather_moments(Communicator& comm, CausalLM& model, AdamW& shard, const AdamWConfig& config);

}  // namespace baleine::train
