// The codecs of the process image's resource sections (events, locks,
// timers, sockets, inet; docs/image-format.md), apart from model.cc.
#include <algorithm>
#include <string>
#include <string_view>

#include "engine/model.h"
#include "engine/model_codec.h"

namespace ckpt::engine {

std::string EncodeEvents(const std::vector<EventFile>& e) {
  std::string o = VersionedSection();
  PutVarint(&o, e.size());
  for (const auto& x : e) {
    PutI32(&o, x.fd);
    o.push_back(static_cast<char>(x.kind));
    PutU32(&o, x.object);
    PutU64(&o, x.count);
    o.push_back(static_cast<char>(x.semaphore ? 1 : 0));
    PutU64(&o, x.sigmask);
    PutI32(&o, x.clockid);
    PutU32(&o, x.settime_flags);
    PutU64(&o, static_cast<std::uint64_t>(x.value_ns));
    PutU64(&o, static_cast<std::uint64_t>(x.interval_ns));
    PutU64(&o, static_cast<std::uint64_t>(x.wall_ns));
    PutVarint(&o, x.watches.size());
    for (const auto& w : x.watches) {
      PutI32(&o, w.tfd);
      PutU32(&o, w.events);
      PutU64(&o, w.data);
    }
    PutVarint(&o, x.inotify.size());
    for (const auto& w : x.inotify) {
      PutI32(&o, w.wd);
      PutU32(&o, w.mask);
      PutString(&o, w.path);
    }
  }
  return o;
}

Status DecodeEvents(std::string_view in, std::vector<EventFile>* e) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "events"));
  std::uint64_t n = r.Varint();
  if (n > (1u << 20)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    EventFile x;
    x.fd = GetI32(r);
    std::uint8_t k = r.U8();
    if (k < static_cast<std::uint8_t>(EventKind::kEventfd) ||
        k > static_cast<std::uint8_t>(EventKind::kInotify))
      r.Fail();
    x.kind = static_cast<EventKind>(k);
    x.object = r.U32();
    x.count = r.U64();
    x.semaphore = r.U8() != 0;
    x.sigmask = r.U64();
    x.clockid = GetI32(r);
    x.settime_flags = r.U32();
    x.value_ns = static_cast<std::int64_t>(r.U64());
    x.interval_ns = static_cast<std::int64_t>(r.U64());
    x.wall_ns = static_cast<std::int64_t>(r.U64());
    std::uint64_t w = r.Varint();
    if (w > (1u << 20)) r.Fail();
    for (std::uint64_t j = 0; j < w && r.ok(); ++j) {
      EpollWatch ew;
      ew.tfd = GetI32(r);
      ew.events = r.U32();
      ew.data = r.U64();
      x.watches.push_back(ew);
    }
    std::uint64_t iw = r.Varint();
    if (iw > (1u << 20)) r.Fail();
    for (std::uint64_t j = 0; j < iw && r.ok(); ++j) {
      InotifyWatch w;
      w.wd = GetI32(r);
      w.mask = r.U32();
      w.path = std::string(r.String());
      if (w.wd <= 0) r.Fail();
      x.inotify.push_back(std::move(w));
    }
    if (x.fd < 0 || x.value_ns < 0 || x.interval_ns < 0) r.Fail();
    e->push_back(std::move(x));
  }
  return Expect(r, "events");
}

std::string EncodeLocks(const std::vector<FileLock>& l) {
  std::string o = VersionedSection();
  PutVarint(&o, l.size());
  for (const auto& x : l) {
    PutI32(&o, x.fd);
    o.push_back(static_cast<char>(x.kind));
    o.push_back(static_cast<char>(x.write ? 1 : 0));
    PutU64(&o, static_cast<std::uint64_t>(x.start));
    PutU64(&o, static_cast<std::uint64_t>(x.len));
  }
  return o;
}

