#include "engine/unix_sockets.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>

#include "engine/inet_sockets.h"
#include "engine/proc.h"
#include "engine/sock_diag.h"
#include "engine/sock_options.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

namespace {

constexpr int kListen = 10;  // TCP_LISTEN, as sock_diag reports a listening Unix socket

const char* TypeName(int type) {
  switch (type) {
    case SOCK_STREAM:
      return "stream";
    case SOCK_DGRAM:
      return "datagram";
    case SOCK_SEQPACKET:
      return "seqpacket";
  }
  return "raw";
}

// "a TCP socket", "a netlink socket"...: a socket sock_diag did not list as Unix.
std::string DescribeOtherSocket(pid_t pid, int fd) {
  auto s = CopyFdOf(pid, fd);
  if (!s.ok()) return "a socket";
  int domain = SocketOption(*s, SOL_SOCKET, SO_DOMAIN), type = SocketOption(*s, SOL_SOCKET, SO_TYPE);
  int proto = SocketOption(*s, SOL_SOCKET, SO_PROTOCOL);
  ::close(*s);
  std::string fam = domain == AF_INET ? "IPv4" : domain == AF_INET6 ? "IPv6" : "";
  if (!fam.empty() && proto == IPPROTO_TCP) return "a TCP (" + fam + ") socket";
  if (!fam.empty() && proto == IPPROTO_UDP) return "a UDP (" + fam + ") socket";
  if (domain == AF_NETLINK) return "a netlink socket";
  if (domain == AF_PACKET) return "a packet socket";
  if (domain == AF_UNIX)
    return std::string("a Unix ") + TypeName(type) + " socket of another network namespace";
  return "a socket of address family " + std::to_string(domain);
}

void ParseDiag(const unix_diag_msg* m, int len, std::map<std::uint32_t, UnixDiag>* out) {
  UnixDiag d;
  d.ino = m->udiag_ino;
  d.type = m->udiag_type;
  d.state = m->udiag_state;
  len -= static_cast<int>(NLMSG_ALIGN(sizeof *m));
  for (auto* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(m) + NLMSG_ALIGN(sizeof *m));
       RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    const char* data = static_cast<const char*>(RTA_DATA(a));
    std::size_t n = RTA_PAYLOAD(a);
    if (a->rta_type == UNIX_DIAG_NAME && n > 0) {
      d.name = data[0] == '\0' ? "@" + std::string(data + 1, n - 1) : std::string(data, strnlen(data, n));
    } else if (a->rta_type == UNIX_DIAG_PEER && n >= 4) {
      std::memcpy(&d.peer, data, 4);
    } else if (a->rta_type == UNIX_DIAG_SHUTDOWN && n >= 1) {
      d.shutdown = static_cast<std::uint8_t>(data[0]);
    } else if (a->rta_type == UNIX_DIAG_VFS && n >= sizeof(unix_diag_vfs)) {
      unix_diag_vfs v;
      std::memcpy(&v, data, sizeof v);
      d.vfs_ino = v.udiag_vfs_ino;
    } else if (a->rta_type == UNIX_DIAG_RQLEN && n >= sizeof(unix_diag_rqlen)) {
      unix_diag_rqlen q;
      std::memcpy(&q, data, sizeof q);
      d.rqueue = q.udiag_rqueue;
      d.wqueue = q.udiag_wqueue;
    }
  }
  (*out)[d.ino] = d;
}

}  // namespace

std::string SocketBlobName(std::uint32_t ino) {
  return "sock." + std::to_string(ino);
}

Result<std::map<std::uint32_t, UnixDiag>> ListUnixSockets() {
  unix_diag_req req;
  std::memset(&req, 0, sizeof req);
  req.sdiag_family = AF_UNIX;
  req.udiag_states = ~0u;
  req.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN | UDIAG_SHOW_VFS;
  std::map<std::uint32_t, UnixDiag> out;
  RETURN_IF_ERROR(SockDiagDump(&req, sizeof req, [&](const void* m, int len) {
                    ParseDiag(static_cast<const unix_diag_msg*>(m), len, &out);
                  }).WithContext("listing Unix sockets"));
  return out;
}

