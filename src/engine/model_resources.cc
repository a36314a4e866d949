// The codecs of the process image's resource sections (events, locks,
// timers, sockets, inet; docs/image-format.md), apart from model.cc: one
// field list per struct (tagged.h), the checks beyond it after each decoder.
#include <algorithm>
#include <string>
#include <string_view>

#include "engine/model.h"
#include "engine/model_codec.h"

namespace ckpt::engine {

template <class IO>
void Fields(IO& io, EpollWatch& w) {
  io(1, "tfd", w.tfd);
  io(2, "events", w.events);
  io(3, "data", w.data);
}

template <class IO>
void Fields(IO& io, InotifyWatch& w) {
  io(1, "wd", w.wd);
  io(2, "mask", w.mask);
  io(3, "path", w.path);
}

template <class IO>
void Fields(IO& io, EventFile& x) {
  io(1, "fd", x.fd);
  io(2, "kind", x.kind);
  io(3, "object", x.object);
  io(4, "count", x.count);
  io(5, "semaphore", x.semaphore);
  io(6, "sigmask", x.sigmask);
  io(7, "clockid", x.clockid);
  io(8, "settime_flags", x.settime_flags);
  io(9, "value_ns", x.value_ns);
  io(10, "interval_ns", x.interval_ns);
  io(11, "wall_ns", x.wall_ns);
  io(12, "watch", x.watches, Max{1u << 20});
  io(13, "inotify", x.inotify, Max{1u << 20});
}

template <class IO>
void Fields(IO& io, FileLock& x) {
  io(1, "fd", x.fd);
  io(2, "kind", x.kind);
  io(3, "write", x.write);
  io(4, "start", x.start);
  io(5, "len", x.len);
}

template <class IO>
void Fields(IO& io, PosixTimer& x) {
  io(1, "id", x.id);
  io(2, "clockid", x.clockid);
  io(3, "notify", x.notify);
  io(4, "signo", x.signo);
  io(5, "value", x.value);
  io(6, "tid", x.tid);
  io(7, "value_ns", x.value_ns);
  io(8, "interval_ns", x.interval_ns);
  io(9, "overrun", x.overrun);
}

template <class IO>
void Fields(IO& io, SockOpt& x) {
  io(1, "level", x.level);
  io(2, "name", x.name);
  io(3, "value", x.value);
}

template <class IO>
void Fields(IO& io, McastGroup& x) {
  io(1, "ifindex", x.ifindex);
  io(2, "ifname", x.ifname);
  io(3, "group", x.group);
  io(4, "fmode", x.fmode);
  io(5, "source", x.sources, Max{1u << 16});
}

template <class IO>
void Fields(IO& io, SockExtras& x) {
  io(1, "option", x.options, Max{1u << 10});
  io(2, "group", x.groups, Max{1u << 16});
  io(3, "filter", x.filter);
  io(4, "filter_locked", x.filter_locked);
}

// Both socket pairs (peer set) and sockets connected to a peer outside
// (peer_name set).
template <class IO>
void Fields(IO& io, UnixSocket& x) {
  io(1, "fd", x.fd);
  io(2, "ino", x.ino);
  io(3, "peer", x.peer);
  io(4, "type", x.type);
  io(5, "rcvbuf", x.rcvbuf);
  io(6, "sndbuf", x.sndbuf);
  io(7, "passcred", x.passcred);
  io(8, "peer_name", x.peer_name);
  // Written only when there are any; critical (an older ckpt would drop them).
  io(9, "extras", x.extras, kCritical);
}

template <class IO>
void Fields(IO& io, UnixListener& x) {
  io(1, "fd", x.fd);
  io(2, "ino", x.ino);
  io(3, "type", x.type);
  io(4, "name", x.name);
  io(5, "backlog", x.backlog);
  io(6, "mode", x.mode);
  io(7, "uid", x.uid);
  io(8, "gid", x.gid);
  io(9, "rcvbuf", x.rcvbuf);
  io(10, "sndbuf", x.sndbuf);
  io(11, "passcred", x.passcred);
  io(12, "extras", x.extras, kCritical);
}

// The socket itself; its peer and TCP state are in the connections section.
template <class IO>
void Fields(IO& io, InetSocket& x) {
  io(1, "fd", x.fd);
  io(2, "ino", x.ino);
  io(3, "family", x.family);
  io(4, "type", x.type);
  io(5, "protocol", x.protocol);
  io(6, "addr", x.addr);
  io(7, "backlog", x.backlog);
  io(8, "reuseaddr", x.reuseaddr);
  io(9, "reuseport", x.reuseport);
  io(10, "v6only", x.v6only);
  io(11, "nodelay", x.nodelay);
  io(12, "rcvbuf", x.rcvbuf);
  io(13, "sndbuf", x.sndbuf);
  // Written only when set, and critical: a ckpt before them would restore
  // the socket without them, silently.
  io(14, "keepalive", x.keepalive, kCritical);
  io(15, "keepidle", x.keepidle, kCritical);
  io(16, "keepintvl", x.keepintvl, kCritical);
  io(17, "keepcnt", x.keepcnt, kCritical);
  io(18, "linger", x.linger, kCritical);
  io(19, "linger_s", x.linger_s, kCritical);
  io(20, "user_timeout_ms", x.user_timeout_ms, kCritical);
  io(21, "cork", x.cork, kCritical);
  io(22, "oobinline", x.oobinline, kCritical);
  io(23, "tos", x.tos, kCritical);
  io(24, "priority", x.priority, kCritical);
  io(25, "mark", x.mark, kCritical);
  io(26, "freebind", x.freebind, kCritical);
  io(27, "transparent", x.transparent, kCritical);
  io(28, "defer_accept_s", x.defer_accept_s, kCritical);
  io(29, "fastopen_qlen", x.fastopen_qlen, kCritical);
  io(30, "notsent_lowat", x.notsent_lowat, kCritical);
  io(31, "congestion", x.congestion, kCritical);
  io(32, "extras", x.extras, kCritical);
}

template <class IO>
void Fields(IO& io, TcpRepair& t) {
  io(1, "lock", t.lock);
  io(2, "snd_seq", t.snd_seq);
  io(3, "rcv_seq", t.rcv_seq);
  io(4, "unsent", t.unsent);
  io(5, "mss", t.mss);
  io(6, "timestamp", t.timestamp);
  io(7, "snd_wl1", t.snd_wl1);
  io(8, "snd_wnd", t.snd_wnd);
  io(9, "max_window", t.max_window);
  io(10, "rcv_wnd", t.rcv_wnd);
  io(11, "rcv_wup", t.rcv_wup);
  io(12, "options", t.options);
  io(13, "snd_wscale", t.snd_wscale);
  io(14, "rcv_wscale", t.rcv_wscale);
  io(15, "sendq", t.sendq);
  io(16, "recvq", t.recvq);
  // Added after the first release: an older reader would restore a
  // half-closed connection as open, so it must refuse them (written only
  // when set).
  io(17, "read_shut", t.read_shut, kCritical);
  io(18, "write_shut", t.write_shut, kCritical);
}

// One record of the connections section: the connection of inet socket `ino`.
struct Connection {
  std::uint64_t ino = 0;
  std::string peer;
  TcpRepair tcp;  // TCP only
};

template <class IO>
void Fields(IO& io, Connection& c) {
  io(1, "ino", c.ino);
  io(2, "peer", c.peer);
  io(3, "tcp", c.tcp);
}

namespace {

constexpr auto kEventList = [](auto& io, std::vector<EventFile>& v) { io(1, "event", v, Max{1u << 20}); };
constexpr auto kLockList = [](auto& io, std::vector<FileLock>& v) { io(1, "lock", v, Max{1u << 20}); };
constexpr auto kTimerList = [](auto& io, std::vector<PosixTimer>& v) { io(1, "timer", v, Max{1u << 20}); };
constexpr auto kSocketList = [](auto& io, std::vector<UnixSocket>& v) { io(1, "socket", v, Max{1u << 20}); };
constexpr auto kInetList = [](auto& io, std::vector<InetSocket>& v) { io(1, "socket", v, Max{1u << 20}); };
constexpr auto kListenerList = [](auto& io, std::vector<UnixListener>& v) {
  io(1, "listener", v, Max{1u << 20});
};
constexpr auto kConnectionList = [](auto& io, std::vector<Connection>& v) {
  io(1, "connection", v, Max{1u << 20});
};

bool UnixType(std::uint8_t t, bool datagram_ok) {
  return t == 1 || t == 5 || (datagram_ok && t == 2);
}

}  // namespace

std::string EncodeEvents(const std::vector<EventFile>& e) {
  return EncodeSection(e, kEventList);
}

Status DecodeEvents(std::string_view in, std::vector<EventFile>* e) {
  RETURN_IF_ERROR(DecodeSection(in, "events", e, kEventList));
  for (const EventFile& x : *e) {
    bool ok = x.kind >= EventKind::kEventfd && x.kind <= EventKind::kInotify && x.fd >= 0 &&
              x.value_ns >= 0 && x.interval_ns >= 0;
    for (const auto& w : x.inotify) ok = ok && w.wd > 0;
    if (!ok) return Malformed("events");
  }
  return Status::Ok();
}

std::string EncodeLocks(const std::vector<FileLock>& l) {
  return EncodeSection(l, kLockList);
}

Status DecodeLocks(std::string_view in, std::vector<FileLock>* l) {
  RETURN_IF_ERROR(DecodeSection(in, "locks", l, kLockList));
  for (const FileLock& x : *l) {
    if (x.kind < LockKind::kPosix || x.kind > LockKind::kFlock || x.fd < 0 || x.start < 0 || x.len < 0)
      return Malformed("locks");
  }
  return Status::Ok();
}

std::string EncodePosixTimers(const std::vector<PosixTimer>& t) {
  return EncodeSection(t, kTimerList);
}

Status DecodePosixTimers(std::string_view in, std::vector<PosixTimer>* t) {
  RETURN_IF_ERROR(DecodeSection(in, "timers", t, kTimerList));
  for (const PosixTimer& x : *t) {
    if (x.id < 0 || x.signo < 0 || x.signo > 64 || x.value_ns < 0 || x.interval_ns < 0)
      return Malformed("timers");
  }
  return Status::Ok();
}

std::string EncodeSockets(const std::vector<UnixSocket>& v) {
  return EncodeSection(v, kSocketList);
}

Status DecodeSockets(std::string_view in, std::vector<UnixSocket>* v) {
  RETURN_IF_ERROR(DecodeSection(in, "sockets", v, kSocketList));
  for (const UnixSocket& x : *v) {
    if (x.fd < 0 || x.ino == 0 || x.peer == 0 || x.ino == x.peer || !UnixType(x.type, true) ||
        !x.peer_name.empty())
      return Malformed("sockets");
  }
  return Status::Ok();
}

std::string EncodeInetSockets(const std::vector<InetSocket>& v) {
  return EncodeSection(v, kInetList);
}

Status DecodeInetSockets(std::string_view in, std::vector<InetSocket>* v) {
  RETURN_IF_ERROR(DecodeSection(in, "inet", v, kInetList));
  for (const InetSocket& x : *v) {
    bool v4 = x.family == 2 && x.addr.size() == 16, v6 = x.family == 10 && x.addr.size() == 28;
    if (x.fd < 0 || (!v4 && !v6) || (x.type != 1 && x.type != 2)) return Malformed("inet");
  }
  return Status::Ok();
}

std::string EncodeUnixListeners(const std::vector<UnixListener>& v) {
  return EncodeSection(v, kListenerList);
}

Status DecodeUnixListeners(std::string_view in, std::vector<UnixListener>* v) {
  RETURN_IF_ERROR(DecodeSection(in, "unix_listeners", v, kListenerList));
  for (const UnixListener& x : *v) {
    if (x.fd < 0 || x.name.empty() || x.name.size() > 108 || !UnixType(x.type, false) || x.backlog < 0)
      return Malformed("unix_listeners");
  }
  return Status::Ok();
}

std::string EncodeUnixExternal(const std::vector<UnixSocket>& v) {
  return EncodeSection(v, kSocketList);
}

Status DecodeUnixExternal(std::string_view in, std::vector<UnixSocket>* v) {
  RETURN_IF_ERROR(DecodeSection(in, "unix_external", v, kSocketList));
  for (const UnixSocket& x : *v) {
    if (x.fd < 0 || x.peer_name.empty() || x.peer_name.size() > 108 || !UnixType(x.type, true) || x.peer != 0)
      return Malformed("unix_external");
  }
  return Status::Ok();
}

std::string EncodeConnections(const std::vector<InetSocket>& v) {
  std::vector<Connection> c;
  for (const auto& x : v) {
    if (!x.peer.empty()) c.push_back({x.ino, x.peer, x.protocol == 6 ? x.tcp : TcpRepair{}});
  }
  if (c.empty()) return "";
  return EncodeSection(c, kConnectionList);
}

Status DecodeConnections(std::string_view in, std::vector<InetSocket>* v) {
  std::vector<Connection> conns;
  RETURN_IF_ERROR(DecodeSection(in, "connections", &conns, kConnectionList));
  if (conns.size() > v->size()) return Malformed("connections");
  for (Connection& c : conns) {
    auto it = std::find_if(v->begin(), v->end(), [&](const InetSocket& s) { return s.ino == c.ino; });
    if (it == v->end() || !it->peer.empty() || c.peer.size() != it->addr.size())
      return Malformed("connections");
    const TcpRepair& t = c.tcp;
    if (it->protocol != 6 ? !(t == TcpRepair{})
                          : (t.unsent > t.sendq.size() || t.snd_wscale > 14 || t.rcv_wscale > 14))
      return Malformed("connections");
    it->peer = std::move(c.peer);
    it->tcp = std::move(c.tcp);
  }
  return Status::Ok();
}

std::string InetAddressText(const std::string& a) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned>(static_cast<unsigned char>(a[i])); };
  if (a.size() < 8) return "?";
  std::string port = std::to_string(byte(2) << 8 | byte(3));  // network order
  if (a.size() == 16) {
    return std::to_string(byte(4)) + "." + std::to_string(byte(5)) + "." + std::to_string(byte(6)) + "." +
           std::to_string(byte(7)) + ":" + port;
  }
  if (a.size() != 28) return "?";
  std::string host;
  static const char* hex = "0123456789abcdef";
  for (std::size_t g = 0; g < 8; ++g) {
    unsigned v = byte(8 + 2 * g) << 8 | byte(9 + 2 * g);
    std::string part;
    do {
      part.insert(part.begin(), hex[v & 15]);
      v >>= 4;
    } while (v != 0);
    host += (g == 0 ? "" : ":") + part;
  }
  return "[" + host + "]:" + port;
}

}  // namespace ckpt::engine
