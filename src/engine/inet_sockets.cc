#include "engine/inet_sockets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "engine/net_lock.h"
#include "engine/proc.h"
#include "engine/sock_diag.h"
#include "engine/sock_options.h"
#include "engine/tcp_repair.h"
#include "platform/env.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

namespace {

constexpr int kTcpListen = 10;

std::string Kind(int domain, int proto) {
  std::string fam = domain == AF_INET6 ? "IPv6" : "IPv4";
  return std::string(proto == IPPROTO_TCP   ? "a TCP ("
                     : proto == IPPROTO_UDP ? "a UDP ("
                                            : "a raw (") +
         fam + ") socket";
}

// The backlog of listening socket `ino` (inet_diag: its wqueue), or -1.
int ListenBacklog(int family, std::uint64_t ino) {
  inet_diag_req_v2 req;
  std::memset(&req, 0, sizeof req);
  req.sdiag_family = static_cast<std::uint8_t>(family);
  req.sdiag_protocol = IPPROTO_TCP;
  req.idiag_states = 1u << kTcpListen;
  int backlog = -1;
  Status st = SockDiagDump(&req, sizeof req, [&](const void* m, int) {
    auto* d = static_cast<const inet_diag_msg*>(m);
    if (d->idiag_inode == ino) backlog = static_cast<int>(d->idiag_wqueue);
  });
  return st.ok() ? backlog : -1;
}

// Whether TCP socket `ino` has TCP MD5 signature keys (TCP_MD5SIG), which
// no getsockopt reads back: inet_diag shows them (INET_DIAG_MD5SIG). One
// dump of the namespace's TCP sockets (with CAP_NET_ADMIN the kernel adds
// the keys unasked) answers for all of them and is kept
// for the dump worker's later questions; it is made again for a socket it
// did not list (created since). False where inet_diag cannot tell (a socket
// of another network namespace).
bool HasMd5Keys(std::uint64_t ino) {
  struct Seen {
    std::set<std::uint64_t> all, md5;
  };
  static Seen seen;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (seen.all.count(ino) != 0) return seen.md5.count(ino) != 0;
    if (attempt == 1) break;
    seen = Seen{};
    for (int family : {AF_INET, AF_INET6}) {
      inet_diag_req_v2 req;
      std::memset(&req, 0, sizeof req);
      req.sdiag_family = static_cast<std::uint8_t>(family);
      req.sdiag_protocol = IPPROTO_TCP;
      req.idiag_states = ~0u;
      req.idiag_ext = 1u << (INET_DIAG_INFO - 1);  // the keys come with the info
      (void)SockDiagDump(&req, sizeof req, [&](const void* m, int len) {
        auto* d = static_cast<const inet_diag_msg*>(m);
        if (len < static_cast<int>(sizeof *d)) return;
        seen.all.insert(d->idiag_inode);
        int rest = len - static_cast<int>(NLMSG_ALIGN(sizeof *d));
        for (auto* a = reinterpret_cast<const rtattr*>(static_cast<const char*>(m) + NLMSG_ALIGN(sizeof *d));
             RTA_OK(a, rest); a = RTA_NEXT(a, rest)) {
          if (a->rta_type == INET_DIAG_MD5SIG && RTA_PAYLOAD(a) > 0) seen.md5.insert(d->idiag_inode);
        }
      });
    }
  }
  return false;
}

}  // namespace

bool IsInetSocket(pid_t pid, int fd) {
  auto s = CopyFdOf(pid, fd);
  if (!s.ok()) return false;
  int domain = SocketOption(*s, SOL_SOCKET, SO_DOMAIN);
  ::close(*s);
  return domain == AF_INET || domain == AF_INET6;
}

