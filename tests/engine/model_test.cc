// Round trip and rejection tests of the process image model (engine/model.h).
#include "engine/model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>
#include <utility>

#include "engine/tagged.h"
#include "engine/tree_model.h"
#include "image/reader.h"
#include "image/writer.h"
#include "util/bytes.h"

namespace ckpt::engine {
namespace {

ProcessModel Sample() {
  ProcessModel m;
  m.core.pid = 4242;
  m.core.comm = "worker";
  m.core.exe_file = 0;
  m.core.cwd = "/srv/job";
  m.core.umask = 027;
  m.core.personality = 0x0040000;
  m.core.rlimits = {{1, 2}, {~0ull, ~0ull}};
  m.core.mm.brk = 0x5555000;
  m.core.mm.env_end = 0x7ffe0000;
  m.core.auxv = {33, 0x7fff1000, 0, 0};
  m.core.kernel_release = "6.18.0";
  m.core.xsave_size = 2432;
  m.core.itimers = std::vector<std::uint64_t>(12, 7);
  m.core.leader = 3;
  ThreadState t;
  t.tid = 4242;
  for (int i = 0; i < kGpRegs; ++i) t.gpregs[i] = 1000 + i;
  t.xsave = std::string(2432, 'x');
  t.sigmask = 0x8000;
  t.rseq_ptr = 0x7f0000001000;
  t.rseq_len = 32;
  t.rseq_sig = 0x53053053;
  t.robust_list = 0x7f0000002000;
  t.robust_len = 24;
  t.comm = "worker-0";
  t.pending = {std::string(128, 's')};
  m.threads = {t, t};
  m.threads[1].tid = 4243;
  m.files = {{"/usr/bin/worker", 1234, 5678, 0100755, 9, 10, "\x01\x02", false}};
  m.vmas = {{0x400000, 0x401000, 5, kVmaMayWrite, 0, 0, VmaKind::kFile, "/usr/bin/worker"},
            {0x500000, 0x600000, 3, 0, 0, -1, VmaKind::kHeap, "[heap]"}};
  Fd fd;
  fd.fd = 3;
  fd.kind = FdKind::kPipe;
  fd.pipe_ino = 77;
  fd.pipe_internal = true;
  Fd dup = fd;
  dup.fd = 4;
  dup.dup_of = 3;
  m.fds = {fd, dup};
  m.signals.actions[9] = {0x401000, 0x04000000, 0x401100, 1};
  m.pagemap = {{0x500000, 2}};
  m.vdso = "vdso bytes";
  return m;
}

std::string Write(const ProcessModel& m) {
  image::StringSink sink;
  image::ImageWriter w(&sink, image::ImageKind::kProcess);
  EXPECT_TRUE(w.Begin().ok());
  EXPECT_TRUE(WriteModel(&w, m).ok());
  EXPECT_TRUE(w.AddSection(kSecPages, "pages", "", std::string(2 * 4096, 'p')).ok());
  EXPECT_TRUE(w.AddSection(kSecPagemap, "pagemap", "", EncodePagemap(m.pagemap)).ok());
  EXPECT_TRUE(w.Finish().ok());
  return sink.buffer();
}

// Writes the sections WriteModel writes for Sample(), each payload passed
// through `edit` (by section name) first.
std::string WriteEdited(const ProcessModel& m,
                        const std::function<void(const std::string&, std::string*)>& edit) {
  image::StringSink sink;
  image::ImageWriter w(&sink, image::ImageKind::kProcess);
  EXPECT_TRUE(w.Begin().ok());
  auto add = [&](std::uint32_t type, const std::string& name, std::string payload) {
    edit(name, &payload);
    EXPECT_TRUE(w.AddSection(type, name, "", payload).ok());
  };
  add(kSecCore, "core", EncodeCore(m.core));
  for (const auto& t : m.threads) add(kSecThread, "thread." + std::to_string(t.tid), EncodeThread(t));
  add(kSecFiles, "files", EncodeFiles(m.files));
  add(kSecVmas, "vmas", EncodeVmas(m.vmas));
  add(kSecFds, "fds", EncodeFds(m.fds));
  add(kSecSignals, "signals", EncodeSignals(m.signals));
  add(kSecVdso, "vdso", m.vdso);
  add(kSecPagemap, "pagemap", EncodePagemap(m.pagemap));
  EXPECT_TRUE(w.AddSection(kSecPages, "pages", "", std::string(2 * 4096, 'p')).ok());
  EXPECT_TRUE(w.Finish().ok());
  return sink.buffer();
}

Result<ProcessModel> Read(std::string bytes) {
  auto r = image::ImageReader::Open(std::make_unique<image::StringSource>(std::move(bytes)));
  if (!r.ok()) return r.status();
  return ReadModel(**r);
}

TEST(EngineModel, RoundTrip) {
  ProcessModel m = Sample();
  auto back = Read(Write(m));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->core.pid, 4242);
  EXPECT_EQ(back->core.comm, "worker");
  EXPECT_EQ(back->core.cwd, "/srv/job");
  EXPECT_EQ(back->core.umask, 027u);
  EXPECT_EQ(back->core.rlimits[1].max, ~0ull);
  EXPECT_EQ(back->core.mm.brk, 0x5555000u);
  EXPECT_EQ(back->core.auxv, m.core.auxv);
  EXPECT_EQ(back->core.itimers, m.core.itimers);
  EXPECT_EQ(back->core.leader, 3u);
  ASSERT_EQ(back->threads.size(), 2u);
  EXPECT_EQ(back->threads[1].tid, 4243);
  EXPECT_EQ(back->threads[0].gpregs, m.threads[0].gpregs);
  EXPECT_EQ(back->threads[0].xsave, m.threads[0].xsave);
  EXPECT_EQ(back->threads[0].rseq_sig, 0x53053053u);
  EXPECT_EQ(back->threads[0].robust_list, 0x7f0000002000u);
  EXPECT_EQ(back->threads[0].comm, "worker-0");
  EXPECT_EQ(back->threads[0].pending, m.threads[0].pending);
  EXPECT_EQ(back->files[0].build_id, "\x01\x02");
  ASSERT_EQ(back->vmas.size(), 2u);
  EXPECT_EQ(back->vmas[1].kind, VmaKind::kHeap);
  ASSERT_EQ(back->fds.size(), 2u);
  EXPECT_TRUE(back->fds[0].pipe_internal);
  EXPECT_EQ(back->fds[1].dup_of, 3);
  EXPECT_EQ(back->signals.actions[9].restorer, 0x401100u);
  EXPECT_EQ(back->pagemap.size(), 1u);
  EXPECT_EQ(back->vdso, "vdso bytes");
}

TEST(EngineModel, CredentialsRoundTripAndOldImagesHaveNone) {
  ProcessModel m = Sample();
  auto old = Read(Write(m));  // as written before credentials were recorded
  ASSERT_TRUE(old.ok()) << old.status().message();
  EXPECT_FALSE(old->creds.recorded);
  m.creds.recorded = true;
  m.creds.dumpable = 1;
  for (const auto& t : m.threads) {
    ThreadCreds c;
    c.tid = t.tid;
    c.uid = {65534, 65534, 65534, 65534};
    c.gid = {65534, 100, 65534, 100};
    c.groups = {4, 24};
    c.cap_inh = 0x400;
    c.cap_prm = c.cap_eff = c.cap_amb = 0x400;
    c.cap_bnd = 0x1fffeffffffull;
    c.securebits = 9;
    c.no_new_privs = true;
    m.creds.threads.push_back(c);
  }
  auto back = Read(Write(m));
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_TRUE(back->creds.recorded);
  ASSERT_EQ(back->creds.threads.size(), 2u);
  EXPECT_TRUE(back->creds.threads[1] == m.creds.threads[1]);
  // Credentials of a thread the image does not have: corrupt.
  m.creds.threads[1].tid = 9999;
  back = Read(Write(m));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kCorruption);
}