Status DecodeLocks(std::string_view in, std::vector<FileLock>* l) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "locks"));
  std::uint64_t n = r.Varint();
  if (n > (1u << 20)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    FileLock x;
    x.fd = GetI32(r);
    std::uint8_t k = r.U8();
    if (k < static_cast<std::uint8_t>(LockKind::kPosix) || k > static_cast<std::uint8_t>(LockKind::kFlock))
      r.Fail();
    x.kind = static_cast<LockKind>(k);
    x.write = r.U8() != 0;
    x.start = static_cast<std::int64_t>(r.U64());
    x.len = static_cast<std::int64_t>(r.U64());
    if (x.fd < 0 || x.start < 0 || x.len < 0) r.Fail();
    l->push_back(x);
  }
  return Expect(r, "locks");
}

std::string EncodePosixTimers(const std::vector<PosixTimer>& t) {
  std::string o = VersionedSection();
  PutVarint(&o, t.size());
  for (const auto& x : t) {
    PutI32(&o, x.id);
    PutI32(&o, x.clockid);
    PutI32(&o, x.notify);
    PutI32(&o, x.signo);
    PutU64(&o, x.value);
    PutI32(&o, x.tid);
    PutU64(&o, static_cast<std::uint64_t>(x.value_ns));
    PutU64(&o, static_cast<std::uint64_t>(x.interval_ns));
    PutI32(&o, x.overrun);
  }
  return o;
}

Status DecodePosixTimers(std::string_view in, std::vector<PosixTimer>* t) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "timers"));
  std::uint64_t n = r.Varint();
  if (n > (1u << 20)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    PosixTimer x;
    x.id = GetI32(r);
    x.clockid = GetI32(r);
    x.notify = GetI32(r);
    x.signo = GetI32(r);
    x.value = r.U64();
    x.tid = GetI32(r);
    x.value_ns = static_cast<std::int64_t>(r.U64());
    x.interval_ns = static_cast<std::int64_t>(r.U64());
    x.overrun = GetI32(r);
    if (x.id < 0 || x.signo < 0 || x.signo > 64 || x.value_ns < 0 || x.interval_ns < 0) r.Fail();
    t->push_back(x);
  }
  return Expect(r, "timers");
}

std::string EncodeSockets(const std::vector<UnixSocket>& v) {
  std::string o = VersionedSection();
  PutVarint(&o, v.size());
  for (const auto& x : v) {
    PutI32(&o, x.fd);
    PutU32(&o, x.ino);
    PutU32(&o, x.peer);
    o.push_back(static_cast<char>(x.type));
    PutI32(&o, x.rcvbuf);
    PutI32(&o, x.sndbuf);
    o.push_back(static_cast<char>(x.passcred ? 1 : 0));
  }
  return o;
}

Status DecodeSockets(std::string_view in, std::vector<UnixSocket>* v) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "sockets"));
  std::uint64_t n = r.Varint();
  if (n > (1u << 20)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    UnixSocket x;
    x.fd = GetI32(r);
    x.ino = r.U32();
    x.peer = r.U32();
    x.type = r.U8();
    x.rcvbuf = GetI32(r);
    x.sndbuf = GetI32(r);
    x.passcred = r.U8() != 0;
    if (x.fd < 0 || x.ino == 0 || x.peer == 0 || x.ino == x.peer ||
        (x.type != 1 && x.type != 2 && x.type != 5))
      r.Fail();
    v->push_back(x);
  }
  return Expect(r, "sockets");
}

std::string EncodeInetSockets(const std::vector<InetSocket>& v) {
  std::string o = VersionedSection();
  PutVarint(&o, v.size());
  for (const auto& x : v) {
    PutI32(&o, x.fd);
    PutU64(&o, x.ino);
    o.push_back(static_cast<char>(x.family));
    o.push_back(static_cast<char>(x.type));
    o.push_back(static_cast<char>(x.protocol));
    PutString(&o, x.addr);
    PutI32(&o, x.backlog);
    o.push_back(static_cast<char>((x.reuseaddr ? 1 : 0) | (x.reuseport ? 2 : 0) | (x.v6only ? 4 : 0) |
                                  (x.nodelay ? 8 : 0)));
    PutI32(&o, x.rcvbuf);
    PutI32(&o, x.sndbuf);
  }
  return o;
}

