// TCP and UDP sockets that carry no connection: a listening TCP socket with
// no connection waiting to be accepted, and a bound, unconnected UDP socket
// with nothing queued. Dump: on a copy of the descriptor (pidfd_getfd), its
// address, options and state; inet_diag (netlink) gives a listening
// socket's backlog. Restore: a new socket with the same options, bound to
// the same address (which must be free: the dumped process is gone, or the
// restore runs in another network namespace) and listening with the same
// backlog. A connected UDP socket is connected again; an established TCP
// connection is recorded here (address, peer, options) and moved by
// tcp_repair.h under the network lock (net_lock.h). TCP connections in
// other states, and queued connections or datagrams, are refused, named.
// Stateless.
#pragma once

#include <sys/types.h>

#include <string>

#include "engine/model.h"
#include "util/status.h"

namespace ckpt::engine {

// "" if socket descriptor `fd` of `pid` is a TCP or UDP socket the engine
// saves, else what it is ("a TCP (IPv4) socket connected to
// 10.0.0.2:5000", ...). Reads it through a copy; takes nothing from it.
std::string InetSocketProblem(pid_t pid, int fd);

// True if descriptor `fd` of `pid` is an IPv4 or IPv6 socket.
bool IsInetSocket(pid_t pid, int fd);

// Reads the TCP or UDP socket `fd` of frozen process `pid` (inode `ino`).
Result<InetSocket> DumpInetSocket(pid_t pid, int fd, std::uint64_t ino);

// In ckpt: a new socket like `s`, bound (and listening), close-on-exec.
Result<int> CreateInetSocket(const InetSocket& s);

// Reads into `u` the options DumpInetSocket keeps besides the address ones
// (keepalive and its timers, linger, user timeout, cork, OOB inline, TOS or
// traffic class, priority, mark, freebind, transparent, defer-accept, fast
// open, not-sent low water mark, congestion control) from socket `s` of
// process `pid`.
void ReadKeptOptions(int s, pid_t pid, InetSocket* u);
// Sets them on restored socket `s` (`what` names it in errors): each one the
// dump recorded, or the restore fails naming it.
Status SetKeptOptions(int s, const InetSocket& u, const std::string& what);

}  // namespace ckpt::engine
