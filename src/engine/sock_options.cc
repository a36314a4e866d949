#include "engine/sock_options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <vector>

#include "engine/proc.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

namespace {

// Options getsockopt reads and setsockopt takes back from the same bytes,
// by level; IPPROTO_IP ones apply to IPv6 sockets too (their IPv4-mapped
// traffic). Not here: those the socket kinds keep by name (address, buffer
// sizes, reuse, keepalive and the rest of ReadKeptOptions, SO_PASSCRED of
// Unix sockets), read-only ones, and values the kernel changes by itself
// on a connection (its MSS, window clamp, incoming CPU).
enum When : unsigned char {
  kAlways,
  kUnconnected,  // on a connection the value is the kernel's, not the program's
  kDatagram,     // not a stream socket's (the kernel sets it on accept() and refuses to set it)
};

struct Spec {
  int level;
  int name;
  const char* label;
  When when;
};

constexpr Spec kSpecs[] = {
    {SOL_SOCKET, 1, "SO_DEBUG", kAlways},
    {SOL_SOCKET, 5, "SO_DONTROUTE", kAlways},
    {SOL_SOCKET, 6, "SO_BROADCAST", kAlways},
    {SOL_SOCKET, 18, "SO_RCVLOWAT", kAlways},
    {SOL_SOCKET, 20, "SO_RCVTIMEO", kAlways},
    {SOL_SOCKET, 21, "SO_SNDTIMEO", kAlways},
    {SOL_SOCKET, 25, "SO_BINDTODEVICE", kAlways},
    {SOL_SOCKET, 29, "SO_TIMESTAMP", kAlways},
    {SOL_SOCKET, 34, "SO_PASSSEC", kAlways},
    {SOL_SOCKET, 35, "SO_TIMESTAMPNS", kAlways},
    {SOL_SOCKET, 37, "SO_TIMESTAMPING", kAlways},
    {SOL_SOCKET, 40, "SO_RXQ_OVFL", kAlways},
    {SOL_SOCKET, 41, "SO_WIFI_STATUS", kAlways},
    {SOL_SOCKET, 42, "SO_PEEK_OFF", kAlways},
    {SOL_SOCKET, 43, "SO_NOFCS", kAlways},
    {SOL_SOCKET, 45, "SO_SELECT_ERR_QUEUE", kAlways},
    {SOL_SOCKET, 46, "SO_BUSY_POLL", kAlways},
    {SOL_SOCKET, 47, "SO_MAX_PACING_RATE", kAlways},
    {SOL_SOCKET, 60, "SO_ZEROCOPY", kAlways},
    {SOL_SOCKET, 61, "SO_TXTIME", kAlways},
    {SOL_SOCKET, 63, "SO_TIMESTAMP_NEW", kAlways},
    {SOL_SOCKET, 64, "SO_TIMESTAMPNS_NEW", kAlways},
    {SOL_SOCKET, 65, "SO_TIMESTAMPING_NEW", kAlways},
    {SOL_SOCKET, 69, "SO_PREFER_BUSY_POLL", kAlways},
    {SOL_SOCKET, 70, "SO_BUSY_POLL_BUDGET", kAlways},
    {SOL_SOCKET, 74, "SO_TXREHASH", kAlways},
    {SOL_SOCKET, 75, "SO_RCVMARK", kAlways},
    {SOL_SOCKET, 76, "SO_PASSPIDFD", kAlways},
    {IPPROTO_IP, 2, "IP_TTL", kAlways},
    {IPPROTO_IP, 4, "IP_OPTIONS", kAlways},
    {IPPROTO_IP, 6, "IP_RECVOPTS", kAlways},
    {IPPROTO_IP, 7, "IP_RETOPTS", kAlways},
    {IPPROTO_IP, 8, "IP_PKTINFO", kAlways},
    {IPPROTO_IP, 10, "IP_MTU_DISCOVER", kAlways},
    {IPPROTO_IP, 11, "IP_RECVERR", kAlways},
    {IPPROTO_IP, 12, "IP_RECVTTL", kAlways},
    {IPPROTO_IP, 13, "IP_RECVTOS", kAlways},
    {IPPROTO_IP, 18, "IP_PASSSEC", kAlways},
    {IPPROTO_IP, 20, "IP_RECVORIGDSTADDR", kAlways},
    {IPPROTO_IP, 21, "IP_MINTTL", kAlways},
    {IPPROTO_IP, 22, "IP_NODEFRAG", kAlways},
    {IPPROTO_IP, 23, "IP_CHECKSUM", kAlways},
    {IPPROTO_IP, 24, "IP_BIND_ADDRESS_NO_PORT", kAlways},
    {IPPROTO_IP, 25, "IP_RECVFRAGSIZE", kAlways},
    {IPPROTO_IP, 26, "IP_RECVERR_RFC4884", kAlways},
    {IPPROTO_IP, 32, "IP_MULTICAST_IF", kDatagram},
    {IPPROTO_IP, 33, "IP_MULTICAST_TTL", kDatagram},
    {IPPROTO_IP, 34, "IP_MULTICAST_LOOP", kDatagram},
    {IPPROTO_IP, 49, "IP_MULTICAST_ALL", kDatagram},
    {IPPROTO_IP, 51, "IP_LOCAL_PORT_RANGE", kAlways},
    {IPPROTO_IPV6, 2, "IPV6_2292PKTINFO", kAlways},
    {IPPROTO_IPV6, 3, "IPV6_2292HOPOPTS", kAlways},
    {IPPROTO_IPV6, 4, "IPV6_2292DSTOPTS", kAlways},
    {IPPROTO_IPV6, 5, "IPV6_2292RTHDR", kAlways},
    {IPPROTO_IPV6, 8, "IPV6_2292HOPLIMIT", kAlways},
    {IPPROTO_IPV6, 11, "IPV6_FLOWINFO", kAlways},
    {IPPROTO_IPV6, 16, "IPV6_UNICAST_HOPS", kAlways},
    {IPPROTO_IPV6, 17, "IPV6_MULTICAST_IF", kAlways},
    {IPPROTO_IPV6, 18, "IPV6_MULTICAST_HOPS", kAlways},
    {IPPROTO_IPV6, 19, "IPV6_MULTICAST_LOOP", kAlways},
    {IPPROTO_IPV6, 23, "IPV6_MTU_DISCOVER", kAlways},
    {IPPROTO_IPV6, 25, "IPV6_RECVERR", kAlways},
    {IPPROTO_IPV6, 29, "IPV6_MULTICAST_ALL", kAlways},
    {IPPROTO_IPV6, 31, "IPV6_RECVERR_RFC4884", kAlways},
    {IPPROTO_IPV6, 33, "IPV6_FLOWINFO_SEND", kAlways},
    {IPPROTO_IPV6, 49, "IPV6_RECVPKTINFO", kAlways},
    {IPPROTO_IPV6, 51, "IPV6_RECVHOPLIMIT", kAlways},
    {IPPROTO_IPV6, 53, "IPV6_RECVHOPOPTS", kAlways},
    {IPPROTO_IPV6, 56, "IPV6_RECVRTHDR", kAlways},
    {IPPROTO_IPV6, 58, "IPV6_RECVDSTOPTS", kAlways},
    {IPPROTO_IPV6, 60, "IPV6_RECVPATHMTU", kAlways},
    {IPPROTO_IPV6, 62, "IPV6_DONTFRAG", kAlways},
    {IPPROTO_IPV6, 66, "IPV6_RECVTCLASS", kAlways},
    {IPPROTO_IPV6, 70, "IPV6_AUTOFLOWLABEL", kAlways},
    {IPPROTO_IPV6, 72, "IPV6_ADDR_PREFERENCES", kAlways},
    {IPPROTO_IPV6, 73, "IPV6_MINHOPCOUNT", kAlways},
    {IPPROTO_IPV6, 74, "IPV6_RECVORIGDSTADDR", kAlways},
    {IPPROTO_IPV6, 77, "IPV6_RECVFRAGSIZE", kAlways},
    {IPPROTO_UDP, 1, "UDP_CORK", kAlways},
    {IPPROTO_UDP, 100, "UDP_ENCAP", kAlways},
    {IPPROTO_UDP, 101, "UDP_NO_CHECK6_TX", kAlways},
    {IPPROTO_UDP, 102, "UDP_NO_CHECK6_RX", kAlways},
    {IPPROTO_UDP, 103, "UDP_SEGMENT", kAlways},
    {IPPROTO_UDP, 104, "UDP_GRO", kAlways},
    {IPPROTO_TCP, 2, "TCP_MAXSEG", kUnconnected},
    {IPPROTO_TCP, 7, "TCP_SYNCNT", kAlways},
    {IPPROTO_TCP, 8, "TCP_LINGER2", kAlways},
    {IPPROTO_TCP, 10, "TCP_WINDOW_CLAMP", kUnconnected},
    {IPPROTO_TCP, 16, "TCP_THIN_LINEAR_TIMEOUTS", kAlways},
    {IPPROTO_TCP, 27, "TCP_SAVE_SYN", kAlways},
    {IPPROTO_TCP, 36, "TCP_INQ", kAlways},
    {IPPROTO_TCP, 37, "TCP_TX_DELAY", kAlways},
};

bool Applies(const Spec& o, int family, int protocol) {
  const bool inet = family == AF_INET || family == AF_INET6;
  switch (o.level) {
    case SOL_SOCKET:
      return true;
    case IPPROTO_IP:
      return inet;
    case IPPROTO_IPV6:
      return family == AF_INET6;
    case IPPROTO_UDP:
      return inet && protocol == IPPROTO_UDP;
    case IPPROTO_TCP:
      return inet && protocol == IPPROTO_TCP;
    default:
      return false;
  }
}

struct OptValue {
  bool ok = false;
  std::string bytes;
};

OptValue Get(int s, int level, int name) {
  char buf[128];
  socklen_t len = sizeof buf;
  OptValue v;
  if (::getsockopt(s, level, name, buf, &len) != 0) return v;
  v.ok = true;
  v.bytes.assign(buf, std::min<std::size_t>(len, sizeof buf));
  return v;
}

std::string AddrText(const std::string& sa) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (sa.size() >= sizeof(sockaddr_in) &&
      reinterpret_cast<const sockaddr*>(sa.data())->sa_family == AF_INET) {
    sockaddr_in a;
    std::memcpy(&a, sa.data(), sizeof a);
    ::inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
  } else if (sa.size() >= sizeof(sockaddr_in6)) {
    sockaddr_in6 a;
    std::memcpy(&a, sa.data(), sizeof a);
    ::inet_ntop(AF_INET6, &a.sin6_addr, buf, sizeof buf);
  }
  return buf;
}

