// The names of the socket options the engine keeps beyond each socket
// kind's own (sock_options.h), and text for multicast memberships: portable
// (ckpt inspect reads process images on every platform), with Linux's
// numbers, which are what images record.
#pragma once

#include <span>
#include <string>

#include "engine/model.h"

namespace ckpt::engine {

// Linux's option levels.
inline constexpr int kSolSocket = 1, kIpprotoIp = 0, kIpprotoIpv6 = 41, kIpprotoTcp = 6, kIpprotoUdp = 17;

enum class SockOptWhen : unsigned char {
  kAlways,
  kUnconnected,  // on a connection the value is the kernel's, not the program's
  kDatagram,     // not a stream socket's (the kernel sets it on accept() and refuses to set it)
};

struct SockOptSpec {
  int level;
  int name;
  const char* label;
  SockOptWhen when;
};

// Options getsockopt reads and setsockopt takes back from the same bytes,
// by level; IPPROTO_IP ones apply to IPv6 sockets too (their IPv4-mapped
// traffic). Not here: those the socket kinds keep by name (address, buffer
// sizes, reuse, keepalive and the rest of ReadKeptOptions, SO_PASSCRED of
// Unix sockets), read-only ones, and values the kernel changes by itself
// on a connection (its MSS, window clamp, incoming CPU).
std::span<const SockOptSpec> SockOptSpecs();

// The option's name ("SO_BINDTODEVICE"), or "option LEVEL/NAME".
std::string SockOptName(int level, int name);

// A multicast group membership as text ("239.1.2.3 on eth0, not from
// 10.0.0.2"), for ckpt inspect and messages.
std::string McastGroupText(const McastGroup& g);

}  // namespace ckpt::engine
