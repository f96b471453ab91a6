#include "core/comm.h"

#include <cstdlib>
#include <memory>

#include <fmt/format.h>

#include "core/check.h"

namespace baleine {

namespace {

// One process: every collective is the identity.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  void allreduce_sum(float*, int64_t) override {}
  void allreduce_sum(double*, int64_t) override {}
  void allreduce_sum(int64_t*, int64_t) override {}
  void allreduce_max(int64_t*, int64_t) override {}
  void reduce_scatter_sum(float*, int64_t) override {}
  void allgather_blocks(float*, int64_t) override {}
  std::vector<uint64_t> allgather(uint64_t value) override { return {value}; }
  void broadcast(void*, int64_t, int root) override { BALEINE_CHECK(root == 0, "broadcast from rank {} of 1", root); }
  void barrier() override {}
  [[noreturn]] void abort(const std::string& message) override {
    fmt::print(stderr, "error: {}\n", message);
    std::exit(1);
  }
};

std::unique_ptr<Communicator>& world_slot() {
  static std::unique_ptr<Communicator> w = std::make_unique<LocalCommunicator>();
  return w;
}

}  // namespace

#ifdef BALEINE_HAVE_MPI
std::unique_ptr<Communicator> make_mpi_communicator(int* argc, char*** argv);  // comm_mpi.cpp
void finalize_mpi();
#endif

Communicator& world() { return *world_slot(); }

bool mpi_available() {
#ifdef BALEINE_HAVE_MPI
  return true;
#else
  return false;
#endif
}

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

void init_world(int* argc, char*** argv) {
  if (!launched_by_mpi()) return;
#ifdef BALEINE_HAVE_MPI
  world_slot() = make_mpi_communicator(argc, argv);
#else
  (void)argc, (void)argv;
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (size != nullptr && std::atoi(size) > 1)
    BALEINE_FAIL("started by mpirun with {} ranks, but this baleine was built without MPI (install libopenmpi-dev and "
                 "rebuild: scripts/setup.sh installs it)", size);
#endif
}

void finalize_world() {
#ifdef BALEINE_HAVE_MPI
  if (world().backend() == "mpi") finalize_mpi();
#endif
}

}  // namespace baleine
