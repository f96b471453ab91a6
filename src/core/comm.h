// core/comm.h — the communicator between training processes: a local one (a single process, every collective a
// no-op) and an MPI one (Open MPI, when baleine is built with it and started by mpirun). Every reduction sums in
// rank order 0, 1, ..., N-1, whatever the message timing, so a run's numbers depend only on its world size.
// defines: Communicator, CommStats, world, init_world, finalize_world, mpi_available
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace baleine {

struct CommStats {
  double seconds = 0;      // wall time spent inside collectives (waiting included)
  uint64_t bytes_sent = 0;  // payload this rank handed to the network layer
  uint64_t calls = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "local" or "mpi"

  // Sums `data` element-wise over ranks; every rank gets the sum. Equivalent to reduce_scatter followed by
  // allgather of the blocks (block_range below).
  virtual void allreduce_sum(float* data, int64_t n) = 0;
  virtual void allreduce_sum(double* data, int64_t n) = 0;
  virtual void allreduce_sum(int64_t* data, int64_t n) = 0;
  virtual void allreduce_max(int64_t* data, int64_t n) = 0;
  // Sums `data` over ranks into this rank's block [block_range(n, rank())) of `data`; the other elements are
  // left unspecified. (ZeRO-1: each rank reduces only what it updates.)
  virtual void reduce_scatter_sum(float* data, int64_t n) = 0;
  // Every rank contributes its block of `data` (block_range); afterwards every rank holds all blocks.
  virtual void allgather_blocks(float* data, int64_t n) = 0;
  // Every rank's value, indexed by rank.
  virtual std::vector<uint64_t> allgather(uint64_t value) = 0;
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // Ends every rank with `message` (printed by this rank, which names itself); never returns.
  [[noreturn]] virtual void abort(const std::string& message) = 0;

  // The block of an n-element buffer rank `r` owns in reduce_scatter_sum / allgather_blocks: contiguous,
  // sizes differing by at most one, in rank order.
  std::pair<int64_t, int64_t> block_range(int64_t n, int r) const {
    const int64_t w = size(), base = n / w, extra = n % w;
    const int64_t begin = r * base + std::min<int64_t>(r, extra);
    return {begin, begin + base + (r < extra ? 1 : 0)};
  }
  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }

 protected:
  CommStats stats_;
};

// The process's communicator: local unless init_world found an MPI launch.
Communicator& world();
// Call once at program start: under mpirun (and with MPI compiled in) initialises MPI; otherwise local. Under an
// mpirun launch without MPI compiled in, fails with an error that says so.
void init_world(int* argc, char*** argv);
void finalize_world();
// Whether this build has the MPI communicator.
bool mpi_available();
// Whether the environment says an MPI launcher started this process (Open MPI, PMIx or a PMI launcher).
bool launched_by_mpi();

}  // namespace baleine
