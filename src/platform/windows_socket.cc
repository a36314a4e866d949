// Loopback TCP sockets on Windows (Winsock 2).
#include <winsock2.h>
#include <ws2tcpip.h>

#include <chrono>

#include "platform/socket.h"
#include "platform/windows_util.h"

namespace ckpt::platform {

namespace {
Status WsaError(const std::string& op, const std::string& obj) {
  return WindowsError(op, obj, static_cast<unsigned long>(WSAGetLastError()));
}
bool Startup() {
  static bool ok = [] {
    WSADATA d;
    return WSAStartup(MAKEWORD(2, 2), &d) == 0;
  }();
  return ok;
}
sockaddr_in LoopbackAddr(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<u_short>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}
SOCKET S(std::intptr_t fd) {
  return static_cast<SOCKET>(fd);
}
void NoDelay(SOCKET s) {
  BOOL one = TRUE;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof one);
}
}  // namespace

Socket::~Socket() {
  closesocket(S(fd_));
}

Status Socket::SendAll(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    int chunk = size > (1u << 30) ? (1 << 30) : static_cast<int>(size);
    int n = send(S(fd_), p, chunk, 0);
    if (n == SOCKET_ERROR) return WsaError("send to", "loopback peer");
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
    int chunk = size > (1u << 30) ? (1 << 30) : static_cast<int>(size);
    int n = recv(S(fd_), p, chunk, 0);
    if (n == SOCKET_ERROR) return WsaError("receive from", "loopback peer");
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
  int chunk = size > (1u << 30) ? (1 << 30) : static_cast<int>(size);
  int n = recv(S(fd_), static_cast<char*>(data), chunk, 0);
  if (n == SOCKET_ERROR) return WsaError("receive from", "loopback peer");
  return static_cast<std::size_t>(n);
}

void Socket::Shutdown() {
  shutdown(S(fd_), SD_BOTH);
}

void Socket::ShutdownWrite() {
  shutdown(S(fd_), SD_SEND);
}

Result<std::unique_ptr<Listener>> Listener::Loopback() {
  if (!Startup()) return IoError("start Winsock: WSAStartup failed");
  SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  if (s == INVALID_SOCKET) return WsaError("create", "socket");
  sockaddr_in a = LoopbackAddr(0);
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(s, 64) != 0) {
    Status st = WsaError("listen on", "127.0.0.1");
    closesocket(s);
    return st;
  }
  int len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  return std::unique_ptr<Listener>(new Listener(static_cast<std::intptr_t>(s), ntohs(a.sin_port)));
}

Listener::~Listener() {
  closesocket(S(fd_));
}

Status Socket::WaitReadable(int timeout_ms) {
  fd_set set;
  FD_ZERO(&set);
  FD_SET(S(fd_), &set);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  int r = select(0, &set, nullptr, nullptr, timeout_ms < 0 ? nullptr : &tv);
  if (r == 0) return Timeout("nothing to read");
  if (r == SOCKET_ERROR) return WsaError("wait for", "data");
  return Status::Ok();
}

Result<std::unique_ptr<Socket>> Listener::Accept(int timeout_ms) {
  fd_set set;
  FD_ZERO(&set);
  FD_SET(S(fd_), &set);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  int r = select(0, &set, nullptr, nullptr, &tv);
  if (r == 0) return Timeout("no connection");
  if (r == SOCKET_ERROR) return WsaError("wait for", "connections");
  SOCKET c = accept(S(fd_), nullptr, nullptr);
  if (c == INVALID_SOCKET) return WsaError("accept", "connection");
  NoDelay(c);
  return std::unique_ptr<Socket>(new Socket(static_cast<std::intptr_t>(c)));
}

Result<std::unique_ptr<Socket>> ConnectLoopback(int port) {
  if (!Startup()) return IoError("start Winsock: WSAStartup failed");
  SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  if (s == INVALID_SOCKET) return WsaError("create", "socket");
  sockaddr_in a = LoopbackAddr(port);
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    Status st = WsaError("connect to", "127.0.0.1:" + std::to_string(port));
    closesocket(s);
    return st;
  }
  NoDelay(s);
  return std::unique_ptr<Socket>(new Socket(static_cast<std::intptr_t>(s)));
}

}  // namespace ckpt::platform