TEST(EngineModel, EventFilesRoundTripAndMustMatchTheirDescriptors) {
  ProcessModel m = Sample();
  Fd ev;
  ev.fd = 5;
  ev.kind = FdKind::kEvent;
  Fd ep = ev;
  ep.fd = 6;
  m.fds.push_back(ev);
  m.fds.push_back(ep);
  EventFile timer;
  timer.fd = 5;
  timer.kind = EventKind::kTimerfd;
  timer.object = 3;
  timer.count = 2;
  timer.clockid = 0;
  timer.settime_flags = 3;
  timer.value_ns = 3600000000000;
  timer.interval_ns = 20000000;
  timer.wall_ns = 1800000000000000000;
  EventFile poll;
  poll.fd = 6;
  poll.kind = EventKind::kEpoll;
  poll.watches = {{5, 0x80000019u, 0xdeadbeefcafeull}, {3, 1, 3}};
  Fd in = ev;
  in.fd = 8;
  m.fds.push_back(in);
  EventFile watch;
  watch.fd = 8;
  watch.kind = EventKind::kInotify;
  watch.count = 16;
  watch.inotify = {{1, 2, "/var/log/app.log"}, {7, 0x100, "/tmp"}};
  m.events = {timer, poll, watch};
  auto back = Read(Write(m));
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->events.size(), 3u);
  EXPECT_TRUE(back->events[2].inotify == watch.inotify);
  EXPECT_EQ(back->fds[2].kind, FdKind::kEvent);
  const EventFile& t = back->events[0];
  EXPECT_EQ(t.kind, EventKind::kTimerfd);
  EXPECT_EQ(t.object, 3u);
  EXPECT_EQ(t.count, 2u);
  EXPECT_EQ(t.settime_flags, 3u);
  EXPECT_EQ(t.value_ns, timer.value_ns);
  EXPECT_EQ(t.interval_ns, timer.interval_ns);
  EXPECT_EQ(t.wall_ns, timer.wall_ns);
  EXPECT_TRUE(back->events[1].watches == poll.watches);
  // An event descriptor without its file, or a file without its descriptor: corrupt.
  ProcessModel lost = m;
  lost.events.erase(lost.events.begin() + 1);
  back = Read(Write(lost));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kCorruption);
  ProcessModel stray = m;
  stray.events[1].fd = 4;
  back = Read(Write(stray));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kCorruption);
}

