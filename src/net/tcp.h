// TCP sockets for the ckpt:// transport (Linux): the plumbing under tls.cc.
// Every descriptor is non-blocking and close-on-exec; waits are poll()
// against a deadline.
#pragma once

#include <chrono>
#include <string>

#include "util/status.h"

namespace ckpt::net::tcp {

using Clock = std::chrono::steady_clock;
// A deadline; Clock::time_point::max() for none.
using Deadline = Clock::time_point;
Deadline After(int timeout_ms);  // timeout_ms < 0: no deadline

// Waits until `fd` is ready for `events` (POLLIN/POLLOUT); Timeout at the
// deadline (the message says `what`).
Status Wait(int fd, short events, Deadline deadline, const std::string& what);

// "host:port" ("[v6]:port").
std::string HostPort(const std::string& host, int port);

// A connected socket to host:port (every address the name resolves to, in
// turn), keep-alive and TCP_USER_TIMEOUT set so a vanished peer is noticed.
Result<int> Connect(const std::string& host, int port, int timeout_ms);

// A listening socket on addr:port ("" or "*": every address); `*bound_port`
// gets the port (useful with port 0).
Result<int> Listen(const std::string& addr, int port, int* bound_port);

// The next connection (Timeout when none came in `timeout_ms`); `*peer`
// gets its address, "10.0.0.1:40112".
Result<int> Accept(int listen_fd, int timeout_ms, std::string* peer);

// Ends our side gracefully: FIN, then reads and drops what the peer still
// sends for up to `ms` or until it closes — closing with unread bytes would
// send a reset that can destroy our last words (a TLS alert, an ERROR
// frame) before the peer reads them.
void Linger(int fd, int ms);

// Blocking mode on or off.
Status SetBlocking(int fd, bool blocking);

void Close(int fd);

}  // namespace ckpt::net::tcp
