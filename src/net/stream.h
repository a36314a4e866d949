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
  // While `fd` >= 0, a Read also ends (with an error saying it was
  // interrupted) when `fd` becomes readable: the engine's DumpInterruptFd(),
  // so a Ctrl-C reaches a dump worker that waits on the target. -1: off.
  virtual void SetInterruptFd(int fd) { (void)fd; }
  // The descriptors under the stream, if it is plain descriptors (an ssh
  // pipe, `ckpt receive`'s standard input and output; not TLS): another
  // process may then speak on it while this one does not (post-copy).
  virtual bool Fds(int* read_fd, int* write_fd) const {
    (void)read_fd;
    (void)write_fd;
    return false;
  }
};

// A Stream over two descriptors (POSIX file descriptors; on Windows, C
// runtime descriptors such as 0 and 1, switched to binary mode). With `own`
// they are closed with the stream.
std::unique_ptr<Stream> NewFdStream(int read_fd, int write_fd, std::string describe, bool own);

// The protocol on this process's standard input and output (`ckpt
// receive`): standard output moves to a descriptor of its own and
// descriptor 1 then points at standard error, so that nothing printed by
// accident can damage a frame.
std::unique_ptr<Stream> StdioStream(std::string describe);

// A one-way channel for a small JSON text from a forked child (the engine's
// dump worker) to its parent.
class ResultPipe {
 public:
  ResultPipe();
  ~ResultPipe();
  bool ok() const { return rfd_ >= 0; }
  void Put(const std::string& text);  // in the child
  std::string Take();                 // in the parent, once the child is done

 private:
  int rfd_ = -1, wfd_ = -1;
};

}  // namespace ckpt::net