TEST(EngineModel, LocksRoundTripAndNameTheirDescriptors) {
  ProcessModel m = Sample();
  m.locks = {{3, LockKind::kPosix, false, 120, 8},
             {3, LockKind::kFlock, true, 0, 0},
             {4, LockKind::kOfd, true, 0, 0}};
  m.fds[1].dup_of = -1;  // fd 4: its own description
  auto back = Read(Write(m));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->locks == m.locks);
  m.fds[1].dup_of = 3;  // a lock must name the lowest descriptor of its description
  back = Read(Write(m));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kCorruption);
}

TEST(EngineModel, PosixTimersRoundTrip) {
  ProcessModel m = Sample();
  PosixTimer t;
  t.id = 2;
  t.clockid = 1;
  t.notify = 4;  // SIGEV_SIGNAL | SIGEV_THREAD_ID
  t.signo = 12;
  t.value = 0x77;
  t.tid = 4243;
  t.value_ns = 5000000;
  t.interval_ns = 15000000;
  t.overrun = 3;
  m.posix_timers = {t};
  auto back = Read(Write(m));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->posix_timers == m.posix_timers);
  EXPECT_TRUE(Read(Write(Sample()))->posix_timers.empty());
}

TEST(EngineModel, SocketPairsRoundTrip) {
  ProcessModel m = Sample();
  Fd so;
  so.fd = 7;
  so.kind = FdKind::kSocket;
  so.pipe_ino = 1001;
  m.fds.push_back(so);
  UnixSocket u;
  u.fd = 7;
  u.ino = 1001;
  u.peer = 1002;
  u.type = 2;  // SOCK_DGRAM
  u.rcvbuf = 425984;
  u.sndbuf = 212992;
  u.passcred = true;
  m.sockets = {u};
  auto back = Read(Write(m));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->sockets == m.sockets);
  m.sockets[0].peer = m.sockets[0].ino;  // its own peer: corrupt
  back = Read(Write(m));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kCorruption);
}

