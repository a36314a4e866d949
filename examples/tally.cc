// A tally kept in group objects: every round takes a token from a semaphore,
// adds to a shared typed array under a group mutex and meets the others at a
// barrier. Run alone it is a group of one (its objects are private to the
// process, and its checkpoints must still hold them); under `ckpt run -n N`
// the members share them.
//
//   tally [ROUNDS] [TOKENS]                 (defaults 40 and 100)
//   tally --ckpt-stop-at 25 ; tally --ckpt-resume auto
//   ckpt run -n 2 -- tally
//
// Rank 0 prints one line; without interruption, and after any number of
// checkpoints and resumes, "acc[0]=ROUNDS*N acc[1]=... tokens left=TOKENS-ROUNDS*N".
#include <cinttypes>
#include <cstdio>
#include <cstdlib>

#include "ckpt/ckpt.hpp"

int main(int argc, char** argv) {
  ckpt::Session s(argc, argv);
  std::uint64_t rounds = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 40;
  std::uint32_t tokens0 = argc > 2 ? static_cast<std::uint32_t>(std::strtoul(argv[2], nullptr, 10)) : 100;
  ckpt::Group& g = s.group();
  std::int64_t* acc = g.array<std::int64_t>("acc", 2);
  ckpt::Semaphore& tokens = g.semaphore("tokens", tokens0);
  ckpt::Mutex& lock = g.mutex("lock");
  ckpt::Barrier& round_done = g.barrier("round");
  auto& round = s.var("round", std::uint64_t{0});

  while (round < rounds) {
    s.safepoint();
    tokens.wait();
    lock.lock();
    acc[0] += 1;
    acc[1] += static_cast<std::int64_t>(round * round);
    lock.unlock();
    round_done.wait();
    ++round;
  }
  round_done.wait();  // every member is done before rank 0 reads the totals
  if (g.rank() == 0) {
    std::printf("result tally acc[0]=%" PRId64 " acc[1]=%" PRId64 " tokens left=%u\n", acc[0], acc[1],
                tokens.value());
  }
  return 0;
}