// IPPROTO_IP for an IPv4 group, IPPROTO_IPV6 for an IPv6 one.
int GroupLevel(const std::string& group) {
  sa_family_t f = 0;
  if (group.size() >= sizeof f) std::memcpy(&f, group.data(), sizeof f);
  return f == AF_INET ? IPPROTO_IP : IPPROTO_IPV6;
}

struct Candidate {
  std::uint32_t ifindex = 0;
  std::string ifname;
  std::string group;  // sockaddr bytes
};

// The groups `pid`'s network namespace has joined on each device
// (/proc/PID/net/igmp for IPv4, igmp6 for IPv6): the ones a socket there
// can be a member of.
std::vector<Candidate> JoinedGroups(pid_t pid, int family) {
  std::vector<Candidate> out;
  auto text = ReadProcFile(pid, family == AF_INET ? "net/igmp" : "net/igmp6");
  if (!text.ok()) return out;
  std::size_t pos = 0;
  const std::string& t = *text;
  Candidate dev;
  while (pos < t.size()) {
    std::size_t end = t.find('\n', pos);
    if (end == std::string::npos) end = t.size();
    std::string line = t.substr(pos, end - pos);
    pos = end + 1;
    char name[64] = {};
    if (family == AF_INET) {
      unsigned idx = 0, group = 0;
      if (!line.empty() && line[0] >= '0' && line[0] <= '9' &&
          std::sscanf(line.c_str(), "%u %63s", &idx, name) == 2) {
        dev.ifindex = idx;
        dev.ifname = name;
        while (!dev.ifname.empty() && dev.ifname.back() == ':') dev.ifname.pop_back();
      } else if (!line.empty() && line[0] == '\t' && dev.ifindex != 0 &&
                 std::sscanf(line.c_str(), "%x", &group) == 1) {
        sockaddr_in a = {};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = group;  // printed as the kernel holds it (network order)
        Candidate c = dev;
        c.group.assign(reinterpret_cast<char*>(&a), sizeof a);
        out.push_back(std::move(c));
      }
    } else {
      unsigned idx = 0;
      char hex[40] = {};
      if (std::sscanf(line.c_str(), "%u %63s %32s", &idx, name, hex) != 3 || std::strlen(hex) != 32) continue;
      sockaddr_in6 a = {};
      a.sin6_family = AF_INET6;
      for (int i = 0; i < 16; ++i) {
        unsigned b = 0;
        if (std::sscanf(&hex[static_cast<std::size_t>(i) * 2], "%2x", &b) != 1) break;
        a.sin6_addr.s6_addr[i] = static_cast<std::uint8_t>(b);
      }
      out.push_back({idx, name, std::string(reinterpret_cast<char*>(&a), sizeof a)});
    }
  }
  return out;
}

