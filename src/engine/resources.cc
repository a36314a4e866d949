// The engine's resources (resource.h) and their tables: each entry adapts
// one kind of state — pipes, shared memory, System V objects, descriptors,
// pending signals, timers — to the phases of a dump and a restore, and
// keeps what it learnt between them.
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "engine/eventfds.h"
#include "engine/guard.h"
#include "engine/locks.h"
#include "engine/net_lock.h"
#include "engine/pipes.h"
#include "engine/precheck.h"
#include "engine/resource.h"
#include "engine/shared_mem.h"
#include "engine/signals.h"
#include "engine/sysv.h"
#include "engine/tcp_repair.h"
#include "engine/timers.h"
#include "engine/unix_sockets.h"
#include "engine/util.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

namespace {

// ---- dump -----------------------------------------------------------------

std::vector<pid_t> Pids(const std::vector<MemberDump>& md) {
  std::vector<pid_t> pids;
  for (const auto& d : md) pids.push_back(d.pid);
  return pids;
}

// Pipes between members: which ones are new since the census (created
// between the checks and the freeze), and their unread contents.
class PipesDump : public DumpResource {
 public:
  const char* name() const override { return "pipes"; }
  Status Collect(DumpContext& c) override {
    std::vector<ProcessModel*> models;
    for (auto& d : c.md) models.push_back(&d.m);
    std::vector<pid_t> pids = Pids(c.md);
    RETURN_IF_ERROR(CensusNewPipes(pids, models, c.o.external_pipes, c.pipe_census));
    return DumpPipes(pids, models, c.pipe_census->external, &blobs_);
  }
  Status WriteAfterTree(DumpContext&, image::ImageWriter* w) override {
    for (const auto& b : blobs_) RETURN_IF_ERROR(w->AddSection(kSecBlob, b.name, "", b.data));
    return Status::Ok();
  }

 private:
  std::vector<Blob> blobs_;  // the pipes' contents, tree-level
};

// Event files (eventfd, signalfd, timerfd, epoll): each member read its
// own; members sharing one get one number, so a restore creates it once.
class EventFilesDump : public DumpResource {
 public:
  const char* name() const override { return "event files"; }
  Status Collect(DumpContext& c) override {
    std::vector<ProcessModel*> models;
    for (auto& d : c.md) models.push_back(&d.m);
    for (const auto& d : c.md) {
      for (const auto& e : d.m.events) {
        if (e.kind != EventKind::kInotify || e.count == 0) continue;
        c.stats->notes.push_back("inotify fd " + std::to_string(e.fd) + " of process " +
                                 std::to_string(d.pid) + " had " + std::to_string(e.count) +
                                 " bytes of events queued; the restored process will not read them");
      }
    }
    return NumberEventFiles(Pids(c.md), models);
  }
};

// Unix socket pairs: both ends must be the members'; the bytes queued for
// each end are read (not taken) once and written after the tree model.
class SocketsDump : public DumpResource {
 public:
  const char* name() const override { return "Unix sockets"; }
  Status Collect(DumpContext& c) override {
    std::set<std::uint32_t> inside;
    for (const auto& d : c.md) {
      for (const auto& u : d.m.sockets) inside.insert(u.ino);
    }
    RETURN_IF_ERROR(SeparateExternal(c, inside));
    std::set<std::uint32_t> done;
    for (const auto& d : c.md) {
      for (const auto& u : d.m.sockets) {
        if (!done.insert(u.ino).second) continue;
        ASSIGN_OR_RETURN(std::string q, PeekSocketQueue(d.pid, u.fd));
        if (!q.empty()) blobs_.push_back({SocketBlobName(u.ino), std::move(q)});
      }
    }
    return Status::Ok();
  }
  Status WriteAfterTree(DumpContext&, image::ImageWriter* w) override {
    for (const auto& b : blobs_) RETURN_IF_ERROR(w->AddSection(kSecBlob, b.name, "", b.data));
    return Status::Ok();
  }