std::string SocketProblem(pid_t pid, int fd, std::uint32_t ino, const std::map<std::uint32_t, UnixDiag>& all,
                          const std::set<std::uint32_t>& inside, const std::vector<std::string>& external) {
  std::string what = "fd " + std::to_string(fd) + " is ";
  auto it = all.find(ino);
  if (it == all.end())
    return IsInetSocket(pid, fd) ? InetSocketProblem(pid, fd) : what + DescribeOtherSocket(pid, fd);
  const UnixDiag& d = it->second;
  std::string kind = std::string("a Unix ") + TypeName(d.type) + " socket";
  if (d.type != SOCK_STREAM && d.type != SOCK_DGRAM && d.type != SOCK_SEQPACKET) return what + kind;
  if (auto s = CopyFdOf(pid, fd); s.ok()) {
    std::string extras = SockExtrasProblem(*s);
    ::close(*s);
    if (!extras.empty()) return what + kind + " with " + extras;
  }
  if (d.state == kListen && d.name.empty()) return what + "a listening " + kind.substr(2) + " without a name";
  if (d.state == kListen && d.rqueue > 0) {
    return what + "a listening " + kind.substr(2) + " on " + d.name + " with " + std::to_string(d.rqueue) +
           " connection(s) waiting to be accepted";
  }
  if (d.state == kListen) return "";
  if (!d.name.empty() && d.peer == 0) return what + kind + " bound to " + d.name;
  if (d.peer == 0) return what + kind + " with no peer";
  auto peer = all.find(d.peer);
  std::string name = peer != all.end() ? peer->second.name : "";
  bool named = std::find(external.begin(), external.end(), name) != external.end() && !name.empty();
  bool one_way = peer == all.end() || peer->second.peer != ino;  // a datagram socket connected to a server
  if (inside.count(d.peer) == 0 || (named && one_way)) {
    if (named && d.rqueue == 0 && d.shutdown == 0) return "";
    if (named) {
      return what + kind + " connected to " + name + " outside, with " +
             (d.shutdown != 0 ? "a shutdown" : std::to_string(d.rqueue) + " bytes queued from it") +
             " (a new connection cannot carry them)";
    }
    std::string at = name.empty() ? "" : " (" + name + ")";
    return what + kind + " connected to socket:[" + std::to_string(d.peer) + "]" + at +
           ", which the dumped processes do not hold" +
           (name.empty() ? ""
                         : "; --external-unix " + name + " connects it to " + name + " again at restore");
  }
  if (one_way) return what + kind + " connected one way";
  if (d.shutdown != 0)
    return what + kind + " shut down for " +
           (d.shutdown == 3   ? "both directions"
            : d.shutdown == 1 ? "reading"
                              : "writing");
  return "";
}

Result<UnixSocket> DumpUnixSocket(pid_t pid, int fd, std::uint32_t ino, const UnixDiag& d) {
  ASSIGN_OR_RETURN(int s, CopyFdOf(pid, fd));
  UnixSocket u;
  u.fd = fd;
  u.ino = ino;
  u.peer = d.peer;
  u.type = d.type;
  u.rcvbuf = SocketOption(s, SOL_SOCKET, SO_RCVBUF);
  u.sndbuf = SocketOption(s, SOL_SOCKET, SO_SNDBUF);
  u.passcred = SocketOption(s, SOL_SOCKET, SO_PASSCRED) > 0;
  Status st = ReadSockExtras(s, pid, AF_UNIX, u.type, 0, &u.extras);
  ::close(s);
  if (!st.ok()) return st.WithContext("fd " + std::to_string(fd) + " of process " + std::to_string(pid));
  return u;
}

Result<int> ReconnectExternalUnix(const UnixSocket& u) {
  std::string what = "a Unix socket connected to " + u.peer_name;
  sockaddr_un a = {};
  a.sun_family = AF_UNIX;
  bool abstract = !u.peer_name.empty() && u.peer_name[0] == '@';
  std::string path = abstract ? std::string(1, '\0') + u.peer_name.substr(1) : u.peer_name;
  if (path.empty() || path.size() >= sizeof a.sun_path) return InvalidArgument(what + ": bad name");
  std::memcpy(a.sun_path, path.data(), path.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
  int s = ::socket(AF_UNIX, u.type | SOCK_CLOEXEC, 0);
  if (s < 0) return PosixError("socket", what, errno);
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), len) != 0) {
    int e = errno;
    ::close(s);
    return PosixError("connect", what + (e == ECONNREFUSED || e == ENOENT ? ": nobody is there now" : ""), e);
  }
  int v = 1;
  if (u.passcred) (void)::setsockopt(s, SOL_SOCKET, SO_PASSCRED, &v, sizeof v);
  if (u.sndbuf > 0) {
    v = u.sndbuf / 2;
    (void)::setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v);
  }
  if (Status st = SetSockExtras(s, u.extras, what); !st.ok()) {
    ::close(s);
    return st;
  }
  return s;
}

