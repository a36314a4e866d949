// Consumer of the ring example, and its checker: every message must carry the
// next sequence number and that number's payload, so a message lost,
// duplicated or reordered (across any number of checkpoints, restores and
// migrations) stops it with exit status 4 and a message saying which.
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "ckpt/ckpt.hpp"
#include "ring.h"

int main(int argc, char** argv) {
  ckpt::Session s(argc, argv);
  std::uint64_t count = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20000;
  unsigned delay_us = argc > 2 ? static_cast<unsigned>(std::strtoul(argv[2], nullptr, 10)) : 0;
  ckpt::Group& g = s.group();
  std::uint64_t* ring = g.array<std::uint64_t>("ring", 2 * examples::kRingSlots);
  ckpt::Semaphore& empty = g.semaphore("empty", examples::kRingSlots);
  ckpt::Semaphore& full = g.semaphore("full", 0);
  auto& next = s.var("next", std::uint64_t{0});
  auto& digest = s.var("digest", std::uint64_t{1469598103934665603ULL});

  while (next < count) {
    s.safepoint();
    full.wait();
    std::uint32_t slot = static_cast<std::uint32_t>(next % examples::kRingSlots);
    std::uint64_t seq = ring[2 * slot], payload = ring[2 * slot + 1];
    if (seq != next || payload != examples::RingPayload(seq)) {
      std::fprintf(stderr,
                   "ring_consumer: CHECK FAILED: expected message %" PRIu64 ", slot %u holds %" PRIu64
                   " (payload %s) -> a message was %s\n",
                   next.get(), slot, seq, payload == examples::RingPayload(seq) ? "intact" : "corrupt",
                   seq < next ? "duplicated or the ring went back" : "lost or reordered");
      return 4;
    }
    digest = (digest ^ payload) * 1099511628211ULL;
    empty.post();
    ++next;
    if (delay_us != 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
  }
  std::printf("result ring messages=%" PRIu64 " digest=%016" PRIx64 " in-order=yes\n", next.get(),
              digest.get());
  return 0;
}