TEST(EngineModel, InetSocketsRoundTrip) {
  ProcessModel m = Sample();
  Fd so;
  so.fd = 9;
  so.kind = FdKind::kInet;
  m.fds.push_back(so);
  InetSocket u;
  u.fd = 9;
  u.ino = 77;
  u.family = 2;  // AF_INET
  u.type = 1;    // SOCK_STREAM
  u.protocol = 6;
  u.addr = std::string(16, '\0');
  u.addr[0] = 2;
  u.backlog = 511;
  u.reuseaddr = true;
  u.nodelay = true;
  m.inet_sockets = {u};
  auto back = Read(Write(m));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->inet_sockets == m.inet_sockets);
  // The kept options, each away from its default.
  InetSocket& k = m.inet_sockets[0];
  k.keepalive = k.linger = k.cork = k.oobinline = k.freebind = k.transparent = true;
  k.keepidle = 77;
  k.keepintvl = 11;
  k.keepcnt = 5;
  k.linger_s = 9;
  k.user_timeout_ms = 12345;
  k.tos = 0x10;
  k.priority = 3;
  k.mark = 42;
  k.defer_accept_s = 7;
  k.fastopen_qlen = 16;
  k.notsent_lowat = 65536;
  k.congestion = "reno";
  back = Read(Write(m));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->inet_sockets == m.inet_sockets);
  // The rest: raw options (a negative level or value too), groups with sources, a filter.
  k.extras.options = {{1, 25, std::string("d0\0", 3)}, {0, 33, std::string("\x05\0\0\0", 4)}, {-7, 9, ""}};
  McastGroup g;
  g.ifindex = 3;
  g.ifname = "d0";
  g.group = std::string(16, '\xef');
  g.fmode = 1;
  g.sources = {std::string(16, '\x0a'), std::string(16, '\x0b')};
  k.extras.groups = {g, McastGroup{}};
  k.extras.filter = std::string(32, '\x15');
  k.extras.filter_locked = true;
  back = Read(Write(m));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->inet_sockets == m.inet_sockets);
  m.inet_sockets[0].addr.resize(10);  // not a sockaddr_in
  back = Read(Write(m));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kCorruption);
}

TEST(EngineModel, ConnectionsRoundTrip) {
  ProcessModel m = Sample();
  Fd tcp, udp;
  tcp.fd = 9;
  tcp.kind = FdKind::kInetConnected;
  udp.fd = 10;
  udp.kind = FdKind::kInetConnected;
  m.fds.push_back(tcp);
  m.fds.push_back(udp);
  InetSocket t;
  t.fd = 9;
  t.ino = 77;
  t.family = 2;  // AF_INET
  t.type = 1;    // SOCK_STREAM
  t.protocol = 6;
  t.addr = std::string(16, '\0');
  t.addr[0] = 2;
  t.peer = t.addr;
  t.peer[3] = 80;
  t.tcp.lock = "ckpt_0123456789abcdef";
  t.tcp.snd_seq = 0xfffffff0u;  // wraps while its queue is refilled
  t.tcp.rcv_seq = 12345;
  t.tcp.sendq = "unacked and unsent";
  t.tcp.unsent = 6;
  t.tcp.recvq = std::string(70000, 'r');
  t.tcp.mss = 65483;
  t.tcp.options = 7;
  t.tcp.snd_wscale = 7;
  t.tcp.rcv_wscale = 10;
  t.tcp.timestamp = 99;
  t.tcp.snd_wnd = 65536;
  InetSocket u = t;
  u.fd = 10;
  u.ino = 78;
  u.type = 2;
  u.protocol = 17;
  u.tcp = {};
  m.inet_sockets = {t, u};
  auto back = Read(Write(m));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->inet_sockets == m.inet_sockets);
  // The keys of the tcp record of the first connection.
  auto tcp_keys = [](const std::string& section) {
    std::vector<std::pair<std::uint32_t, bool>> keys;
    tagged::FieldReader conns(std::string_view(section).substr(1));
    tagged::Field c, f;
    EXPECT_TRUE(conns.Next(&c));
    tagged::FieldReader conn(c.bytes);
    while (conn.Next(&f)) {
      if (f.tag != 3) continue;
      tagged::FieldReader tcp(f.bytes);
      tagged::Field t;
      while (tcp.Next(&t)) keys.push_back({t.tag, t.critical});
    }
    return keys;
  };
  for (const auto& [tag, critical] : tcp_keys(EncodeConnections(m.inet_sockets))) {
    EXPECT_FALSE(critical) << tag;  // an open connection: readable by a ckpt without 17, 18
    EXPECT_LT(tag, 17u);
  }
  // Half-closed either way: fields 17, 18, critical (an older reader refuses
  // the connection instead of restoring it open).
  for (auto [rd, wr] : {std::pair{true, false}, std::pair{false, true}, std::pair{true, true}}) {
    m.inet_sockets[0].tcp.read_shut = rd;
    m.inet_sockets[0].tcp.write_shut = wr;
    back = Read(Write(m));
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_TRUE(back->inet_sockets == m.inet_sockets) << rd << wr;
    int critical = 0;
    for (const auto& [tag, crit] : tcp_keys(EncodeConnections(m.inet_sockets))) {
      critical += crit ? 1 : 0;
      EXPECT_EQ(crit, tag == 17 || tag == 18);
    }
    EXPECT_EQ(critical, (rd ? 1 : 0) + (wr ? 1 : 0));
  }
  m.inet_sockets[0].tcp.read_shut = m.inet_sockets[0].tcp.write_shut = false;
  m.inet_sockets[0].tcp.unsent = 100;  // more unsent bytes than queued
  back = Read(Write(m));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kCorruption);
  m.inet_sockets[0].tcp.unsent = 0;
  m.fds[m.fds.size() - 2].kind = FdKind::kInet;  // a connection behind a plain socket descriptor
  back = Read(Write(m));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kCorruption);
}