 private:
  // Sockets whose peer the dumped processes do not hold: refused, unless
  // the peer is bound to a name --external-unix gives and nothing is
  // queued for this end (the restore connects to that name again).
  static Status SeparateExternal(DumpContext& c, const std::set<std::uint32_t>& inside) {
    std::optional<std::map<std::uint32_t, UnixDiag>> all;
    for (auto& d : c.md) {
      std::vector<UnixSocket> kept;
      for (auto& u : d.m.sockets) {
        if (inside.count(u.peer) != 0) {
          kept.push_back(u);
          continue;
        }
        std::string what = "fd " + std::to_string(u.fd) + " of process " + std::to_string(d.pid);
        if (!all && !c.o.external_unix.empty()) {
          ASSIGN_OR_RETURN(all, ListUnixSockets());
        }
        std::string name;
        if (all) {
          auto peer = all->find(u.peer);
          if (peer != all->end()) name = peer->second.name;
        }
        const auto& ext = c.o.external_unix;
        if (name.empty() || std::find(ext.begin(), ext.end(), name) == ext.end()) {
          return NotSupported(what + " is a Unix socket connected to socket:[" + std::to_string(u.peer) +
                              "]" + (name.empty() ? "" : " (" + name + ")") +
                              ", which the dumped processes do not hold");
        }
        ASSIGN_OR_RETURN(std::string q, PeekSocketQueue(d.pid, u.fd));
        if (!q.empty()) {
          return NotSupported(what + " is a Unix socket connected to " + name +
                              " outside, with bytes queued from it (a new connection cannot carry them)");
        }
        u.peer_name = name;
        u.peer = 0;
        d.m.unix_external.push_back(u);
        for (auto& f : d.m.fds) {
          if (f.fd == u.fd || f.dup_of == u.fd) f.kind = FdKind::kUnixExternal;
        }
      }
      d.m.sockets = std::move(kept);
    }
    return Status::Ok();
  }
  std::vector<Blob> blobs_;
};

// Established TCP connections: the network lock goes on for all of them,
// then each is read in repair mode (once per socket, on ckpt's copy) and
// leaves it at once: with the members frozen and their packets dropped,
// nothing changes what was read, and a member that runs again early (its
// dump worker killed: the kernel lets it go before ckpt can stop it again)
// finds its sockets usable, not failing with EPERM. Put back, the lock goes.
// Before the kill the copies go back into repair mode, so that they close
// silently after it, and the lock stays for the restore.
class ConnectionsDump : public DumpResource {
 public:
  ~ConnectionsDump() override { (void)Release(); }
  const char* name() const override { return "TCP connections"; }
  Status Collect(DumpContext& c) override {
    std::vector<const InetSocket*> conns;
    for (auto& d : c.md) {
      for (auto& u : d.m.inet_sockets) {
        if (!u.peer.empty() && u.protocol == IPPROTO_TCP) conns.push_back(&u);
      }
    }
    if (conns.empty()) return Status::Ok();
    lock_ = NewNetLockName();
    RETURN_IF_ERROR(NetLock(lock_, conns));
    NoteTcpRepair(-1, -1, lock_);  // (a pid no process has: the lock alone)
    locked_ = true;
    std::map<std::uint64_t, const TcpRepair*> read;  // a socket two members share is read once
    for (auto& d : c.md) {
      for (auto& u : d.m.inet_sockets) {
        if (u.peer.empty() || u.protocol != IPPROTO_TCP) continue;
        if (auto it = read.find(u.ino); it != read.end()) {
          u.tcp = *it->second;
          continue;
        }
        std::string what = "fd " + std::to_string(u.fd) + " of process " + std::to_string(d.pid);
        ASSIGN_OR_RETURN(int s, CopyFdOf(d.pid, u.fd));
        if (Status urgent = RefuseUrgentData(s, u, what); !urgent.ok()) {
          ::close(s);
          return urgent;
        }
        copies_.push_back({s, d.pid, u.fd, u.reuseaddr});
        NoteTcpRepair(d.pid, u.fd, lock_);
        RETURN_IF_ERROR(EnterRepair(s));
        Status st = ReadTcpRepair(s, what, &u.tcp);
        Status out = Out(copies_.back());
        RETURN_IF_ERROR(st);
        RETURN_IF_ERROR(out);
        NoteTcpRepair(-1, -1, lock_);
        u.tcp.lock = lock_;
        read[u.ino] = &u.tcp;
      }
    }
    return Status::Ok();
  }
  Status BeforeKill(DumpContext&) override {
    in_repair_ = true;
    for (const Copy& k : copies_) {
      NoteTcpRepair(k.pid, k.fd, lock_);
      RETURN_IF_ERROR(EnterRepair(k.s));
    }
    return Status::Ok();
  }
  Status PutBack(DumpContext&) override { return Release(); }
  Status AfterKill(DumpContext& c) override {
    for (const Copy& k : copies_) ::close(k.s);  // in repair mode: no FIN, no reset
    copies_.clear();
    // Kept for the restore, unless a handoff said the image already runs
    // elsewhere (ckpt migrate): then nothing here will ever need it.
    Status st = locked_ && c.o.handoff ? NetUnlock(lock_) : Status::Ok();
    locked_ = false;
    return st;
  }