// The membership of socket `s` in `c`'s group on `c`'s device, if any.
bool ReadMembership(int s, int level, const Candidate& c, McastGroup* g) {
  std::uint32_t cap = 64;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::vector<char> buf(GROUP_FILTER_SIZE(cap));
    auto* gf = reinterpret_cast<group_filter*>(buf.data());
    gf->gf_interface = c.ifindex;
    std::memcpy(&gf->gf_group, c.group.data(), c.group.size());
    gf->gf_numsrc = cap;
    auto len = static_cast<socklen_t>(buf.size());
    if (::getsockopt(s, level, MCAST_MSFILTER, gf, &len) != 0) return false;
    if (gf->gf_numsrc > cap) {
      cap = gf->gf_numsrc;
      continue;
    }
    g->ifindex = c.ifindex;
    g->ifname = c.ifname;
    g->group = c.group;
    g->fmode = gf->gf_fmode;
    g->sources.clear();
    const std::size_t sa_len = level == IPPROTO_IP ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    for (std::uint32_t i = 0; i < gf->gf_numsrc; ++i)
      g->sources.emplace_back(buf.data() + offsetof(group_filter, gf_slist) + i * sizeof(sockaddr_storage),
                              sa_len);
    return true;
  }
  return false;
}

Status ReadFilter(int s, SockExtras* x) {
  sock_filter probe;
  socklen_t n = 0;
  if (::getsockopt(s, SOL_SOCKET, SO_GET_FILTER, &probe, &n) != 0) {
    if (errno == EACCES)
      return NotSupported("an eBPF socket filter (SO_ATTACH_BPF), which ckpt cannot read back");
    return Status::Ok();  // no filters on this kind of socket
  }
  if (n == 0) return Status::Ok();
  std::vector<sock_filter> insns(n);
  socklen_t got = n;
  if (::getsockopt(s, SOL_SOCKET, SO_GET_FILTER, insns.data(), &got) != 0 || got != n)
    return PosixError("getsockopt(SO_GET_FILTER)", "a socket filter", errno);
  x->filter.assign(reinterpret_cast<const char*>(insns.data()), n * sizeof(sock_filter));
  x->filter_locked = SocketOption(s, SOL_SOCKET, SO_LOCK_FILTER) > 0;
  return Status::Ok();
}

}  // namespace

