// Producer of the ring example: sends messages 0..COUNT-1 through a ring
// buffer in a shared segment, guarded by two counting semaphores ("empty"
// slots and "full" slots). Run with ring_consumer as one group:
//
//   ckpt run --spec ring.group      (ring_producer COUNT [DELAY_US] / ring_consumer COUNT [DELAY_US])
#include <chrono>
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

  // Invariant at every quiescent point (the safepoint, the wait): messages
  // 0..next-1 are in the ring or consumed, and nothing of message `next` is.
  while (next < count) {
    s.safepoint();
    empty.wait();
    std::uint32_t slot = static_cast<std::uint32_t>(next % examples::kRingSlots);
    ring[2 * slot] = next;
    ring[2 * slot + 1] = examples::RingPayload(next);
    full.post();
    ++next;
    if (delay_us != 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
  }
  std::printf("producer sent %llu messages\n", static_cast<unsigned long long>(next));
  return 0;
}
