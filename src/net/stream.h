// A reliable byte stream to a migration peer: the pipes of an ssh child,
// the standard input and output of `ckpt receive`, a TLS connection. One
// thread reads while at most one other writes.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "util/status.h"

namespace ckpt::net {

class Stream {
 public:
  virtual ~Stream() = default;
  // Writes all `size` bytes.
  virtual Status Write(const void* data, std::size_t size) = 0;
  // Reads exactly `size` bytes. NotFound ("... closed the connection") when
  // the stream ends first; Timeout when they did not all come within
  // `timeout_ms` (-1: no limit).
  virtual Status Read(void* data, std::size_t size, int timeout_ms = -1) = 0;
  // No more writes: the peer reads the end of the stream.
  virtual void CloseWrite() = 0;
  // "ssh://host", "ckpt://host:port (CN=...)": for messages.
  virtual std::string Describe() const = 0;
};

// A Stream over two descriptors (POSIX file descriptors; on Windows, C
// runtime descriptors such as 0 and 1, switched to binary mode). With `own`
// they are closed with the stream.
std::unique_ptr<Stream> NewFdStream(int read_fd, int write_fd, std::string describe, bool own);

}  // namespace ckpt::net