std::string SockOptName(int level, int name) {
  for (const Spec& o : kSpecs)
    if (o.level == level && o.name == name) return o.label;
  return "option " + std::to_string(level) + "/" + std::to_string(name);
}

std::string SockExtrasProblem(int s) {
  SockExtras x;
  Status st = ReadFilter(s, &x);
  if (!st.ok()) return st.message();
  char ulp[32] = {};
  socklen_t len = sizeof ulp;
  if (SocketOption(s, SOL_SOCKET, SO_PROTOCOL) == IPPROTO_TCP &&
      ::getsockopt(s, IPPROTO_TCP, TCP_ULP, ulp, &len) == 0 && len > 0 && ulp[0] != '\0') {
    std::string name(ulp, strnlen(ulp, len));
    return "a connection with the upper-layer protocol \"" + name + "\" (TCP_ULP" +
           (name == "tls" ? ": kernel TLS, whose keys and record state ckpt cannot read)" : ")");
  }
  return "";
}

Status ReadSockExtras(int s, pid_t pid, int family, int type, int protocol, SockExtras* x) {
  std::string problem = SockExtrasProblem(s);
  if (!problem.empty()) return NotSupported(problem);
  RETURN_IF_ERROR(ReadFilter(s, x));
  sockaddr_storage peer;
  socklen_t plen = sizeof peer;
  const bool connected = ::getpeername(s, reinterpret_cast<sockaddr*>(&peer), &plen) == 0;
  int fresh = ::socket(family, type | SOCK_CLOEXEC, family == AF_UNIX ? 0 : protocol);
  if (fresh < 0) return PosixError("socket", "a socket to compare options with", errno);
  for (const Spec& o : kSpecs) {
    if (!Applies(o, family, protocol) || (o.when == kUnconnected && connected) ||
        (o.when == kDatagram && type == SOCK_STREAM))
      continue;
    OptValue v = Get(s, o.level, o.name);
    if (!v.ok) continue;
    OptValue d = Get(fresh, o.level, o.name);
    if (d.ok && d.bytes == v.bytes) continue;
    x->options.push_back({o.level, o.name, v.bytes});
  }
  ::close(fresh);
  if (protocol != IPPROTO_UDP || (family != AF_INET && family != AF_INET6)) return Status::Ok();
  // IPv4 groups for both (an IPv6 socket may join them for its
  // IPv4-mapped traffic), IPv6 groups for IPv6 sockets.
  for (int gfam : {AF_INET, AF_INET6}) {
    if (gfam == AF_INET6 && family != AF_INET6) continue;
    for (const Candidate& c : JoinedGroups(pid, gfam)) {
      McastGroup g;
      if (ReadMembership(s, GroupLevel(c.group), c, &g)) x->groups.push_back(std::move(g));
    }
  }
  return Status::Ok();
}