 private:
  struct Copy {
    int s;  // ckpt's copy of the socket
    pid_t pid;
    int fd;  // its number in that member
    bool reuseaddr;
  };
  // Out of repair mode, which also clears SO_REUSEADDR (the kernel sets
  // SK_NO_REUSE): the process's own setting is put back.
  static Status Out(const Copy& k) {
    RETURN_IF_ERROR(LeaveRepair(k.s));
    int v = 1;
    if (k.reuseaddr && ::setsockopt(k.s, SOL_SOCKET, SO_REUSEADDR, &v, sizeof v) != 0)
      return platform::PosixError("setsockopt(SO_REUSEADDR)", "a TCP connection", errno);
    return Status::Ok();
  }
  Status Release() {
    Status first;
    for (const Copy& k : copies_) {
      Status st = in_repair_ ? Out(k) : Status::Ok();  // (BeforeKill put it back into repair mode)
      if (first.ok()) first = st;
      ::close(k.s);
    }
    in_repair_ = false;
    copies_.clear();
    if (locked_) {
      Status st = NetUnlock(lock_);
      if (first.ok()) first = st;
      locked_ = false;
      NoteTcpRepair(0, 0, "");
    }
    return first;
  }
  std::string lock_;
  bool locked_ = false;
  bool in_repair_ = false;  // since BeforeKill
  std::vector<Copy> copies_;
};

// Shared memory objects: registered per member; their pages are written
// once, before the tree model that lists their runs.
class SharedMemoryDump : public DumpResource {
 public:
  const char* name() const override { return "shared memory"; }
  Status Collect(DumpContext& c) override {
    for (auto& d : c.md) RETURN_IF_ERROR(shm_.AddMember(d.pid, &d.m, &d.blobs, &c.t));
    return Status::Ok();
  }
  Status WriteBeforeTree(DumpContext& c, image::ImageWriter* w) override {
    std::int64_t t0 = NowNs();
    RETURN_IF_ERROR(shm_.WritePages(w, &c.t, &c.stats->shared_bytes));
    c.stats->shared_write_ns = NowNs() - t0;
    return Status::Ok();
  }

 private:
  SharedMemDump shm_;
};

// System V semaphore sets and message queues (segments are shared memory
// objects): read by injection, SEM_UNDO adjustments taken over while frozen.
class SysvObjectsDump : public DumpResource {
 public:
  const char* name() const override { return "System V"; }
  Status Collect(DumpContext& c) override {
    std::vector<SysvMember> members;
    for (auto& d : c.md) members.push_back({d.pid, d.fp, d.gadget});
    return sysv_.Collect(members, c.o.ipc_ids, c.o.leave_running, &c.t);
  }
  Status PutBack(DumpContext&) override { return sysv_.PutBack(); }
  Status AfterKill(DumpContext& c) override {
    return sysv_.RemoveObjects(c.t).WithContext("removing the dumped System V objects");
  }

