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
#include "engine/sock_names.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

static_assert(kSolSocket == SOL_SOCKET && kIpprotoIp == IPPROTO_IP && kIpprotoIpv6 == IPPROTO_IPV6 &&
              kIpprotoTcp == IPPROTO_TCP && kIpprotoUdp == IPPROTO_UDP);

namespace {

bool Applies(const SockOptSpec& o, int family, int protocol) {
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
  RETURN_IF_ERROR(ReadFilter(s, x));  // refuses an eBPF filter (TCP_ULP: InetSocketProblem, before)
  sockaddr_storage peer;
  socklen_t plen = sizeof peer;
  const bool connected = ::getpeername(s, reinterpret_cast<sockaddr*>(&peer), &plen) == 0;
  int fresh = ::socket(family, type | SOCK_CLOEXEC, family == AF_UNIX ? 0 : protocol);
  if (fresh < 0) return PosixError("socket", "a socket to compare options with", errno);
  for (const SockOptSpec& o : SockOptSpecs()) {
    if (!Applies(o, family, protocol) || (o.when == SockOptWhen::kUnconnected && connected) ||
        (o.when == SockOptWhen::kDatagram && type == SOCK_STREAM))
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

}  // namespace ckpt::engine
