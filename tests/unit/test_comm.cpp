// The communicator: block partitions, every collective against its definition (sums in rank order, bit for
// bit), and ZeRO-1's sharded AdamW against the full one. Runs in one process and, registered again by CMake,
// under mpirun with 3 ranks.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/comm.h"
#include "models/config.h"
#include "models/model.h"
#include "models/weights.h"
#include "train/adamw.h"

using namespace baleine;

namespace {
// Values of very different magnitudes, so that a different summation order gives different bits.
float value(int rank, int64_t i) { return float(std::pow(10.0, double((rank * 7 + i) % 9) - 4.0)) * float(1 + (i % 5)) / 3.0f; }
}  // namespace

TEST(Comm, BlocksPartitionEveryBuffer) {
  Communicator& c = world();
  for (int64_t n : {0, 1, 2, 31, 32, 33, 1000}) {
    int64_t next = 0, smallest = INT64_MAX, largest = 0;
    for (int r = 0; r < c.size(); ++r) {
      auto [b, e] = c.block_range(n, r);
      EXPECT_EQ(b, next) << n;
      next = e;
      smallest = std::min(smallest, e - b), largest = std::max(largest, e - b);
    }
    EXPECT_EQ(next, n);
    EXPECT_LE(largest - smallest, 1) << n;
  }
}

TEST(Comm, SumsAreTheRankOrderSumBitForBit) {
  Communicator& c = world();
  for (int64_t n : {1, 31, 32, 33, 257}) {
    std::vector<float> x(static_cast<size_t>(n)), expect(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      x[size_t(i)] = value(c.rank(), i);
      float s = value(0, i);
      for (int r = 1; r < c.size(); ++r) s += value(r, i);
      expect[size_t(i)] = s;
    }
    std::vector<float> all = x;
    c.allreduce_sum(all.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(all[size_t(i)], expect[size_t(i)]) << "n " << n << " i " << i;
    std::vector<float> block = x;
    c.reduce_scatter_sum(block.data(), n);
    auto [b, e] = c.block_range(n, c.rank());
    for (int64_t i = b; i < e; ++i) ASSERT_EQ(block[size_t(i)], expect[size_t(i)]);
    c.allgather_blocks(block.data(), n);
    EXPECT_EQ(block, expect);
  }
  std::vector<double> d = {double(c.rank()) + 0.5, 1e-3};
  c.allreduce_sum(d.data(), 2);
  EXPECT_DOUBLE_EQ(d[0], c.size() * (c.size() - 1) / 2.0 + 0.5 * c.size());
  std::vector<int64_t> k = {c.rank(), 1}, m = {c.rank(), -c.rank()};
  c.allreduce_sum(k.data(), 2);
  c.allreduce_max(m.data(), 2);
  EXPECT_EQ(k, (std::vector<int64_t>{int64_t(c.size()) * (c.size() - 1) / 2, c.size()}));
  EXPECT_EQ(m, (std::vector<int64_t>{c.size() - 1, 0}));
  std::vector<uint64_t> ids = c.allgather(uint64_t(100 + c.rank()));
  ASSERT_EQ(int(ids.size()), c.size());
  for (int r = 0; r < c.size(); ++r) EXPECT_EQ(ids[size_t(r)], uint64_t(100 + r));
  int64_t from_root = c.rank() == 0 ? 42 : -1;
  c.broadcast(&from_root, sizeof from_root, 0);
  EXPECT_EQ(from_root, 42);
  c.barrier();
}

// ZeRO-1 cuts the moments anywhere, through parameters: shards [b, e) stepped on the same gradients give, on
// their elements, exactly the weights the full optimizer gives.
TEST(Comm, ShardedAdamWEqualsTheFullOneOnItsElements) {
  std::ifstream in(std::string(BALEINE_TEST_DATA) + "/parity/v3/config.json");
  ModelConfig cfg = parse_model_config(nlohmann::json::parse(in), "v3 fixture");
  auto full_model = create_model(cfg);
  init_params_random(*full_model, 5, 0.05f);
  full_model->prepare();
  train::AdamW full;
  full.attach(*full_model);
  nn::Gradients grads;
  grads.allocate(*full_model);
  for (int64_t i = 0; i < grads.size(); ++i) grads.flat()[i] = value(1, i) * ((i % 3) ? 1.0f : -1.0f);
  const int64_t n = grads.size();
  for (int step = 0; step < 3; ++step) full.step(grads, 1e-2);
  std::vector<float> want(static_cast<size_t>(n));
  for (const auto& [name, slot] : grads.names())
    std::memcpy(want.data() + grads.offset_of(slot), slot->raw(), slot->nbytes());

  for (auto [b, e] : {std::pair<int64_t, int64_t>{0, n / 3 + 1}, {n / 3 + 1, n - 17}, {n - 17, n}}) {
    auto model = create_model(cfg);
    init_params_random(*model, 5, 0.05f);
    model->prepare();
    train::AdamW shard;
    shard.attach(*model, b, e);
    EXPECT_EQ(shard.layout_size(), n);
    EXPECT_THROW(shard.state(), std::exception);  // a shard cannot be checkpointed as is
    nn::Gradients g;
    g.allocate(*model);
    std::memcpy(g.flat(), grads.flat(), size_t(n) * 4);
    for (int step = 0; step < 3; ++step) shard.step(g, 1e-2);
    for (const auto& [name, slot] : g.names()) {
      const int64_t off = g.offset_of(slot);
      for (int64_t i = std::max(off, b); i < std::min(off + slot->numel(), e); ++i)
        ASSERT_EQ(slot->f32()[i - off], want[size_t(i)]) << name << " element " << i - off << " shard [" << b << ", " << e << ")";
    }
  }
}

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  init_world(&argc, &argv);
  if (world().rank() != 0) ::testing::GTEST_FLAG(output) = "";
  const int rc = RUN_ALL_TESTS();
  finalize_world();
  return rc;
}