TEST(EngineModel, UnixListenersRoundTrip) {
  ProcessModel m = Sample();
  Fd so;
  so.fd = 11;
  so.kind = FdKind::kUnixListener;
  m.fds.push_back(so);
  UnixListener l;
  l.fd = 11;
  l.ino = 4242;
  l.type = 1;  // SOCK_STREAM
  l.name = "/run/app.sock";
  l.backlog = 128;
  l.mode = 0660;
  l.uid = 1000;
  l.gid = 1000;
  l.passcred = true;
  m.unix_listeners = {l};
  auto back = Read(Write(m));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->unix_listeners == m.unix_listeners);
  m.unix_listeners[0].name.clear();  // a listener without a name is never saved
  back = Read(Write(m));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kCorruption);
}

TEST(EngineModel, RejectsNewerModelVersion) {
  ProcessModel m = Sample();
  image::StringSink sink;
  image::ImageWriter w(&sink, image::ImageKind::kProcess);
  ASSERT_TRUE(w.Begin().ok());
  std::string core = EncodeCore(m.core);
  core[0] = static_cast<char>(kModelVersion + 1);
  ASSERT_TRUE(w.AddSection(kSecCore, "core", "", core).ok());
  ASSERT_TRUE(w.Finish().ok());
  auto back = Read(sink.buffer());
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kNotSupported);
  EXPECT_NE(back.status().message().find("version " + std::to_string(kModelVersion + 1)), std::string::npos);
  EXPECT_NE(back.status().message().find("newer ckpt"), std::string::npos);
}

// A section of the untagged layout (model version 1: fields in a fixed
// order) is refused by its version, naming both versions.
TEST(EngineModel, RejectsUntaggedVersionOneSections) {
  std::string core(1, '\x01');  // version 1, then pid i32, comm str ...
  PutU32(&core, 4242);
  PutString(&core, "worker");
  auto back = Read(WriteEdited(Sample(), [&](const std::string& name, std::string* payload) {
    if (name == "core") *payload = core;
  }));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kNotSupported);
  EXPECT_EQ(back.status().message(), "core section has model version 1, this ckpt reads version " +
                                         std::to_string(kModelVersion) +
                                         " (image written by an older ckpt, before sections were tagged)");
  // Every section is checked, not only the first.
  back = Read(WriteEdited(Sample(), [&](const std::string& name, std::string* payload) {
    if (name == "fds") (*payload)[0] = 1;
  }));
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.status().message().find("fds section has model version 1"), std::string::npos);
}

TEST(EngineModel, SkipsUnknownFieldsAndRefusesUnknownCriticalOnes) {
  ProcessModel m = Sample();
  // A newer ckpt added field 19 to each thread, and field 9 to each
  // descriptor: an older reader that may ignore them restores as before.
  auto back = Read(WriteEdited(m, [&](const std::string& name, std::string* payload) {
    if (name.rfind("thread.", 0) == 0) tagged::PutBytes(payload, 19, "newer", false);
    if (name == "fds") {
      std::string one = EncodeFds({m.fds[0]});
      tagged::FieldReader r(std::string_view(one).substr(1));
      tagged::Field f;
      ASSERT_TRUE(r.Next(&f));
      std::string fd(f.bytes);
      tagged::PutNumber(&fd, 90, 7, 7, false);
      tagged::PutBytes(payload, 1, fd, false);
    }
  }));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->threads[1].gpregs, m.threads[1].gpregs);
  EXPECT_EQ(back->threads[1].comm, "worker-0");
  ASSERT_EQ(back->fds.size(), 3u);  // the one added, known fields only
  EXPECT_EQ(back->fds[2].pipe_ino, 77u);
  // Marked critical: refused, naming the section and the field.
  back = Read(WriteEdited(m, [&](const std::string& name, std::string* payload) {
    if (name == "thread.4243") tagged::PutNumber(payload, 19, 1, 1, true);
  }));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kNotSupported);
  EXPECT_EQ(back.status().message(),
            "thread section: field 19 is required by the image but unknown to this ckpt (image written by a "
            "newer ckpt)");
  // ... also in a nested record.
  back = Read(WriteEdited(m, [&](const std::string& name, std::string* payload) {
    if (name != "core") return;
    std::string limit;
    tagged::PutNumber(&limit, 3, 1, 1, true);
    tagged::PutBytes(payload, 7, limit, false);
  }));
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.status().message().find("core section: field 3 of rlimit is required"), std::string::npos)
      << back.status().message();
}