 private:
  SysvDump sysv_;
};

// ---- restore --------------------------------------------------------------

// System V objects, created first (see resource.h); a member's own
// operations (SEM_UNDO, last operator) are replayed before its threads.
class SysvObjectsRestore : public RestoreResource {
 public:
  const char* name() const override { return "System V"; }
  Status Create(RestoreContext& c) override {
    sysv_.set_guard(c.guard);
    RETURN_IF_ERROR(sysv_.Create(c.t, c.o.ipc_ns, &c.sysv_shm_ids));
    c.stats->new_ipc_ns = sysv_.new_namespace();
    return Status::Ok();
  }
  Status Rebuild(RestoreContext& c, const MemberRestore& p, pid_t, RebuildPoint at, Injector* inj) override {
    if (at != RebuildPoint::kBeforeThreads) return Status::Ok();
    return sysv_.RestoreMember(c.t, p.m.core.pid, inj);
  }
  Status Finish(RestoreContext& c) override { return sysv_.Finish(c.t); }
  void Commit() override { sysv_.Commit(); }

 private:
  SysvRestore sysv_;
};

// Shared memory objects: created and filled once in ckpt, then mapped by
// every member at its old address before its own pages are filled.
class SharedMemoryRestore : public RestoreResource {
 public:
  const char* name() const override { return "shared memory"; }
  const SharedMemRestore* objects() const { return &shm_; }
  Status Create(RestoreContext& c) override {
    shm_.set_guard(c.guard);
    for (const auto& [obj, id] : c.sysv_shm_ids) shm_.SetSysvId(obj, id);
    RETURN_IF_ERROR(shm_.Create(c.t, *c.reader));
    return shm_.Fill(c.t, *c.reader);
  }
  Status PlanMember(RestoreContext& c, MemberRestore& p) override {
    shm_.PlanMember(c.t, p.m.core.pid, &p.plan, &p.next_fd);
    return Status::Ok();
  }
  Status Rebuild(RestoreContext& c, const MemberRestore& p, pid_t, RebuildPoint at, Injector* inj) override {
    if (at != RebuildPoint::kVmasCreated) return Status::Ok();
    return shm_.AttachMember(c.t, p.m.core.pid, p.m, inj);
  }
  void Commit() override { shm_.Commit(); }

 private:
  SharedMemRestore shm_;
};

// Descriptors: opened (files, pipes between members, recreated unlinked
// files, shared memory objects) into each member's plan, and the files its
// mappings need at numbers after them; those close once memory is back.
class FilesRestore : public RestoreResource {
 public:
  explicit FilesRestore(const SharedMemRestore* shm) : shm_(shm) {}
  ~FilesRestore() override {
    if (made_lock_ && !committed_) (void)NetUnlock(lock_);  // only a table the dump did not leave
  }
  void Commit() override { committed_ = true; }
  const char* name() const override { return "files"; }
  Status Create(RestoreContext& c) override {
    shared_ = std::make_unique<SharedFds>(&pipes_, shm_, &c.t);
    shared_->sockets = &sockets_;
    return Status::Ok();
  }
  Status PlanMember(RestoreContext& c, MemberRestore& p) override {
    RETURN_IF_ERROR(LockConnections(p.m));
    RETURN_IF_ERROR(PrepareFds(p.m, *c.reader, p.prefix, shared_.get(), &p.plan));
    int base = 0;
    for (const auto& f : p.m.fds) base = std::max(base, f.fd + 1);
    RETURN_IF_ERROR(PrepareMapFiles(p.m, base + 16, &p.plan, &p.file_fds, &p.exe_fd));
    p.next_fd = base + 16 + static_cast<int>(p.m.files.size()) + 1;
    return Status::Ok();
  }
  // ckpt's copies of pipe ends would keep pipes from ever reaching
  // end-of-file; its copies of event files would be found holding them
  // (a dump of the restored process would refuse them as shared).
  void MembersHoldFds(RestoreContext&) override {
    pipes_.CloseAll();
    sockets_.CloseAll();
    shared_->CloseCreated();
  }
  Status Rebuild(RestoreContext&, const MemberRestore& p, pid_t, RebuildPoint at, Injector* inj) override {
    if (at != RebuildPoint::kMemoryComplete) return Status::Ok();
    for (int fd : p.file_fds) {
      if (fd >= 0) RETURN_IF_ERROR(inj->Call("close", SYS_close, {static_cast<std::uint64_t>(fd)}).status());
    }
    return Status::Ok();
  }
  // The connections leave repair mode (the kernel probes each peer's
  // window), then their packets go through again. Before that a failed
  // restore keeps the lock: the image can still be restored.
  Status Finish(RestoreContext&) override {
    RETURN_IF_ERROR(shared_->FinishConnections());
    return lock_.empty() ? Status::Ok() : NetUnlock(lock_);
  }