Result<UnixListener> DumpUnixListener(pid_t pid, int fd, const UnixDiag& d) {
  ASSIGN_OR_RETURN(int s, CopyFdOf(pid, fd));
  UnixListener l;
  l.fd = fd;
  l.ino = d.ino;
  l.type = d.type;
  l.name = d.name;
  l.backlog = static_cast<std::int32_t>(d.wqueue);
  l.rcvbuf = SocketOption(s, SOL_SOCKET, SO_RCVBUF);
  l.sndbuf = SocketOption(s, SOL_SOCKET, SO_SNDBUF);
  l.passcred = SocketOption(s, SOL_SOCKET, SO_PASSCRED) > 0;
  Status extras = ReadSockExtras(s, pid, AF_UNIX, l.type, 0, &l.extras);
  ::close(s);
  if (!extras.ok())
    return extras.WithContext("fd " + std::to_string(fd) + " of process " + std::to_string(pid));
  // The socket file's owner and mode, if the path still names this socket
  // (from the process's root: /proc/PID/root).
  struct stat st;
  if (l.name[0] == '/' && ::stat((ProcPath(pid, "root") + l.name).c_str(), &st) == 0 &&
      S_ISSOCK(st.st_mode) && st.st_ino == d.vfs_ino) {
    l.mode = st.st_mode & 07777;
    l.uid = st.st_uid;
    l.gid = st.st_gid;
  }
  return l;
}

Result<int> CreateUnixListener(const UnixListener& l) {
  std::string what = "a listening Unix socket on " + l.name;
  sockaddr_un a = {};
  a.sun_family = AF_UNIX;
  bool abstract = l.name[0] == '@';
  std::string path = abstract ? std::string(1, '\0') + l.name.substr(1) : l.name;
  if (path.size() >= sizeof a.sun_path) return InvalidArgument(what + ": name too long");
  std::memcpy(a.sun_path, path.data(), path.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
  int s = ::socket(AF_UNIX, l.type | SOCK_CLOEXEC, 0);
  if (s < 0) return PosixError("socket", what, errno);
  struct stat st;
  if (!abstract && ::lstat(l.name.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    // Left by the dumped process, or is somebody listening there now?
    int probe = ::socket(AF_UNIX, l.type | SOCK_CLOEXEC, 0);
    bool live = probe >= 0 && ::connect(probe, reinterpret_cast<sockaddr*>(&a), len) == 0;
    if (probe >= 0) ::close(probe);
    if (live) {
      ::close(s);
      return FailedPrecondition(what + ": a running process listens there");
    }
    ::unlink(l.name.c_str());
  }
  Status r;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), len) != 0) r = PosixError("bind", what, errno);
  if (r.ok() && l.mode != 0 &&
      (::chmod(l.name.c_str(), l.mode) != 0 || ::chown(l.name.c_str(), l.uid, l.gid) != 0))
    r = PosixError("chmod/chown", l.name, errno);
  if (r.ok() && ::listen(s, l.backlog) != 0) r = PosixError("listen", what, errno);
  int v = 1;
  if (r.ok() && l.passcred) (void)::setsockopt(s, SOL_SOCKET, SO_PASSCRED, &v, sizeof v);
  if (r.ok()) r = SetSockExtras(s, l.extras, what);
  if (!r.ok()) {
    ::close(s);
    return r;
  }
  return s;
}