TEST(EngineModel, AbsentFieldsKeepDefaultsAndOrderDoesNotMatter) {
  ProcessModel m = Sample();
  // A core section with only its pid: the rest keeps the defaults.
  std::string core(1, static_cast<char>(kModelVersion));
  tagged::PutNumber(&core, 1, 2 * 77, 2 * 77, false);  // zigzag of 77
  auto back = Read(WriteEdited(m, [&](const std::string& name, std::string* payload) {
    if (name == "core") *payload = core;
  }));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->core.pid, 77);
  EXPECT_EQ(back->core.exe_file, -1);
  EXPECT_EQ(back->core.umask, 022u);
  EXPECT_TRUE(back->core.rlimits.empty());
  // Every section's fields by descending tag (the elements of a list in
  // their order): the same model.
  back = Read(WriteEdited(m, [&](const std::string&, std::string* payload) {
    if (payload->empty() || (*payload)[0] != static_cast<char>(kModelVersion)) return;  // vdso
    std::vector<tagged::Field> fields;
    tagged::FieldReader r(std::string_view(*payload).substr(1));
    tagged::Field f;
    while (r.Next(&f)) fields.push_back(f);
    ASSERT_TRUE(r.ok());
    std::stable_sort(fields.begin(), fields.end(),
                     [](const auto& x, const auto& y) { return x.tag > y.tag; });
    std::string out(1, static_cast<char>(kModelVersion));
    for (const auto& x : fields) {
      tagged::PutKey(&out, x.tag, x.wire, x.critical);
      if (x.wire == tagged::Wire::kVarint) PutVarint(&out, x.num);
      if (x.wire == tagged::Wire::kFixed64) PutU64(&out, x.num);
      if (x.wire == tagged::Wire::kBytes) PutString(&out, x.bytes);
    }
    *payload = out;
  }));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->core.comm, m.core.comm);
  EXPECT_EQ(back->core.rlimits[1].max, ~0ull);
  EXPECT_EQ(back->core.auxv, m.core.auxv);
  EXPECT_EQ(back->core.leader, 3u);
  EXPECT_EQ(back->threads[0].gpregs, m.threads[0].gpregs);
  EXPECT_EQ(back->threads[0].pending, m.threads[0].pending);
  EXPECT_EQ(back->threads[1].robust_list, m.threads[1].robust_list);
  ASSERT_EQ(back->fds.size(), 2u);
  EXPECT_EQ(back->fds[1].dup_of, 3);
  EXPECT_EQ(back->vmas[1].name, "[heap]");
  EXPECT_EQ(back->signals.actions[9].restorer, 0x401100u);
}