Status SetSockExtras(int s, const SockExtras& x, const std::string& what) {
  for (const SockOpt& o : x.options) {
    if (::setsockopt(s, o.level, o.name, o.value.data(), static_cast<socklen_t>(o.value.size())) != 0)
      return PosixError("setsockopt(" + SockOptName(o.level, o.name) + ")", what, errno);
  }
  for (const McastGroup& g : x.groups) {
    const int level = GroupLevel(g.group);
    std::string where = what;
    where += ": its membership of multicast group ";
    where += McastGroupText(g);
    unsigned ifindex = g.ifindex;
    if (!g.ifname.empty()) {
      ifindex = ::if_nametoindex(g.ifname.c_str());
      if (ifindex == 0) return NotFound(where + ": this host has no device " + g.ifname);
    }
    group_req gr = {};
    gr.gr_interface = ifindex;
    if (g.group.size() > sizeof gr.gr_group) return Corruption(where + ": bad group address");
    std::memcpy(&gr.gr_group, g.group.data(), g.group.size());
    if (::setsockopt(s, level, MCAST_JOIN_GROUP, &gr, sizeof gr) != 0)
      return PosixError("setsockopt(MCAST_JOIN_GROUP)", where, errno);
    if (g.fmode == MCAST_EXCLUDE && g.sources.empty()) continue;
    std::vector<char> buf(GROUP_FILTER_SIZE(g.sources.size()));
    auto* gf = reinterpret_cast<group_filter*>(buf.data());
    gf->gf_interface = ifindex;
    gf->gf_group = gr.gr_group;
    gf->gf_fmode = g.fmode;
    gf->gf_numsrc = static_cast<std::uint32_t>(g.sources.size());
    for (std::size_t i = 0; i < g.sources.size(); ++i) {
      if (g.sources[i].size() > sizeof(sockaddr_storage)) return Corruption(where + ": bad source");
      std::memcpy(buf.data() + offsetof(group_filter, gf_slist) + i * sizeof(sockaddr_storage),
                  g.sources[i].data(), g.sources[i].size());
    }
    if (::setsockopt(s, level, MCAST_MSFILTER, gf, static_cast<socklen_t>(buf.size())) != 0)
      return PosixError("setsockopt(MCAST_MSFILTER)", where, errno);
  }
  if (!x.filter.empty()) {
    if (x.filter.size() % sizeof(sock_filter) != 0 || x.filter.size() / sizeof(sock_filter) > BPF_MAXINSNS)
      return Corruption(what + ": a socket filter of " + std::to_string(x.filter.size()) + " bytes");
    std::vector<sock_filter> insns(x.filter.size() / sizeof(sock_filter));
    std::memcpy(insns.data(), x.filter.data(), x.filter.size());
    sock_fprog prog = {static_cast<unsigned short>(insns.size()), insns.data()};
    if (::setsockopt(s, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0)
      return PosixError("setsockopt(SO_ATTACH_FILTER)", what, errno);
    int one = 1;
    if (x.filter_locked && ::setsockopt(s, SOL_SOCKET, SO_LOCK_FILTER, &one, sizeof one) != 0)
      return PosixError("setsockopt(SO_LOCK_FILTER)", what, errno);
  }
  return Status::Ok();
}

std::string McastGroupText(const McastGroup& g) {
  std::string t =
      AddrText(g.group) + " on " + (g.ifname.empty() ? "device " + std::to_string(g.ifindex) : g.ifname);
  if (g.fmode == MCAST_EXCLUDE && g.sources.empty()) return t;
  t += g.fmode == MCAST_INCLUDE ? ", from " : ", not from ";
  for (std::size_t i = 0; i < g.sources.size(); ++i) t += (i ? " " : "") + AddrText(g.sources[i]);
  return t;
}

}  // namespace ckpt::engine
