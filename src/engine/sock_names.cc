#include "engine/sock_names.h"

namespace ckpt::engine {

namespace {

constexpr SockOptSpec kSpecs[] = {
    {kSolSocket, 1, "SO_DEBUG", SockOptWhen::kAlways},
    {kSolSocket, 5, "SO_DONTROUTE", SockOptWhen::kAlways},
    {kSolSocket, 6, "SO_BROADCAST", SockOptWhen::kAlways},
    {kSolSocket, 18, "SO_RCVLOWAT", SockOptWhen::kAlways},
    {kSolSocket, 20, "SO_RCVTIMEO", SockOptWhen::kAlways},
    {kSolSocket, 21, "SO_SNDTIMEO", SockOptWhen::kAlways},
    {kSolSocket, 25, "SO_BINDTODEVICE", SockOptWhen::kAlways},
    {kSolSocket, 29, "SO_TIMESTAMP", SockOptWhen::kAlways},
    {kSolSocket, 34, "SO_PASSSEC", SockOptWhen::kAlways},
    {kSolSocket, 35, "SO_TIMESTAMPNS", SockOptWhen::kAlways},
    {kSolSocket, 37, "SO_TIMESTAMPING", SockOptWhen::kAlways},
    {kSolSocket, 40, "SO_RXQ_OVFL", SockOptWhen::kAlways},
    {kSolSocket, 41, "SO_WIFI_STATUS", SockOptWhen::kAlways},
    {kSolSocket, 42, "SO_PEEK_OFF", SockOptWhen::kAlways},
    {kSolSocket, 43, "SO_NOFCS", SockOptWhen::kAlways},
    {kSolSocket, 45, "SO_SELECT_ERR_QUEUE", SockOptWhen::kAlways},
    {kSolSocket, 46, "SO_BUSY_POLL", SockOptWhen::kAlways},
    {kSolSocket, 47, "SO_MAX_PACING_RATE", SockOptWhen::kAlways},
    {kSolSocket, 60, "SO_ZEROCOPY", SockOptWhen::kAlways},
    {kSolSocket, 61, "SO_TXTIME", SockOptWhen::kAlways},
    {kSolSocket, 63, "SO_TIMESTAMP_NEW", SockOptWhen::kAlways},
    {kSolSocket, 64, "SO_TIMESTAMPNS_NEW", SockOptWhen::kAlways},
    {kSolSocket, 65, "SO_TIMESTAMPING_NEW", SockOptWhen::kAlways},
    {kSolSocket, 69, "SO_PREFER_BUSY_POLL", SockOptWhen::kAlways},
    {kSolSocket, 70, "SO_BUSY_POLL_BUDGET", SockOptWhen::kAlways},
    {kSolSocket, 74, "SO_TXREHASH", SockOptWhen::kAlways},
    {kSolSocket, 75, "SO_RCVMARK", SockOptWhen::kAlways},
    {kSolSocket, 76, "SO_PASSPIDFD", SockOptWhen::kAlways},
    {kIpprotoIp, 2, "IP_TTL", SockOptWhen::kAlways},
    {kIpprotoIp, 4, "IP_OPTIONS", SockOptWhen::kAlways},
    {kIpprotoIp, 6, "IP_RECVOPTS", SockOptWhen::kAlways},
    {kIpprotoIp, 7, "IP_RETOPTS", SockOptWhen::kAlways},
    {kIpprotoIp, 8, "IP_PKTINFO", SockOptWhen::kAlways},
    {kIpprotoIp, 10, "IP_MTU_DISCOVER", SockOptWhen::kAlways},
    {kIpprotoIp, 11, "IP_RECVERR", SockOptWhen::kAlways},
    {kIpprotoIp, 12, "IP_RECVTTL", SockOptWhen::kAlways},
    {kIpprotoIp, 13, "IP_RECVTOS", SockOptWhen::kAlways},
    {kIpprotoIp, 18, "IP_PASSSEC", SockOptWhen::kAlways},
    {kIpprotoIp, 20, "IP_RECVORIGDSTADDR", SockOptWhen::kAlways},
    {kIpprotoIp, 21, "IP_MINTTL", SockOptWhen::kAlways},
    {kIpprotoIp, 22, "IP_NODEFRAG", SockOptWhen::kAlways},
    {kIpprotoIp, 23, "IP_CHECKSUM", SockOptWhen::kAlways},
    {kIpprotoIp, 24, "IP_BIND_ADDRESS_NO_PORT", SockOptWhen::kAlways},
    {kIpprotoIp, 25, "IP_RECVFRAGSIZE", SockOptWhen::kAlways},
    {kIpprotoIp, 26, "IP_RECVERR_RFC4884", SockOptWhen::kAlways},
    {kIpprotoIp, 32, "IP_MULTICAST_IF", SockOptWhen::kDatagram},
    {kIpprotoIp, 33, "IP_MULTICAST_TTL", SockOptWhen::kDatagram},
    {kIpprotoIp, 34, "IP_MULTICAST_LOOP", SockOptWhen::kDatagram},
    {kIpprotoIp, 49, "IP_MULTICAST_ALL", SockOptWhen::kDatagram},
    {kIpprotoIp, 51, "IP_LOCAL_PORT_RANGE", SockOptWhen::kAlways},
    {kIpprotoIpv6, 2, "IPV6_2292PKTINFO", SockOptWhen::kAlways},
    {kIpprotoIpv6, 3, "IPV6_2292HOPOPTS", SockOptWhen::kAlways},
    {kIpprotoIpv6, 4, "IPV6_2292DSTOPTS", SockOptWhen::kAlways},
    {kIpprotoIpv6, 5, "IPV6_2292RTHDR", SockOptWhen::kAlways},
    {kIpprotoIpv6, 8, "IPV6_2292HOPLIMIT", SockOptWhen::kAlways},
    {kIpprotoIpv6, 11, "IPV6_FLOWINFO", SockOptWhen::kAlways},
    {kIpprotoIpv6, 16, "IPV6_UNICAST_HOPS", SockOptWhen::kAlways},
    {kIpprotoIpv6, 17, "IPV6_MULTICAST_IF", SockOptWhen::kAlways},
    {kIpprotoIpv6, 18, "IPV6_MULTICAST_HOPS", SockOptWhen::kAlways},
    {kIpprotoIpv6, 19, "IPV6_MULTICAST_LOOP", SockOptWhen::kAlways},
    {kIpprotoIpv6, 23, "IPV6_MTU_DISCOVER", SockOptWhen::kAlways},
    {kIpprotoIpv6, 25, "IPV6_RECVERR", SockOptWhen::kAlways},
    {kIpprotoIpv6, 29, "IPV6_MULTICAST_ALL", SockOptWhen::kAlways},
    {kIpprotoIpv6, 31, "IPV6_RECVERR_RFC4884", SockOptWhen::kAlways},
    {kIpprotoIpv6, 33, "IPV6_FLOWINFO_SEND", SockOptWhen::kAlways},
    {kIpprotoIpv6, 49, "IPV6_RECVPKTINFO", SockOptWhen::kAlways},
    {kIpprotoIpv6, 51, "IPV6_RECVHOPLIMIT", SockOptWhen::kAlways},
    {kIpprotoIpv6, 53, "IPV6_RECVHOPOPTS", SockOptWhen::kAlways},
    {kIpprotoIpv6, 56, "IPV6_RECVRTHDR", SockOptWhen::kAlways},
    {kIpprotoIpv6, 58, "IPV6_RECVDSTOPTS", SockOptWhen::kAlways},
    {kIpprotoIpv6, 60, "IPV6_RECVPATHMTU", SockOptWhen::kAlways},
    {kIpprotoIpv6, 62, "IPV6_DONTFRAG", SockOptWhen::kAlways},
    {kIpprotoIpv6, 66, "IPV6_RECVTCLASS", SockOptWhen::kAlways},
    {kIpprotoIpv6, 70, "IPV6_AUTOFLOWLABEL", SockOptWhen::kAlways},
    {kIpprotoIpv6, 72, "IPV6_ADDR_PREFERENCES", SockOptWhen::kAlways},
    {kIpprotoIpv6, 73, "IPV6_MINHOPCOUNT", SockOptWhen::kAlways},
    {kIpprotoIpv6, 74, "IPV6_RECVORIGDSTADDR", SockOptWhen::kAlways},
    {kIpprotoIpv6, 77, "IPV6_RECVFRAGSIZE", SockOptWhen::kAlways},
    {kIpprotoUdp, 1, "UDP_CORK", SockOptWhen::kAlways},
    {kIpprotoUdp, 100, "UDP_ENCAP", SockOptWhen::kAlways},
    {kIpprotoUdp, 101, "UDP_NO_CHECK6_TX", SockOptWhen::kAlways},
    {kIpprotoUdp, 102, "UDP_NO_CHECK6_RX", SockOptWhen::kAlways},
    {kIpprotoUdp, 103, "UDP_SEGMENT", SockOptWhen::kAlways},
    {kIpprotoUdp, 104, "UDP_GRO", SockOptWhen::kAlways},
    {kIpprotoTcp, 2, "TCP_MAXSEG", SockOptWhen::kUnconnected},
    {kIpprotoTcp, 7, "TCP_SYNCNT", SockOptWhen::kAlways},
    {kIpprotoTcp, 8, "TCP_LINGER2", SockOptWhen::kAlways},
    {kIpprotoTcp, 10, "TCP_WINDOW_CLAMP", SockOptWhen::kUnconnected},
    {kIpprotoTcp, 16, "TCP_THIN_LINEAR_TIMEOUTS", SockOptWhen::kAlways},
    {kIpprotoTcp, 27, "TCP_SAVE_SYN", SockOptWhen::kAlways},
    {kIpprotoTcp, 36, "TCP_INQ", SockOptWhen::kAlways},
    {kIpprotoTcp, 37, "TCP_TX_DELAY", SockOptWhen::kAlways},
};

// The address of a sockaddr_in (16 bytes) or sockaddr_in6 (28), without
// its port.
std::string HostText(const std::string& sa) {
  std::string t = InetAddressText(sa);  // "1.2.3.4:port" or "[v6]:port"
  std::size_t colon = t.rfind(':');
  if (colon == std::string::npos) return t;
  t.resize(colon);
  if (t.size() >= 2 && t.front() == '[' && t.back() == ']') t = t.substr(1, t.size() - 2);
  return t;
}

}  // namespace

std::span<const SockOptSpec> SockOptSpecs() {
  return kSpecs;
}

std::string SockOptName(int level, int name) {
  for (const SockOptSpec& o : kSpecs)
    if (o.level == level && o.name == name) return o.label;
  return "option " + std::to_string(level) + "/" + std::to_string(name);
}

std::string McastGroupText(const McastGroup& g) {
  std::string t =
      HostText(g.group) + " on " + (g.ifname.empty() ? "device " + std::to_string(g.ifindex) : g.ifname);
  if (g.fmode == 0 && g.sources.empty()) return t;  // MCAST_EXCLUDE, no source: any source
  t += g.fmode == 1 ? ", from " : ", not from ";
  for (std::size_t i = 0; i < g.sources.size(); ++i) {
    if (i != 0) t += " ";
    t += HostText(g.sources[i]);
  }
  return t;
}

}  // namespace ckpt::engine