std::string InetSocketProblem(pid_t pid, int fd) {
  auto s = CopyFdOf(pid, fd);
  std::string what = "fd " + std::to_string(fd) + " is ";
  if (!s.ok()) return what + "a socket (" + s.status().message() + ")";
  int domain = SocketOption(*s, SOL_SOCKET, SO_DOMAIN), proto = SocketOption(*s, SOL_SOCKET, SO_PROTOCOL);
  std::string kind = Kind(domain, proto);
  sockaddr_storage peer;
  socklen_t plen = sizeof peer;
  bool connected = ::getpeername(*s, reinterpret_cast<sockaddr*>(&peer), &plen) == 0;
  std::string peer_text = connected ? InetAddressText(std::string(reinterpret_cast<char*>(&peer), plen)) : "";
  bool listening = SocketOption(*s, SOL_SOCKET, SO_ACCEPTCONN) == 1;
  int queued = 0;
  if (::ioctl(*s, FIONREAD, &queued) != 0) queued = 0;
  pollfd p = {*s, POLLIN, 0};
  bool waiting = listening && ::poll(&p, 1, 0) > 0;
  tcp_info ti = {};
  socklen_t tl = sizeof ti;
  bool got_info = connected && proto == IPPROTO_TCP && ::getsockopt(*s, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0;
  std::string extras = SockExtrasProblem(*s);
  struct stat st;
  if (extras.empty() && proto == IPPROTO_TCP && ::fstat(*s, &st) == 0 && HasMd5Keys(st.st_ino))
    extras = "TCP MD5 signature keys (TCP_MD5SIG), which ckpt cannot read back";
  ::close(*s);
  if (proto != IPPROTO_TCP && proto != IPPROTO_UDP) return what + kind;
  if (!extras.empty())
    return what + kind + (connected ? " connected to " + peer_text : "") + " with " + extras;
  if (connected && proto == IPPROTO_UDP) {
    return queued > 0 ? what + kind + " connected to " + peer_text + " with datagrams queued" : "";
  }
  if (connected) {
    std::string conn = what + kind + " connected to " + peer_text;
    if (got_info && !TcpStateSaved(ti.tcpi_state))
      return conn + " in state " + TcpStateName(ti.tcpi_state) + " (" + kTcpStatesSaved + ")";
    if (!NetLockAvailable())
      return conn + " (this ckpt was built without nftables, which holds a connection while it moves)";
    std::string ns = NetNamespaceOf(pid);
    if (ns != NetNamespaceOf(0)) {
      return conn + " in another network namespace (" + ns + "): run ckpt in it (nsenter --net=/proc/" +
             std::to_string(pid) + "/ns/net ckpt dump ...)";
    }
    return "";
  }
  if (proto == IPPROTO_TCP && !listening) return what + kind + " neither listening nor connected";
  if (waiting) return what + "a listening " + kind.substr(2) + " with connections waiting to be accepted";
  if (proto == IPPROTO_UDP && queued > 0) return what + kind + " with datagrams queued";
  return "";
}

Result<InetSocket> DumpInetSocket(pid_t pid, int fd, std::uint64_t ino) {
  std::string problem = InetSocketProblem(pid, fd);
  if (!problem.empty()) return NotSupported(problem + " (process " + std::to_string(pid) + ")");
  ASSIGN_OR_RETURN(int s, CopyFdOf(pid, fd));
  InetSocket u;
  u.fd = fd;
  u.ino = ino;
  u.family = static_cast<std::uint8_t>(SocketOption(s, SOL_SOCKET, SO_DOMAIN));
  u.type = static_cast<std::uint8_t>(SocketOption(s, SOL_SOCKET, SO_TYPE));
  u.protocol = static_cast<std::uint8_t>(SocketOption(s, SOL_SOCKET, SO_PROTOCOL));
  sockaddr_storage a;
  socklen_t alen = sizeof a;
  if (::getsockname(s, reinterpret_cast<sockaddr*>(&a), &alen) != 0) {
    int e = errno;
    ::close(s);
    return PosixError("getsockname", "fd " + std::to_string(fd) + " of process " + std::to_string(pid), e);
  }
  u.addr.assign(reinterpret_cast<char*>(&a), alen);
  u.reuseaddr = SocketOption(s, SOL_SOCKET, SO_REUSEADDR) > 0;
  u.reuseport = SocketOption(s, SOL_SOCKET, SO_REUSEPORT) > 0;
  u.v6only = u.family == AF_INET6 && SocketOption(s, IPPROTO_IPV6, IPV6_V6ONLY) > 0;
  u.nodelay = u.protocol == IPPROTO_TCP && SocketOption(s, IPPROTO_TCP, TCP_NODELAY) > 0;
  u.rcvbuf = SocketOption(s, SOL_SOCKET, SO_RCVBUF);
  u.sndbuf = SocketOption(s, SOL_SOCKET, SO_SNDBUF);
  ReadKeptOptions(s, pid, &u);
  if (Status st = ReadSockExtras(s, pid, u.family, u.type, u.protocol, &u.extras); !st.ok()) {
    ::close(s);
    return st.WithContext("fd " + std::to_string(fd) + " of process " + std::to_string(pid));
  }
  sockaddr_storage peer;
  socklen_t plen = sizeof peer;
  if (::getpeername(s, reinterpret_cast<sockaddr*>(&peer), &plen) == 0)
    u.peer.assign(reinterpret_cast<char*>(&peer), plen);  // the repair state: ConnectionsDump
  ::close(s);
  if (u.protocol == IPPROTO_TCP && u.peer.empty()) {
    u.backlog = ListenBacklog(u.family, ino);
    if (u.backlog < 0) return Internal("no backlog for listening socket fd " + std::to_string(fd));
  }
  return u;
}

namespace {

// net.ipv4.tcp_congestion_control of `pid`'s network namespace, if it is
// ckpt's own; else "" (unknown). Read once per process (a dump's worker):
// the dump asks for every TCP socket while the processes are frozen.
std::string DefaultCongestion(pid_t pid) {
  struct Ns {
    bool read = false;
    dev_t dev = 0;
    ino_t ino = 0;
    std::string congestion;
  };
  static Ns self;
  if (!self.read) {
    self.read = true;
    struct stat st;
    if (::stat("/proc/self/ns/net", &st) == 0) {
      self.dev = st.st_dev;
      self.ino = st.st_ino;
    }
    auto d =
        platform::ReadFileToString(platform::Env::Default(), "/proc/sys/net/ipv4/tcp_congestion_control");
    if (d.ok()) self.congestion = std::move(d).value();
    while (!self.congestion.empty() && (self.congestion.back() == '\n' || self.congestion.back() == ' '))
      self.congestion.pop_back();
  }
  struct stat a;
  if (::stat(ProcPath(pid, "ns/net").c_str(), &a) != 0 || a.st_ino != self.ino || a.st_dev != self.dev)
    return "";
  return self.congestion;
}

}  // namespace

void ReadKeptOptions(int s, pid_t pid, InetSocket* u) {
  const bool tcp = u->protocol == IPPROTO_TCP;
  u->keepalive = SocketOption(s, SOL_SOCKET, SO_KEEPALIVE) > 0;
  if (u->keepalive && tcp) {
    u->keepidle = std::max(SocketOption(s, IPPROTO_TCP, TCP_KEEPIDLE), 0);
    u->keepintvl = std::max(SocketOption(s, IPPROTO_TCP, TCP_KEEPINTVL), 0);
    u->keepcnt = std::max(SocketOption(s, IPPROTO_TCP, TCP_KEEPCNT), 0);
  }
  ::linger l{};
  socklen_t len = sizeof l;
  if (::getsockopt(s, SOL_SOCKET, SO_LINGER, &l, &len) == 0 && l.l_onoff != 0) {
    u->linger = true;
    u->linger_s = l.l_linger;
  }
  if (tcp) {
    u->user_timeout_ms =
        static_cast<std::uint32_t>(std::max(SocketOption(s, IPPROTO_TCP, TCP_USER_TIMEOUT), 0));
    u->cork = SocketOption(s, IPPROTO_TCP, TCP_CORK) > 0;
  }
  u->oobinline = SocketOption(s, SOL_SOCKET, SO_OOBINLINE) > 0;
  u->tos = std::max(u->family == AF_INET6 ? SocketOption(s, IPPROTO_IPV6, IPV6_TCLASS)
                                          : SocketOption(s, IPPROTO_IP, IP_TOS),
                    0);
  u->priority = std::max(SocketOption(s, SOL_SOCKET, SO_PRIORITY), 0);
  u->mark = static_cast<std::uint32_t>(std::max(SocketOption(s, SOL_SOCKET, SO_MARK), 0));
  u->freebind = SocketOption(s, IPPROTO_IP, IP_FREEBIND) > 0;
  u->transparent = SocketOption(s, IPPROTO_IP, IP_TRANSPARENT) > 0;
  if (!tcp) return;
  u->defer_accept_s = std::max(SocketOption(s, IPPROTO_TCP, TCP_DEFER_ACCEPT), 0);
  u->fastopen_qlen = std::max(SocketOption(s, IPPROTO_TCP, TCP_FASTOPEN), 0);
  u->notsent_lowat = static_cast<std::uint32_t>(std::max(SocketOption(s, IPPROTO_TCP, TCP_NOTSENT_LOWAT), 0));
  char cc[16] = {};  // TCP_CA_NAME_MAX
  socklen_t cclen = sizeof cc;
  if (::getsockopt(s, IPPROTO_TCP, TCP_CONGESTION, cc, &cclen) == 0) {
    std::string name(cc, strnlen(cc, cclen));
    // Recorded when the process chose another than its network namespace's
    // default; when ckpt runs in another namespace (whose default it cannot
    // read), always.
    if (!name.empty() && name != DefaultCongestion(pid)) u->congestion = name;
  }
}

Status SetKeptOptions(int s, const InetSocket& u, const std::string& what) {
  auto set = [&](int level, int name, int v, const char* opt) -> Status {
    if (::setsockopt(s, level, name, &v, sizeof v) == 0) return Status::Ok();
    return PosixError(std::string("setsockopt(") + opt + ")", what, errno);
  };
  if (u.keepalive) RETURN_IF_ERROR(set(SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"));
  if (u.keepidle > 0) RETURN_IF_ERROR(set(IPPROTO_TCP, TCP_KEEPIDLE, u.keepidle, "TCP_KEEPIDLE"));
  if (u.keepintvl > 0) RETURN_IF_ERROR(set(IPPROTO_TCP, TCP_KEEPINTVL, u.keepintvl, "TCP_KEEPINTVL"));
  if (u.keepcnt > 0) RETURN_IF_ERROR(set(IPPROTO_TCP, TCP_KEEPCNT, u.keepcnt, "TCP_KEEPCNT"));
  if (u.linger) {
    ::linger l{1, u.linger_s};
    if (::setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l) != 0)
      return PosixError("setsockopt(SO_LINGER)", what, errno);
  }
  if (u.user_timeout_ms > 0)
    RETURN_IF_ERROR(
        set(IPPROTO_TCP, TCP_USER_TIMEOUT, static_cast<int>(u.user_timeout_ms), "TCP_USER_TIMEOUT"));
  if (u.cork) RETURN_IF_ERROR(set(IPPROTO_TCP, TCP_CORK, 1, "TCP_CORK"));
  if (u.oobinline) RETURN_IF_ERROR(set(SOL_SOCKET, SO_OOBINLINE, 1, "SO_OOBINLINE"));
  if (u.tos > 0) {
    RETURN_IF_ERROR(u.family == AF_INET6 ? set(IPPROTO_IPV6, IPV6_TCLASS, u.tos, "IPV6_TCLASS")
                                         : set(IPPROTO_IP, IP_TOS, u.tos, "IP_TOS"));
  }
  if (u.priority > 0) RETURN_IF_ERROR(set(SOL_SOCKET, SO_PRIORITY, u.priority, "SO_PRIORITY"));
  if (u.mark > 0) RETURN_IF_ERROR(set(SOL_SOCKET, SO_MARK, static_cast<int>(u.mark), "SO_MARK"));
  if (u.freebind) RETURN_IF_ERROR(set(IPPROTO_IP, IP_FREEBIND, 1, "IP_FREEBIND"));
  if (u.transparent) RETURN_IF_ERROR(set(IPPROTO_IP, IP_TRANSPARENT, 1, "IP_TRANSPARENT"));
  if (u.defer_accept_s > 0)
    RETURN_IF_ERROR(set(IPPROTO_TCP, TCP_DEFER_ACCEPT, u.defer_accept_s, "TCP_DEFER_ACCEPT"));
  if (u.fastopen_qlen > 0) RETURN_IF_ERROR(set(IPPROTO_TCP, TCP_FASTOPEN, u.fastopen_qlen, "TCP_FASTOPEN"));
  if (u.notsent_lowat > 0)
    RETURN_IF_ERROR(
        set(IPPROTO_TCP, TCP_NOTSENT_LOWAT, static_cast<int>(u.notsent_lowat), "TCP_NOTSENT_LOWAT"));
  if (!u.congestion.empty() && ::setsockopt(s, IPPROTO_TCP, TCP_CONGESTION, u.congestion.data(),
                                            static_cast<socklen_t>(u.congestion.size())) != 0)
    return PosixError("setsockopt(TCP_CONGESTION " + u.congestion + ")", what, errno);
  return SetSockExtras(s, u.extras, what);
}

Result<int> CreateInetSocket(const InetSocket& u) {
  std::string what = "fd " + std::to_string(u.fd) + " (" + InetAddressText(u.addr) + ")";
  int s = ::socket(u.family, u.type | SOCK_CLOEXEC, u.protocol);
  if (s < 0) return PosixError("socket", what, errno);
  auto set = [&](int level, int name, int v) { return ::setsockopt(s, level, name, &v, sizeof v) == 0; };
  // Bound with SO_REUSEADDR whatever the process had (connections it
  // closed before the dump may linger in TIME_WAIT), then set as it was.
  bool ok = set(SOL_SOCKET, SO_REUSEADDR, 1) && (!u.reuseport || set(SOL_SOCKET, SO_REUSEPORT, 1)) &&
            (u.family != AF_INET6 || set(IPPROTO_IPV6, IPV6_V6ONLY, u.v6only ? 1 : 0)) &&
            (!u.nodelay || set(IPPROTO_TCP, TCP_NODELAY, 1));
  // getsockopt shows the doubled value the kernel keeps; set takes half.
  if (ok && u.rcvbuf > 0) (void)set(SOL_SOCKET, SO_RCVBUFFORCE, u.rcvbuf / 2);
  if (ok && u.sndbuf > 0) (void)set(SOL_SOCKET, SO_SNDBUFFORCE, u.sndbuf / 2);
  Status st;
  if (!ok) st = PosixError("setsockopt", what, errno);
  if (st.ok() && ::bind(s, reinterpret_cast<const sockaddr*>(u.addr.data()),
                        static_cast<socklen_t>(u.addr.size())) != 0) {
    st = PosixError("bind", what + (errno == EADDRINUSE ? ": the address is taken here" : ""), errno);
  }
  if (st.ok() && u.protocol == IPPROTO_TCP && ::listen(s, u.backlog) != 0)
    st = PosixError("listen", what, errno);
  if (st.ok()) st = SetKeptOptions(s, u, what);
  if (st.ok() && !u.reuseaddr && !set(SOL_SOCKET, SO_REUSEADDR, 0))
    st = PosixError("setsockopt", what, errno);
  if (!st.ok()) {
    ::close(s);
    return st;
  }
  return s;
}

}  // namespace ckpt::engine