Status DecodeInetSockets(std::string_view in, std::vector<InetSocket>* v) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "inet"));
  std::uint64_t n = r.Varint();
  if (n > (1u << 20)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    InetSocket x;
    x.fd = GetI32(r);
    x.ino = r.U64();
    x.family = r.U8();
    x.type = r.U8();
    x.protocol = r.U8();
    x.addr = std::string(r.String());
    x.backlog = GetI32(r);
    std::uint8_t b = r.U8();
    x.reuseaddr = (b & 1) != 0;
    x.reuseport = (b & 2) != 0;
    x.v6only = (b & 4) != 0;
    x.nodelay = (b & 8) != 0;
    x.rcvbuf = GetI32(r);
    x.sndbuf = GetI32(r);
    bool v4 = x.family == 2 && x.addr.size() == 16, v6 = x.family == 10 && x.addr.size() == 28;
    if (x.fd < 0 || (!v4 && !v6) || (x.type != 1 && x.type != 2)) r.Fail();
    v->push_back(std::move(x));
  }
  return Expect(r, "inet");
}

std::string EncodeUnixListeners(const std::vector<UnixListener>& v) {
  std::string o = VersionedSection();
  PutVarint(&o, v.size());
  for (const auto& x : v) {
    PutI32(&o, x.fd);
    PutU64(&o, x.ino);
    o.push_back(static_cast<char>(x.type));
    PutString(&o, x.name);
    PutI32(&o, x.backlog);
    PutU32(&o, x.mode);
    PutU32(&o, x.uid);
    PutU32(&o, x.gid);
    PutI32(&o, x.rcvbuf);
    PutI32(&o, x.sndbuf);
    o.push_back(static_cast<char>(x.passcred ? 1 : 0));
  }
  return o;
}

Status DecodeUnixListeners(std::string_view in, std::vector<UnixListener>* v) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "unix_listeners"));
  std::uint64_t n = r.Varint();
  if (n > (1u << 20)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    UnixListener x;
    x.fd = GetI32(r);
    x.ino = r.U64();
    x.type = r.U8();
    x.name = std::string(r.String());
    x.backlog = GetI32(r);
    x.mode = r.U32();
    x.uid = r.U32();
    x.gid = r.U32();
    x.rcvbuf = GetI32(r);
    x.sndbuf = GetI32(r);
    x.passcred = r.U8() != 0;
    if (x.fd < 0 || x.name.empty() || x.name.size() > 108 || (x.type != 1 && x.type != 5) || x.backlog < 0)
      r.Fail();
    v->push_back(std::move(x));
  }
  return Expect(r, "unix_listeners");
}

std::string EncodeUnixExternal(const std::vector<UnixSocket>& v) {
  std::string o = VersionedSection();
  PutVarint(&o, v.size());
  for (const auto& x : v) {
    PutI32(&o, x.fd);
    PutU32(&o, x.ino);
    o.push_back(static_cast<char>(x.type));
    PutString(&o, x.peer_name);
    PutI32(&o, x.rcvbuf);
    PutI32(&o, x.sndbuf);
    o.push_back(static_cast<char>(x.passcred ? 1 : 0));
  }
  return o;
}

Status DecodeUnixExternal(std::string_view in, std::vector<UnixSocket>* v) {
  ByteReader r(in);
  RETURN_IF_ERROR(CheckVersion(r, "unix_external"));
  std::uint64_t n = r.Varint();
  if (n > (1u << 20)) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    UnixSocket x;
    x.fd = GetI32(r);
    x.ino = r.U32();
    x.type = r.U8();
    x.peer_name = std::string(r.String());
    x.rcvbuf = GetI32(r);
    x.sndbuf = GetI32(r);
    x.passcred = r.U8() != 0;
    if (x.fd < 0 || x.peer_name.empty() || x.peer_name.size() > 108 ||
        (x.type != 1 && x.type != 2 && x.type != 5))
      r.Fail();
    v->push_back(std::move(x));
  }
  return Expect(r, "unix_external");
}