 private:
  // The network lock over every TCP connection so far, before the first
  // of `m`'s is made (the table the dump left, or made again here).
  Status LockConnections(const ProcessModel& m) {
    bool more = false;
    for (const auto& u : m.inet_sockets) {
      if (u.peer.empty() || u.protocol != IPPROTO_TCP) continue;
      if (lock_.empty()) {
        lock_ = u.tcp.lock.empty() ? NewNetLockName() : u.tcp.lock;
        made_lock_ = !NetLockExists(lock_);
      }
      locked_.push_back(&u);
      more = true;
    }
    return more ? NetLock(lock_, locked_) : Status::Ok();
  }
  std::string lock_;
  bool made_lock_ = false, committed_ = false;
  std::vector<const InetSocket*> locked_;
  const SharedMemRestore* shm_;
  PipeTable pipes_;
  SocketTable sockets_;
  std::unique_ptr<SharedFds> shared_;
};

// Signals queued for the process and its threads.
class PendingSignalsRestore : public RestoreResource {
 public:
  const char* name() const override { return "pending signals"; }
  Status Rebuild(RestoreContext&, const MemberRestore& p, pid_t, RebuildPoint at, Injector* inj) override {
    return at == RebuildPoint::kThreadsCreated ? RestorePendingSignals(p.m, inj, p.m.core.pid) : Status::Ok();
  }
};

// Interval timers (setitimer) and POSIX timers (timer_create): after the
// threads, which a timer may signal.
class TimersRestore : public RestoreResource {
 public:
  const char* name() const override { return "timers"; }
  Status Rebuild(RestoreContext&, const MemberRestore& p, pid_t, RebuildPoint at, Injector* inj) override {
    if (at != RebuildPoint::kThreadsCreated) return Status::Ok();
    RETURN_IF_ERROR(RestoreTimers(p.m.core, inj));
    return RestorePosixTimers(p.m.posix_timers, inj);
  }
};

// File locks, taken again once the map files are closed (closing any
// descriptor of a file drops the process's POSIX locks on it) and before
// the process runs.
class LocksRestore : public RestoreResource {
 public:
  const char* name() const override { return "file locks"; }
  Status Rebuild(RestoreContext&, const MemberRestore& p, pid_t, RebuildPoint at, Injector* inj) override {
    return at == RebuildPoint::kBeforeThreads ? RetakeLocks(p.m, inj) : Status::Ok();
  }
};

}  // namespace

DumpTable::DumpTable() {
  resources_.push_back(std::make_unique<PipesDump>());
  resources_.push_back(std::make_unique<EventFilesDump>());
  resources_.push_back(std::make_unique<SocketsDump>());
  resources_.push_back(std::make_unique<ConnectionsDump>());
  resources_.push_back(std::make_unique<SharedMemoryDump>());
  resources_.push_back(std::make_unique<SysvObjectsDump>());
}

Status DumpTable::PutBack(DumpContext& c) {
  if (put_back_) return Status::Ok();
  put_back_ = true;
  Status first;
  for (auto& r : resources_) {
    Status s = r->PutBack(c);
    if (first.ok() && !s.ok()) first = s;
  }
  return first;
}

RestoreTable::RestoreTable() {
  auto shm = std::make_unique<SharedMemoryRestore>();
  auto files = std::make_unique<FilesRestore>(shm->objects());
  resources_.push_back(std::make_unique<SysvObjectsRestore>());
  resources_.push_back(std::move(files));
  resources_.push_back(std::move(shm));
  resources_.push_back(std::make_unique<PendingSignalsRestore>());
  resources_.push_back(std::make_unique<TimersRestore>());
  resources_.push_back(std::make_unique<LocksRestore>());
}

}  // namespace ckpt::engine
