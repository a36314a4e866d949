// Loopback TCP sockets on POSIX.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "platform/posix_util.h"
#include "platform/socket.h"

namespace ckpt::platform {

namespace {
sockaddr_in LoopbackAddr(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}
void NoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}
}  // namespace

Socket::~Socket() {
  if (fd_ >= 0) ::close(static_cast<int>(fd_));
}

Status Socket::SendAll(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::send(static_cast<int>(fd_), p, size, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return PosixError("send to", "loopback peer", errno);
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

Status Socket::RecvAll(void* data, std::size_t size, int timeout_ms) {
  char* p = static_cast<char*>(data);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (size > 0) {
    if (timeout_ms >= 0) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      Status st = WaitReadable(left.count() < 0 ? 0 : static_cast<int>(left.count()));
      if (st.code() == Code::kTimeout) return Timeout("the peer sent an incomplete message");
      RETURN_IF_ERROR(st);
    }
    ssize_t n = ::recv(static_cast<int>(fd_), p, size, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return PosixError("receive from", "loopback peer", errno);
    }
    if (n == 0) return NotFound("the peer closed the connection");
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

Result<std::size_t> Socket::RecvSome(void* data, std::size_t size, int timeout_ms) {
  if (timeout_ms >= 0) {
    Status st = WaitReadable(timeout_ms);
    if (st.code() == Code::kTimeout) return Timeout("nothing arrived from the loopback peer");
    RETURN_IF_ERROR(st);
  }
  for (;;) {
    ssize_t n = ::recv(static_cast<int>(fd_), data, size, 0);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return PosixError("receive from", "loopback peer", errno);
  }
}

void Socket::Shutdown() {
  ::shutdown(static_cast<int>(fd_), SHUT_RDWR);
}

void Socket::ShutdownWrite() {
  ::shutdown(static_cast<int>(fd_), SHUT_WR);
}

Result<std::unique_ptr<Listener>> Listener::Loopback() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return PosixError("create", "socket", errno);
  sockaddr_in a = LoopbackAddr(0);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0) {
    int e = errno;
    ::close(fd);
    return PosixError("listen on", "127.0.0.1", e);
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return std::unique_ptr<Listener>(new Listener(fd, ntohs(a.sin_port)));
}

Listener::~Listener() {
  ::close(static_cast<int>(fd_));
}

Status Socket::WaitReadable(int timeout_ms) {
  pollfd pfd{static_cast<int>(fd_), POLLIN, 0};
  for (;;) {
    int r = ::poll(&pfd, 1, timeout_ms);
    if (r > 0) return Status::Ok();
    if (r == 0) return Timeout("nothing to read");
    if (errno != EINTR) return PosixError("wait for", "data", errno);
  }
}

Result<std::unique_ptr<Socket>> Listener::Accept(int timeout_ms) {
  pollfd pfd{static_cast<int>(fd_), POLLIN, 0};
  int r = ::poll(&pfd, 1, timeout_ms);
  if (r == 0 || (r < 0 && errno == EINTR)) return Timeout("no connection");
  if (r < 0) return PosixError("wait for", "connections", errno);
  int fd = ::accept4(static_cast<int>(fd_), nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return PosixError("accept", "connection", errno);
  NoDelay(fd);
  return std::unique_ptr<Socket>(new Socket(fd));
}

Result<std::unique_ptr<Socket>> ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return PosixError("create", "socket", errno);
  sockaddr_in a = LoopbackAddr(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    int e = errno;
    ::close(fd);
    return PosixError("connect to", "127.0.0.1:" + std::to_string(port), e);
  }
  NoDelay(fd);
  return std::unique_ptr<Socket>(new Socket(fd));
}

}  // namespace ckpt::platform
