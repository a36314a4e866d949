// TCP sockets with BSD calls (Linux): connect with a deadline, listen,
// accept, keep-alive.
#include "net/tcp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ckpt::net::tcp {

namespace {

std::string AddrText(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
  }
  return HostPort(host, port);
}

// Dead peers are noticed: keep-alive probes on idle connections, and at
// most two minutes of unacknowledged data.
void Tune(int fd) {
  int one = 1, idle = 60, intvl = 10, cnt = 6;
  unsigned user_timeout_ms = 120 * 1000;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
}

struct AddrInfo {
  addrinfo* list = nullptr;
  ~AddrInfo() {
    if (list != nullptr) ::freeaddrinfo(list);
  }
};

Status Resolve(const char* host, int port, int flags, AddrInfo* out, const std::string& what) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags;
  std::string p = std::to_string(port);
  int rc = ::getaddrinfo(host, p.c_str(), &hints, &out->list);
  if (rc != 0) return NotFound("cannot resolve " + what + ": " + ::gai_strerror(rc));
  return Status::Ok();
}

// One address: a socket connected before the deadline, or an error.
Result<int> ConnectOne(const addrinfo* ai, Deadline deadline, const std::string& what) {
  int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0) return IoError("socket for " + what + ": " + std::strerror(errno));
  std::string addr = AddrText(ai->ai_addr);
  if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
    int err = errno;
    ::close(fd);
    return IoError("connect to " + what + " (" + addr + "): " + std::strerror(err));
  }
  Status st = Wait(fd, POLLOUT, deadline, "connecting to " + what + " (" + addr + ")");
  int err = 0;
  socklen_t len = sizeof err;
  if (st.ok() && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (st.ok() && err != 0) st = IoError("connect to " + what + " (" + addr + "): " + std::strerror(err));
  if (!st.ok()) {
    ::close(fd);
    return st;
  }
  Tune(fd);
  return fd;
}

}  // namespace

Deadline After(int timeout_ms) {
  if (timeout_ms < 0) return Deadline::max();
  return Clock::now() + std::chrono::milliseconds(timeout_ms);
}

Status Wait(int fd, short events, Deadline deadline, const std::string& what) {
  while (true) {
    int wait_ms = -1;
    if (deadline != Deadline::max()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return Timeout(what + ": no answer in time");
      wait_ms = static_cast<int>(std::min<long long>(left, 1 << 30));
    }
    pollfd p = {fd, events, 0};
    int r = ::poll(&p, 1, wait_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return IoError(what + ": poll: " + std::strerror(errno));
    if (r > 0) return Status::Ok();  // ready, or an error the next call reports
  }
}

std::string HostPort(const std::string& host, int port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<int> Connect(const std::string& host, int port, int timeout_ms) {
  std::string what = HostPort(host, port);
  AddrInfo ai;
  RETURN_IF_ERROR(Resolve(host.c_str(), port, AI_ADDRCONFIG, &ai, what));
  Deadline deadline = After(timeout_ms);
  Status last = NotFound("no address for " + what);
  for (const addrinfo* p = ai.list; p != nullptr; p = p->ai_next) {
    auto fd = ConnectOne(p, deadline, what);
    if (fd.ok()) return fd;
    last = fd.status();
  }
  return last;
}

Result<int> Listen(const std::string& addr, int port, int* bound_port) {
  bool any = addr.empty() || addr == "*";
  std::string what = HostPort(any ? "*" : addr, port);
  AddrInfo ai;
  RETURN_IF_ERROR(Resolve(any ? nullptr : addr.c_str(), port, AI_PASSIVE, &ai, what));
  Status last = NotFound("no address for " + what);
  for (const addrinfo* p = ai.list; p != nullptr; p = p->ai_next) {
    int fd = ::socket(p->ai_family, p->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, p->ai_protocol);
    if (fd < 0) {
      last = IoError("socket for " + what + ": " + std::strerror(errno));
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, p->ai_addr, p->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
      last = IoError("listen on " + what + ": " + std::strerror(errno));
      ::close(fd);
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    *bound_port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                           : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return fd;
  }
  return last;
}

Result<int> Accept(int listen_fd, int timeout_ms, std::string* peer) {
  RETURN_IF_ERROR(Wait(listen_fd, POLLIN, After(timeout_ms), "waiting for a connection"));
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
      return Timeout("the connection went away");
    return IoError(std::string("accept: ") + std::strerror(errno));
  }
  *peer = AddrText(reinterpret_cast<sockaddr*>(&ss));
  Tune(fd);
  return fd;
}

void Linger(int fd, int ms) {
  ::shutdown(fd, SHUT_WR);
  Deadline deadline = After(ms);
  char buf[4096];
  while (Wait(fd, POLLIN, deadline, "linger").ok()) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return;
  }
}

Status SetBlocking(int fd, bool blocking) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0) return IoError(std::string("fcntl: ") + std::strerror(errno));
  fl = blocking ? (fl & ~O_NONBLOCK) : (fl | O_NONBLOCK);
  if (::fcntl(fd, F_SETFL, fl) != 0) return IoError(std::string("fcntl: ") + std::strerror(errno));
  return Status::Ok();
}

void Close(int fd) {
  if (fd >= 0) ::close(fd);
}

}  // namespace ckpt::net::tcp
