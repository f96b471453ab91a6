// The MPI communicator (Open MPI). Built only when CMake finds MPI. Reductions are written on top of
// all-to-all and all-gather, with the sum done by the owner of each block in rank order, so the result is the
// same bits whatever the arrival order (MPI_Allreduce leaves the order to the implementation).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "core/check.h"
#include "core/comm.h"

namespace baleine {

namespace {

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void allreduce_sum(float* data, int64_t n) override {
    reduce_scatter_sum(data, n);
    allgather_blocks(data, n);
  }
  void allreduce_sum(double* data, int64_t n) override { small_sum(data, n, MPI_DOUBLE); }
  void allreduce_sum(int64_t* data, int64_t n) override { small_sum(data, n, MPI_INT64_T); }
  void allreduce_max(int64_t* data, int64_t n) override {
    Timer t(stats_, uint64_t(n) * 8);
    MPI_Allreduce(MPI_IN_PLACE, data, count(n), MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);  // max has no order issue
  }

  void reduce_scatter_sum(float* data, int64_t n) override {
    if (size_ == 1) return;
    Timer t(stats_, uint64_t(n - block_len(n, rank_)) * 4);
    // Block r of every rank's buffer goes to rank r, which sums the pieces in rank order.
    const size_t w = size_t(size_);
    std::vector<int> send_counts(w), send_displs(w), recv_counts(w), recv_displs(w);
    const auto [mine_begin, mine_end] = block_range(n, rank_);
    const int64_t mine = mine_end - mine_begin;
    for (int r = 0; r < size_; ++r) {
      auto [b, e] = block_range(n, r);
      send_counts[size_t(r)] = count(e - b), send_displs[size_t(r)] = count(b);
      recv_counts[size_t(r)] = count(mine), recv_displs[size_t(r)] = count(mine * r);
    }
    scratch_.resize(size_t(mine * size_));
    MPI_Alltoallv(data, send_counts.data(), send_displs.data(), MPI_FLOAT, scratch_.data(), recv_counts.data(),
                  recv_displs.data(), MPI_FLOAT, MPI_COMM_WORLD);
    float* out = data + mine_begin;
    for (int64_t i = 0; i < mine; ++i) out[i] = scratch_[size_t(i)];
    for (int r = 1; r < size_; ++r) {
      const float* piece = scratch_.data() + mine * r;
      for (int64_t i = 0; i < mine; ++i) out[i] += piece[i];
    }
  }

  void allgather_blocks(float* data, int64_t n) override {
    if (size_ == 1) return;
    Timer t(stats_, uint64_t(block_len(n, rank_)) * 4 * uint64_t(size_ - 1));
    const size_t w = size_t(size_);
    std::vector<int> counts(w), displs(w);
    for (int r = 0; r < size_; ++r) {
      auto [b, e] = block_range(n, r);
      counts[size_t(r)] = count(e - b), displs[size_t(r)] = count(b);
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, counts.data(), displs.data(), MPI_FLOAT, MPI_COMM_WORLD);
  }

  std::vector<uint64_t> allgather(uint64_t value) override {
    Timer t(stats_, 8);
    std::vector<uint64_t> all(static_cast<size_t>(size_));
    MPI_Allgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD);
    return all;
  }

  void broadcast(void* data, int64_t bytes, int root) override {
    Timer t(stats_, rank_ == root ? uint64_t(bytes) : 0);
    char* p = static_cast<char*>(data);
    for (int64_t at = 0; at < bytes; at += INT_MAX / 2) {
      const int64_t len = std::min<int64_t>(INT_MAX / 2, bytes - at);
      MPI_Bcast(p + at, int(len), MPI_BYTE, root, MPI_COMM_WORLD);
    }
  }

  void barrier() override {
    Timer t(stats_, 0);
    MPI_Barrier(MPI_COMM_WORLD);
  }

  [[noreturn]] void abort(const std::string& message) override {
    fmt::print(stderr, "error (rank {} of {}): {}\n", rank_, size_, message);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);
  }

 private:
  struct Timer {
    CommStats& s;
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
    Timer(CommStats& stats, uint64_t bytes) : s(stats) { s.bytes_sent += bytes, ++s.calls; }
    ~Timer() { s.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
  };
  static int count(int64_t n) {
    BALEINE_CHECK(n >= 0 && n <= INT_MAX, "a message of {} elements exceeds MPI's int count", n);
    return int(n);
  }
  int64_t block_len(int64_t n, int r) const {
    auto [b, e] = block_range(n, r);
    return e - b;
  }
  // Short vectors (losses, counts): every rank gathers all contributions and sums them in rank order.
  template <class T> void small_sum(T* data, int64_t n, MPI_Datatype type) {
    if (size_ == 1 || n == 0) return;
    Timer t(stats_, uint64_t(n) * sizeof(T) * uint64_t(size_ - 1));
    std::vector<T> all(size_t(n * size_));
    MPI_Allgather(data, count(n), type, all.data(), count(n), type, MPI_COMM_WORLD);
    for (int64_t i = 0; i < n; ++i) {
      T s = all[size_t(i)];
      for (int r = 1; r < size_; ++r) s += all[size_t(r * n + i)];
      data[i] = s;
    }
  }

  int rank_ = 0, size_ = 1;
  std::vector<float> scratch_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) MPI_Init(argc, argv);
  return std::make_unique<MpiCommunicator>();
}

void finalize_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

}  // namespace baleine
