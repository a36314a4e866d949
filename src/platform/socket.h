// Loopback TCP sockets: the channel between a group's coordinator and its
// members, the same on Linux and Windows (Winsock, also under Wine). A Socket
// may be read by one thread while another writes; Shutdown() from any thread
// unblocks a pending Recv.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "util/status.h"

namespace ckpt::platform {

class Socket {
 public:
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  Status SendAll(const void* data, std::size_t size);
  // Reads exactly `size` bytes; NotFound("... closed") when the peer closed
  // first; Timeout when they did not all arrive within `timeout_ms` (-1: no limit).
  Status RecvAll(void* data, std::size_t size, int timeout_ms = -1);
  // Waits up to `timeout_ms` (-1: forever) until a read would not block
  // (data, or the peer closed); Timeout when nothing came.
  Status WaitReadable(int timeout_ms);
  // Reads what has arrived, at most `size` bytes, waiting up to `timeout_ms`
  // (-1: no limit) for the first; 0 when the peer closed its side.
  Result<std::size_t> RecvSome(void* data, std::size_t size, int timeout_ms = -1);
  void Shutdown();
  // Ends this side's sending (the peer reads the end); receiving goes on.
  void ShutdownWrite();

 private:
  friend class Listener;
  friend Result<std::unique_ptr<Socket>> ConnectLoopback(int port);
  explicit Socket(std::intptr_t fd) : fd_(fd) {}
  std::intptr_t fd_;
};

class Listener {
 public:
  // Listens on 127.0.0.1 at a port the OS picks.
  static Result<std::unique_ptr<Listener>> Loopback();
  ~Listener();
  int port() const { return port_; }
  // Waits up to `timeout_ms` for a connection; Timeout when none came.
  Result<std::unique_ptr<Socket>> Accept(int timeout_ms);

 private:
  Listener(std::intptr_t fd, int port) : fd_(fd), port_(port) {}
  std::intptr_t fd_;
  int port_;
};

Result<std::unique_ptr<Socket>> ConnectLoopback(int port);

}  // namespace ckpt::platform
