// A member for the group benchmarks (bench/group_bench.py): PRIVATE_MIB of
// its own state (a vector<double>), a shared typed segment of SHARED_KIB,
// and a ping-pong with its partner through two semaphores each iteration.
// Runs until the coordinator stops it (ckpt run --stop-after K).
//
//   group_member PRIVATE_MIB SHARED_KIB
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ckpt/ckpt.hpp"

int main(int argc, char** argv) {
  ckpt::Session s(argc, argv);
  std::size_t priv = (argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 16) << 20;
  std::size_t shared = (argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 64) << 10;
  ckpt::Group& g = s.group();
  double* seg = g.array<double>("data", shared / sizeof(double));
  ckpt::Semaphore& ping = g.semaphore("ping", 0);
  ckpt::Semaphore& pong = g.semaphore("pong", 0);
  auto& state = s.var("state", std::vector<double>(priv / sizeof(double), 1.0));
  auto& iter = s.var("iter", std::uint64_t{0});
  std::size_t n_shared = shared / sizeof(double);
  for (;; ++iter) {
    s.safepoint();
    state[iter % state.size()] += 1.0;
    if (g.rank() == 0) {
      seg[iter % n_shared] = static_cast<double>(iter);
      ping.post();
      pong.wait();
    } else {
      ping.wait();
      pong.post();
    }
  }
}
