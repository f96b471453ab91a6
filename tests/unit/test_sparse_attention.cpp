// DeepSeek Sparse Attention ops (V3.2): attention over an index list, its paged form, and layernorm, against the
// scalar references and against dense attention (every visible position listed) on awkward sizes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "core/check.h"
#include "core/threadpool.h"
#include "ops/ops.h"
#include "ops_test_util.h"

using namespace baleine;
using namespace baleine::ops;

namespace {

using test::randv;

class Sparse : public test::BackendTest {};
INSTANTIATE_TEST_SUITE_P(Backends, Sparse, ::testing::ValuesIn(test::backends()), test::backend_param_name);

AttentionArgs gqa_args(int64_t n_q, int64_t n_kv, int64_t H, int64_t G, int64_t qk, int64_t vd) {
  AttentionArgs a;
  a.n_q = n_q, a.n_kv = n_kv, a.kv_offset = n_kv - n_q, a.n_heads = H, a.n_kv_heads = G, a.qk_dim = qk, a.v_dim = vd;
  a.q_stride = H * qk, a.q_head_stride = qk;
  a.k_stride = G * qk, a.k_head_stride = qk, a.v_stride = G * vd, a.v_head_stride = vd;
  a.out_stride = H * vd, a.out_head_stride = vd, a.scale = 0.3f;
  return a;
}

// A random top-k per query among its visible positions, sorted ascending (what the model passes).
void random_selection(int64_t n_q, int64_t n_kv, int64_t k, uint32_t seed, std::vector<int32_t>& idx,
                      std::vector<int32_t>& cnt) {
  std::mt19937 rng(seed);
  idx.assign(size_t(n_q * k), -7);  // padding past count[t] must never be read
  cnt.resize(size_t(n_q));
  for (int64_t t = 0; t < n_q; ++t) {
    const int64_t vis = n_kv - n_q + t + 1;
    std::vector<int32_t> all(static_cast<size_t>(vis));
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    const int64_t n = std::min(k, vis);
    std::sort(all.begin(), all.begin() + n);
    std::copy(all.begin(), all.begin() + n, idx.begin() + t * k);
    cnt[size_t(t)] = int32_t(n);
  }
}

}  // namespace

// Listing every visible position is dense causal attention (the oracle of both ops).
TEST_P(Sparse, EveryPositionListedIsDenseAttention) {
  uint32_t seed = 10;
  for (auto [qk, vd] : {std::pair<int64_t, int64_t>{1, 1}, {31, 33}, {32, 32}, {33, 31}, {64, 17}})
    for (auto [H, G] : {std::pair<int64_t, int64_t>{1, 1}, {4, 2}, {6, 1}, {8, 1}})
      for (auto [n_q, n_kv] : {std::pair<int64_t, int64_t>{1, 1}, {1, 34}, {5, 5}, {4, 11}, {33, 40}}) {
        AttentionArgs a = gqa_args(n_q, n_kv, H, G, qk, vd);
        const auto q = randv(size_t(n_q * H * qk), seed++, -2, 2), k = randv(size_t(n_kv * G * qk), seed++),
                   v = randv(size_t(n_kv * G * vd), seed++);
        std::vector<int32_t> idx(static_cast<size_t>(n_q * n_kv)), cnt(static_cast<size_t>(n_q));
        for (int64_t t = 0; t < n_q; ++t) {
          cnt[size_t(t)] = int32_t(a.kv_offset + t + 1);
          std::iota(idx.begin() + t * n_kv, idx.begin() + t * n_kv + cnt[size_t(t)], 0);
        }
        std::vector<float> dense(size_t(n_q * H * vd)), sparse(dense.size());
        reference::attention_causal(dense.data(), q.data(), k.data(), v.data(), a);
        attention_sparse(sparse.data(), q.data(), k.data(), v.data(), SparseIndex{idx.data(), cnt.data(), n_kv}, a);
        for (size_t i = 0; i < dense.size(); ++i) ASSERT_NEAR(sparse[i], dense[i], 1e-5) << qk << " " << H << " " << n_q;
      }
}

