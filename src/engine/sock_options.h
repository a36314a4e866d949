// The rest of a socket's state, beyond its address and the options its
// kind's code keeps by name (inet_sockets.h, unix_sockets.h):
// - every option of one table (SOL_SOCKET for all sockets; IP, IPv6, UDP
//   and TCP ones for those) whose value differs from a new socket's of the
//   same family, type and protocol, as getsockopt gives it; restored with
//   setsockopt from the same bytes. SO_BINDTODEVICE, receive and send
//   timeouts, broadcast, timestamps, multicast TTL, loop and interface,
//   the IP_PKTINFO family of ancillary switches, path-MTU discovery, UDP
//   GSO/GRO and cork, among others;
// - multicast group memberships of UDP sockets, with their source filters
//   (found by asking the socket, MCAST_MSFILTER, about each group its
//   network namespace has joined: /proc/PID/net/igmp, igmp6); restored on
//   the device of the same name;
// - a classic BPF socket filter (SO_GET_FILTER), and SO_LOCK_FILTER.
// What cannot be read is refused before anything is frozen: an eBPF socket
// filter (SO_ATTACH_BPF), a kernel TLS or other upper-layer protocol on a
// TCP connection (TCP_ULP); TCP MD5 keys are refused by inet_sockets.cc
// (inet_diag shows them). Stateless.
#pragma once

#include <sys/types.h>

#include <string>

#include "engine/model.h"
#include "util/status.h"

namespace ckpt::engine {

// "" if socket `s` (a copy of one of `pid`'s descriptors) holds nothing
// ReadSockExtras cannot read, else what it holds ("an eBPF socket filter
// (SO_ATTACH_BPF), which ckpt cannot read back").
std::string SockExtrasProblem(int s);

// Reads into `x` what socket `s` of process `pid` has beyond its kind's
// own options (above). `family`, `type`, `protocol`: the socket's. An eBPF
// filter is refused here too; the callers have asked SockExtrasProblem
// (through InetSocketProblem, SocketProblem) before.
Status ReadSockExtras(int s, pid_t pid, int family, int type, int protocol, SockExtras* x);

// Sets them on restored socket `s` (`what` names it in errors): each one,
// or the restore fails naming it.
Status SetSockExtras(int s, const SockExtras& x, const std::string& what);

}  // namespace ckpt::engine