// Damaged sections: refused as corruption (or, for a cut at a field
// boundary, read as the fields before it), never read out of bounds.
TEST(EngineModel, DamagedSectionsAreRefusedNotCrashes) {
  ProcessModel m = Sample();
  m.threads.resize(1);
  std::string thread = EncodeThread(m.threads[0]);
  for (std::size_t n = 1; n < thread.size(); ++n) {
    auto back = Read(WriteEdited(m, [&](const std::string& name, std::string* payload) {
      if (name == "thread.4242") payload->resize(n);
    }));
    if (!back.ok()) {
      EXPECT_EQ(back.status().code(), Code::kCorruption) << n << back.status().message();
    }
  }
  // A register set of 26, a signal table of 63, a siginfo of 127 bytes.
  std::string regs(1, static_cast<char>(kModelVersion));
  tagged::PutBytes(&regs, 2, std::string(26, '\x01'), false);
  std::string sig(1, static_cast<char>(kModelVersion));
  for (int i = 0; i < 63; ++i) tagged::PutBytes(&sig, 1, "", false);
  std::string info(1, static_cast<char>(kModelVersion));
  tagged::PutBytes(&info, 15, std::string(127, 's'), false);
  for (const auto& edit :
       {std::pair{"thread.4242", regs}, std::pair{"signals", sig}, std::pair{"thread.4242", info}}) {
    const std::string section = edit.first;
    auto back = Read(WriteEdited(m, [&](const std::string& name, std::string* p) {
      if (name == section) *p = edit.second;
    }));
    ASSERT_FALSE(back.ok()) << section;
    EXPECT_EQ(back.status().code(), Code::kCorruption) << back.status().message();
  }
  std::mt19937 rng(1);
  std::string core = EncodeCore(m.core);
  for (int i = 0; i < 2000; ++i) {
    std::string bad = core;
    bad[1 + rng() % (bad.size() - 1)] = static_cast<char>(rng());
    Read(WriteEdited(m,
                     [&](const std::string& name, std::string* p) {
                       if (name == "core") *p = bad;
                     }))
        .status()
        .IgnoreError();
  }
}

TEST(EngineModel, RejectsBadReferencesAndShortPayloads) {
  ProcessModel m = Sample();
  m.vmas[0].file = 5;  // no such file
  auto back = Read(Write(m));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kCorruption);

  m = Sample();
  m.vmas[1].start = 0x400800;  // overlaps and is not page-aligned
  back = Read(Write(m));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kCorruption);

  m = Sample();
  image::StringSink sink;
  image::ImageWriter w(&sink, image::ImageKind::kProcess);
  ASSERT_TRUE(w.Begin().ok());
  std::string core = EncodeCore(m.core);
  ASSERT_TRUE(w.AddSection(kSecCore, "core", "", core.substr(0, core.size() - 3)).ok());
  ASSERT_TRUE(w.Finish().ok());
  back = Read(sink.buffer());
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::kCorruption);
}

TEST(EngineModel, RejectsOtherImageKinds) {
  image::StringSink sink;
  image::ImageWriter w(&sink, image::ImageKind::kProgram);
  ASSERT_TRUE(w.Begin().ok());
  ASSERT_TRUE(w.Finish().ok());
  auto back = Read(sink.buffer());
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.status().message().find("not a process image"), std::string::npos);
}

TEST(EngineModel, HexAddr) {
  EXPECT_EQ(HexAddr(0), "0");
  EXPECT_EQ(HexAddr(0x7ffd1864d268ull), "7ffd1864d268");
}

}  // namespace
}  // namespace ckpt::engine

