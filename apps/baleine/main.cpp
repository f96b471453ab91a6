// apps/baleine/main.cpp — the `baleine` executable: git-style subcommands, one file each (cmd_*.cpp).
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <unistd.h>

#include "apps/baleine/command.h"
#include "core/check.h"
#include "core/comm.h"
#include "core/threadpool.h"
#include "ops/ops.h"

namespace baleine::app {

std::vector<Command>& commands() {
  static std::vector<Command> list;
  return list;
}

std::vector<int32_t> parse_int_list(const std::string& text, const std::string& flag) {
  std::vector<int32_t> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == ',')) ++i;
    if (i >= text.size()) break;
    size_t j = i;
    if (text[j] == '-') ++j;
    while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
    BALEINE_CHECK(j > i && (j == text.size() || text[j] == ',' || text[j] == ' ') && !(j == i + 1 && text[i] == '-'),
                  "{}: expected comma-separated integers, got '{}'", flag, text);
    long long v = std::stoll(text.substr(i, j - i));
    BALEINE_CHECK(v >= INT32_MIN && v <= INT32_MAX, "{}: {} is out of range", flag, v);
    out.push_back(int32_t(v));
    i = j;
  }
  BALEINE_CHECK(!out.empty(), "{}: no integers given", flag);
  return out;
}

}  // namespace baleine::app

int main(int argc, char** argv) {
  using namespace baleine::app;
  // Weak OpenBLAS kernels for this CPU (see ops::openblas_better_coretype): run again with the right ones.
  // OPENBLAS_CORETYPE being set afterwards also guarantees this happens at most once.
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr) {
    if (const char* core = baleine::ops::openblas_better_coretype()) {
      ::setenv("OPENBLAS_CORETYPE", core, 1);
      ::execv("/proc/self/exe", argv);  // returns only on failure: carry on with the loaded kernels
    }
  }
  CLI::App app{"baleine: DeepSeek-V3-architecture models, from pretraining to serving"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "baleine 0.1.0");
  int threads = 0;
  app.add_option("--threads", threads, "Worker threads (0 = every core)")->check(CLI::NonNegativeNumber);

  auto& list = commands();
  std::sort(list.begin(), list.end(), [](const Command& a, const Command& b) { return a.name < b.name; });
  std::function<int()> action;
  std::vector<std::pair<CLI::App*, std::function<int()>>> actions;
  for (auto& c : list) {
    CLI::App* sub = app.add_subcommand(c.name, c.description);
    actions.emplace_back(sub, c.setup(*sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // Under mpirun every rank runs this same command line; only the training commands cooperate across ranks.
  static const std::vector<std::string> distributed = {"train", "sft", "grpo", "distill"};
  auto fail = [](const std::string& message) {
    if (baleine::world().size() > 1) baleine::world().abort(message);  // ends every rank, naming this one
    fmt::print(stderr, "error: {}\n", message);
    return 1;
  };
  int rc = 0;
  try {
    baleine::init_world(&argc, &argv);
    const int ranks = baleine::world().size();
    for (auto& [sub, fn] : actions)
      if (sub->parsed() && ranks > 1 &&
          std::find(distributed.begin(), distributed.end(), sub->get_name()) == distributed.end()) {
        if (baleine::world().rank() == 0)
          fmt::print(stderr, "error: 'baleine {}' runs in one process; under mpirun only {} run on several ranks\n",
                     sub->get_name(), fmt::join(distributed, ", "));
        baleine::finalize_world();
        return 1;
      }
    if (threads == 0 && ranks > 1) {  // share the node's cores between the ranks started on it
      const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
      const int per_node = local ? std::max(1, std::atoi(local)) : 1;
      threads = std::max(1, int(std::thread::hardware_concurrency()) / per_node);
    }
    if (threads > 0) baleine::ThreadPool::set_global_threads(threads);
    for (auto& [sub, fn] : actions)
      if (sub->parsed()) rc = fn();
  } catch (const baleine::Error& e) {
    return fail(e.what());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  baleine::finalize_world();
  return rc;
}