Result<std::string> PeekSocketQueue(pid_t pid, int fd) {
  ASSIGN_OR_RETURN(int s, CopyFdOf(pid, fd));
  std::string what = "socket fd " + std::to_string(fd) + " of process " + std::to_string(pid);
  int type = SocketOption(s, SOL_SOCKET, SO_TYPE);
  int old_off = SocketOption(s, SOL_SOCKET, SO_PEEK_OFF);
  int zero = 0;
  if (::setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) != 0) {
    int e = errno;
    ::close(s);
    return PosixError("setsockopt(SO_PEEK_OFF)", what, e);
  }
  std::string blob, stream;
  // Not zeroed: only what a message fills is touched (the process is frozen,
  // and on a VM every fresh page is a costly fault).
  constexpr std::size_t kBuf = 1 << 20;
  std::unique_ptr<char[]> buf(new char[kBuf]);
  Status st;
  for (int i = 0; i < (1 << 20); ++i) {
    iovec iov = {buf.get(), kBuf};
    alignas(cmsghdr) char ctl[512];
    msghdr mh = {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl;
    mh.msg_controllen = sizeof ctl;
    ssize_t n = ::recvmsg(s, &mh, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0) {
      st = PosixError("recvmsg(MSG_PEEK)", what, errno);
      break;
    }
    bool rights = (mh.msg_flags & MSG_CTRUNC) != 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c))
      rights = rights || (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS);
    if (rights) {
      st = NotSupported(what + " has file descriptors in flight (SCM_RIGHTS) in its queue");
      break;
    }
    if ((mh.msg_flags & MSG_TRUNC) != 0 || (n == 0 && type != SOCK_STREAM)) {
      st = NotSupported(what + " has a queued message of more than 1 MiB, or an empty one");
      break;
    }
    if (n == 0) break;  // a stream at its end
    if (type == SOCK_STREAM) {
      stream.append(buf.get(), static_cast<std::size_t>(n));
    } else {
      std::uint32_t len = static_cast<std::uint32_t>(n);
      blob.append(reinterpret_cast<const char*>(&len), 4);
      blob.append(buf.get(), static_cast<std::size_t>(n));
    }
  }
  (void)::setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &old_off, sizeof old_off);
  ::close(s);
  RETURN_IF_ERROR(st);
  if (!stream.empty()) {
    std::uint32_t len = static_cast<std::uint32_t>(stream.size());
    blob.append(reinterpret_cast<const char*>(&len), 4);
    blob += stream;
  }
  return blob;
}

namespace {

// Writes the messages of blob `data` (queued for the other end) into `via`.
Status Refill(int via, const std::string& data, const std::string& what) {
  int big = static_cast<int>(std::min<std::size_t>(data.size() * 2 + 65536, 1 << 30));
  (void)::setsockopt(via, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
  std::size_t off = 0;
  while (off + 4 <= data.size()) {
    std::uint32_t len;
    std::memcpy(&len, data.data() + off, 4);
    off += 4;
    if (len > data.size() - off) return Corruption(what + ": queued data truncated");
    ssize_t n = ::send(via, data.data() + off, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n != static_cast<ssize_t>(len)) {
      return PosixError("write back the queued data of", what, n < 0 ? errno : EMSGSIZE);
    }
    off += len;
  }
  return Status::Ok();
}

Status SetOptions(int s, const UnixSocket& u) {
  // getsockopt shows the doubled value the kernel keeps; set takes half.
  int rcv = u.rcvbuf / 2, snd = u.sndbuf / 2, cred = u.passcred ? 1 : 0;
  if (rcv > 0) (void)::setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv);
  if (snd > 0) (void)::setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof snd);
  if (::setsockopt(s, SOL_SOCKET, SO_PASSCRED, &cred, sizeof cred) != 0)
    return PosixError("setsockopt(SO_PASSCRED)", "socket fd " + std::to_string(u.fd), errno);
  return SetSockExtras(s, u.extras, "socket fd " + std::to_string(u.fd));
}

}  // namespace

Result<int> SocketTable::End(const UnixSocket& s, const image::ImageReader& r) {
  auto it = ends_.find(s.ino);
  if (it == ends_.end()) {
    int sv[2];
    if (::socketpair(AF_UNIX, s.type | SOCK_CLOEXEC, 0, sv) != 0)
      return PosixError("socketpair", "socket:[" + std::to_string(s.ino) + "]", errno);
    ends_[s.ino] = sv[0];
    ends_[s.peer] = sv[1];
    // What was queued for each end is written back through the other.
    for (auto [ino, via] : {std::pair<std::uint32_t, int>{s.ino, sv[1]}, {s.peer, sv[0]}}) {
      const auto* b = r.Find(kSecBlob, SocketBlobName(ino));
      if (b == nullptr) continue;
      ASSIGN_OR_RETURN(std::string data, r.ReadSection(*b));
      RETURN_IF_ERROR(Refill(via, data, "socket:[" + std::to_string(ino) + "]"));
    }
    it = ends_.find(s.ino);
  }
  RETURN_IF_ERROR(SetOptions(it->second, s));
  return it->second;
}

void SocketTable::CloseAll() {
  for (const auto& [ino, fd] : ends_) ::close(fd);
  ends_.clear();
}

}  // namespace ckpt::engine