// The tree sections (engine/tree_model.h): round trip, member prefixes and
// rejection of a child listed before its parent.
namespace ckpt::engine {
namespace {

TreeModel SampleTree() {
  TreeModel t;
  t.members = {
      {100, 1, 100, 100, false, 0}, {101, 100, 100, 100, false, 0}, {102, 100, 102, 100, true, 7 << 8}};
  ShmObject o;
  o.id = 0;
  o.kind = ShmKind::kSysv;
  o.size = 3 * 4096 + 10;
  o.mode = 0600;
  o.sysv_key = 0x5a000001;
  o.sysv_id = 32769;
  o.runs = {{0, 2}, {3 * 4096, 1}};
  t.objects = {o};
  t.attaches = {{100, 0x7f0000000000, 0x7f0000004000, 0, 0}, {101, 0x7f0000000000, 0x7f0000004000, 0, 0}};
  t.fds = {{101, 5, 0}};
  SemSet s;
  s.id = 7;
  s.key = 0x5a000001;
  s.mode = 0600;
  s.values = {64, 0, 1};
  s.sempid = {100, 101, 101};
  t.sems = {s};
  t.undo = {{101, 7, {0, 0, -1}}};
  t.queues = {{9, 0x5b000001, 0640, 0, 0, 16384, {{1, "one"}, {3, std::string(300, 'x')}}}};
  return t;
}

Result<TreeModel> ReadTree(const TreeModel& t, bool* is_tree) {
  image::StringSink sink;
  image::ImageWriter w(&sink, image::ImageKind::kProcess);
  EXPECT_TRUE(w.Begin().ok());
  EXPECT_TRUE(WriteTreeModel(&w, t).ok());
  EXPECT_TRUE(w.Finish().ok());
  auto r = image::ImageReader::Open(std::make_unique<image::StringSource>(sink.buffer()));
  if (!r.ok()) return r.status();
  return ReadTreeModel(**r, is_tree);
}

TEST(EngineTreeModel, RoundTrip) {
  TreeModel t = SampleTree();
  bool is_tree = false;
  auto back = ReadTree(t, &is_tree);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(is_tree);
  ASSERT_EQ(back->members.size(), 3u);
  EXPECT_EQ(back->members[2].pid, 102);
  EXPECT_TRUE(back->members[2].zombie);
  EXPECT_EQ(back->members[2].exit_status, 7 << 8);
  ASSERT_EQ(back->objects.size(), 1u);
  EXPECT_EQ(back->objects[0].kind, ShmKind::kSysv);
  EXPECT_EQ(back->objects[0].sysv_id, 32769);
  EXPECT_EQ(back->objects[0].runs.size(), 2u);
  EXPECT_EQ(back->attaches.size(), 2u);
  EXPECT_EQ(back->fds[0].fd, 5);
  ASSERT_EQ(back->sems.size(), 1u);
  EXPECT_EQ(back->sems[0].values, (std::vector<std::uint16_t>{64, 0, 1}));
  EXPECT_EQ(back->undo[0].adj[2], -1);
  ASSERT_EQ(back->queues.size(), 1u);
  EXPECT_EQ(back->queues[0].messages[1].type, 3);
  EXPECT_EQ(back->queues[0].messages[1].text, std::string(300, 'x'));
  EXPECT_EQ(SectionPrefix(*back, 101), "101/");
}

TEST(EngineTreeModel, OneProcessKeepsUnprefixedSections) {
  TreeModel t;
  t.members = {{100, 1, 100, 100, false, 0}};
  EXPECT_EQ(SectionPrefix(t, 100), "");
}

TEST(EngineTreeModel, RejectsChildBeforeParent) {
  TreeModel t = SampleTree();
  std::swap(t.members[0], t.members[1]);
  bool is_tree = false;
  auto back = ReadTree(t, &is_tree);
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.status().message().find("before its parent"), std::string::npos);
}

TEST(EngineTreeModel, RejectsRunOutsideObject) {
  TreeModel t = SampleTree();
  t.objects[0].runs.push_back({8 * 4096, 1});
  bool is_tree = false;
  EXPECT_FALSE(ReadTree(t, &is_tree).ok());
}

// Page-run sets (incremental dumps): runs in pages of 4096 bytes.
std::vector<PageRun> R(std::initializer_list<std::pair<std::uint64_t, std::uint64_t>> pages) {
  std::vector<PageRun> out;
  for (auto [first, n] : pages) out.push_back({first * kPageSize, n});
  return out;
}

std::string Text(const std::vector<PageRun>& runs) {
  std::string s;
  for (const auto& r : runs) s += std::to_string(r.addr / kPageSize) + "+" + std::to_string(r.pages) + " ";
  return s;
}

TEST(PageRuns, UnionMergesAdjacentAndOverlapping) {
  EXPECT_EQ(Text(RunsUnion(R({{0, 2}, {10, 5}}), R({{2, 3}, {12, 10}, {40, 1}}))), "0+5 10+12 40+1 ");
  EXPECT_EQ(Text(RunsUnion({}, R({{3, 1}}))), "3+1 ");
}

TEST(PageRuns, IntersectAndSubtractCutRuns) {
  auto a = R({{0, 10}, {20, 10}});
  auto b = R({{5, 20}, {28, 1}});
  EXPECT_EQ(Text(RunsIntersect(a, b)), "5+5 20+5 28+1 ");
  EXPECT_EQ(Text(RunsSubtract(a, b)), "0+5 25+3 29+1 ");
  EXPECT_EQ(Text(RunsSubtract(a, {})), "0+10 20+10 ");
  EXPECT_TRUE(RunsIntersect(a, {}).empty());
  EXPECT_TRUE(RunsSubtract(a, a).empty());
}

TEST(PageRuns, CutsKeepTheFlagOfTheirRun) {
  std::vector<PageRun> a = {{0, 4, true}, {4 * kPageSize, 4, false}};
  auto left = RunsSubtract(a, R({{2, 4}}));
  ASSERT_EQ(left.size(), 2u);
  EXPECT_TRUE(left[0].cow_shared);
  EXPECT_FALSE(left[1].cow_shared);
  EXPECT_EQ(Text(left), "0+2 6+2 ");
}

}  // namespace
}  // namespace ckpt::engine