// A real subset: the fast op equals the scalar oracle, and the paged op (f32 / bf16 / int8 rows, block sizes 1, 3,
// 16, blocks out of order, MLA latent rows where key and value share the row) equals the contiguous one on the
// decoded rows. Threads 1 and 2 give identical bits.
TEST_P(Sparse, SubsetMatchesReferenceContiguousAndPaged) {
  uint32_t seed = 500;
  for (KvDType dt : {KvDType::F32, KvDType::BF16, KvDType::Int8})
    for (int64_t bs : {1, 3, 16})
      for (auto [n_q, n_kv, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 40, 7}, {9, 33, 4}, {32, 32, 31}, {3, 5, 8},
                                     {1, 2000, 1500}})  // the last: one query split across threads (decode)
        for (bool mla : {false, true}) {
          const int64_t H = mla ? 6 : 8, G = mla ? 1 : 2, qk = mla ? 48 : 33, vd = mla ? 40 : 31;
          const int64_t row = mla ? qk : G * (qk + vd), rb = kv_row_bytes(dt, row);
          AttentionArgs a = gqa_args(n_q, n_kv, H, G, qk, vd);
          if (mla) a.k_head_stride = a.v_head_stride = 0;
          a.k_stride = a.v_stride = row;
          const auto rows = randv(size_t(n_kv * row), seed++), q = randv(size_t(n_q * H * qk), seed++, -2, 2);
          std::vector<int32_t> idx, cnt;
          random_selection(n_q, n_kv, k, seed++, idx, cnt);
          const SparseIndex sel{idx.data(), cnt.data(), k};
          const int64_t nb = (n_kv + bs - 1) / bs;
          std::vector<char> pool(size_t(nb * bs * rb), 0);
          std::vector<const void*> blocks(static_cast<size_t>(nb));
          for (int64_t b = 0; b < nb; ++b) blocks[size_t(b)] = pool.data() + (nb - 1 - b) * bs * rb;
          std::vector<float> decoded(rows.size());
          for (int64_t s = 0; s < n_kv; ++s) {
            char* dst = const_cast<char*>(static_cast<const char*>(blocks[size_t(s / bs)])) + (s % bs) * rb;
            kv_encode_row(dt, rows.data() + s * row, row, dst);
            kv_decode_row(dt, dst, row, decoded.data() + s * row);
          }
          const PagedKv kv{blocks.data(), bs, row, 0, mla ? 0 : G * qk, dt};
          const float* kptr = decoded.data();
          const float* vptr = decoded.data() + kv.v_offset;
          std::vector<float> want(size_t(n_q * H * vd)), contiguous = want, paged = want, paged2 = want;
          reference::attention_sparse(want.data(), q.data(), kptr, vptr, sel, a);
          attention_sparse(contiguous.data(), q.data(), kptr, vptr, sel, a);
          ThreadPool::set_global_threads(2);
          attention_sparse_paged(paged.data(), q.data(), kv, sel, a);
          ThreadPool::set_global_threads(1);
          attention_sparse_paged(paged2.data(), q.data(), kv, sel, a);
          ThreadPool::set_global_threads(0);
          for (size_t i = 0; i < want.size(); ++i) {
            ASSERT_NEAR(contiguous[i], want[i], 1e-5) << kv_dtype_name(dt) << " n_q=" << n_q << " mla=" << mla;
            ASSERT_NEAR(paged[i], want[i], 1e-5) << kv_dtype_name(dt) << " bs=" << bs << " n_q=" << n_q << " mla=" << mla;
            ASSERT_EQ(paged[i], paged2[i]) << "thread count changed a result";
          }
        }
}

TEST_P(Sparse, BadIndexListsFailClearly) {
  AttentionArgs a = gqa_args(2, 4, 1, 1, 4, 4);
  std::vector<float> q(8), k(16), v(16), out(8);
  std::vector<int32_t> idx = {0, 1, 2, 3}, cnt = {2, 2};
  EXPECT_NO_THROW(attention_sparse(out.data(), q.data(), k.data(), v.data(), SparseIndex{idx.data(), cnt.data(), 2}, a));
  idx[3] = 4;  // == n_kv
  EXPECT_THROW(attention_sparse(out.data(), q.data(), k.data(), v.data(), SparseIndex{idx.data(), cnt.data(), 2}, a), Error);
  idx[3] = -1;
  EXPECT_THROW(attention_sparse(out.data(), q.data(), k.data(), v.data(), SparseIndex{idx.data(), cnt.data(), 2}, a), Error);
  idx[3] = 3;
  cnt[0] = 0;  // a query that attends to nothing has no softmax
  EXPECT_THROW(attention_sparse(out.data(), q.data(), k.data(), v.data(), SparseIndex{idx.data(), cnt.data(), 2}, a), Error);
  cnt[0] = 3;  // more than the stride
  EXPECT_THROW(attention_sparse(out.data(), q.data(), k.data(), v.data(), SparseIndex{idx.data(), cnt.data(), 2}, a), Error);
}

TEST(Reference, LayerNormByHand) {
  const float x[2][4] = {{1, 2, 3, 4}, {-1, -1, -1, -1}};
  const float w[4] = {1, 2, 1, 1}, b[4] = {0, 0, 0.5f, 0};
  float y[2][4];
  layernorm(&y[0][0], &x[0][0], w, b, 2, 4, 1e-6f);
  const double sd = std::sqrt(1.25 + 1e-6);  // mean 2.5, biased variance 1.25
  EXPECT_NEAR(y[0][0], -1.5 / sd, 1e-6);
  EXPECT_NEAR(y[0][1], 2 * -0.5 / sd, 1e-6);
  EXPECT_NEAR(y[0][2], 0.5 / sd + 0.5, 1e-6);
  EXPECT_NEAR(y[0][3], 1.5 / sd, 1e-6);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[1][i], b[i], 1e-6);  // a constant row normalises to zero
}
