// The ring buffer shared by ring_producer and ring_consumer: a typed segment
// of 64-bit words (so it converts between byte orders), two words per slot:
// the message's sequence number and a payload derived from it.
#pragma once

#include <cstdint>

namespace examples {

inline constexpr std::uint32_t kRingSlots = 16;

// The payload of message `seq`: a 64-bit mix (splitmix64), so a stale or
// misplaced slot cannot pass for the right one.
inline std::uint64_t RingPayload(std::uint64_t seq) {
  std::uint64_t z = seq + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace examples