// Version 2 of the connections section (written only when a connection is
// half-closed, so that other images stay readable by older ckpt, and an
// older ckpt refuses this one by its version instead of restoring the
// connection as open) adds a flags byte per TCP connection.
constexpr std::uint8_t kConnectionsHalfClosed = 2;
constexpr std::uint8_t kReadShutFlag = 1;
constexpr std::uint8_t kWriteShutFlag = 2;

std::string EncodeConnections(const std::vector<InetSocket>& v) {
  std::uint64_t n = 0;
  bool half_closed = false;
  for (const auto& x : v) {
    n += x.peer.empty() ? 0 : 1;
    half_closed =
        half_closed || (!x.peer.empty() && x.protocol == 6 && (x.tcp.read_shut || x.tcp.write_shut));
  }
  if (n == 0) return "";
  std::string o =
      half_closed ? std::string(1, static_cast<char>(kConnectionsHalfClosed)) : VersionedSection();
  PutVarint(&o, n);
  for (const auto& x : v) {
    if (x.peer.empty()) continue;
    PutU64(&o, x.ino);
    PutString(&o, x.peer);
    if (x.protocol != 6) continue;  // UDP: the peer is all
    const TcpRepair& t = x.tcp;
    PutString(&o, t.lock);
    for (std::uint32_t u : {t.snd_seq, t.rcv_seq, t.unsent, t.mss, t.timestamp, t.snd_wl1, t.snd_wnd,
                            t.max_window, t.rcv_wnd, t.rcv_wup})
      PutU32(&o, u);
    o.push_back(static_cast<char>(t.options));
    o.push_back(static_cast<char>(t.snd_wscale));
    o.push_back(static_cast<char>(t.rcv_wscale));
    PutString(&o, t.sendq);
    PutString(&o, t.recvq);
    if (half_closed)
      o.push_back(static_cast<char>((t.read_shut ? kReadShutFlag : 0) | (t.write_shut ? kWriteShutFlag : 0)));
  }
  return o;
}

Status DecodeConnections(std::string_view in, std::vector<InetSocket>* v) {
  ByteReader r(in);
  bool half_closed = !in.empty() && static_cast<std::uint8_t>(in[0]) == kConnectionsHalfClosed;
  if (half_closed) {
    (void)r.U8();
  } else {
    RETURN_IF_ERROR(CheckVersion(r, "connections"));
  }
  std::uint64_t n = r.Varint();
  if (n > v->size()) r.Fail();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    std::uint64_t ino = r.U64();
    auto it = std::find_if(v->begin(), v->end(), [&](const InetSocket& s) { return s.ino == ino; });
    if (it == v->end() || !it->peer.empty()) {
      r.Fail();
      break;
    }
    it->peer = std::string(r.String());
    if (it->peer.size() != it->addr.size()) r.Fail();
    if (it->protocol != 6) continue;
    TcpRepair& t = it->tcp;
    t.lock = std::string(r.String());
    for (std::uint32_t* u : {&t.snd_seq, &t.rcv_seq, &t.unsent, &t.mss, &t.timestamp, &t.snd_wl1, &t.snd_wnd,
                             &t.max_window, &t.rcv_wnd, &t.rcv_wup})
      *u = r.U32();
    t.options = r.U8();
    t.snd_wscale = r.U8();
    t.rcv_wscale = r.U8();
    t.sendq = std::string(r.String());
    t.recvq = std::string(r.String());
    if (half_closed) {
      std::uint8_t flags = r.U8();
      if ((flags & ~(kReadShutFlag | kWriteShutFlag)) != 0) r.Fail();
      t.read_shut = (flags & kReadShutFlag) != 0;
      t.write_shut = (flags & kWriteShutFlag) != 0;
    }
    if (t.unsent > t.sendq.size() || t.snd_wscale > 14 || t.rcv_wscale > 14) r.Fail();
  }
  return Expect(r, "connections");
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
