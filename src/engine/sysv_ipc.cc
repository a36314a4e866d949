// System V IPC common parts: the IPC namespace, object ids, the dump and
// restore order across segments, semaphores and queues.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "engine/guard.h"
#include "engine/proc.h"
#include "engine/sysv.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

IpcNamespace::~IpcNamespace() {
  if (own_ >= 0) {
    if (::setns(own_, CLONE_NEWIPC) != 0) std::perror("ckpt: setns back to own IPC namespace");
    ::close(own_);
  }
}

Status IpcNamespace::EnterOf(const std::vector<pid_t>& pids) {
  struct stat self;
  if (::stat("/proc/self/ns/ipc", &self) != 0) return PosixError("stat", "/proc/self/ns/ipc", errno);
  std::uint64_t want = 0;
  pid_t first = 0;
  for (pid_t p : pids) {
    struct stat st;
    std::string path = ProcPath(p, "ns/ipc");
    if (::stat(path.c_str(), &st) != 0) return PosixError("stat", path, errno);
    if (first == 0) {
      first = p;
      want = st.st_ino;
    } else if (st.st_ino != want) {
      return NotSupported("processes " + std::to_string(first) + " and " + std::to_string(p) +
                          " live in different IPC namespaces; a tree must share one");
    }
  }
  if (first == 0 || want == self.st_ino) return Status::Ok();
  own_ = ::open("/proc/self/ns/ipc", O_RDONLY | O_CLOEXEC);
  int ns = ::open(ProcPath(first, "ns/ipc").c_str(), O_RDONLY | O_CLOEXEC);
  if (own_ < 0 || ns < 0 || ::setns(ns, CLONE_NEWIPC) != 0) {
    int e = errno;
    if (ns >= 0) ::close(ns);
    return PosixError("enter the IPC namespace of", "process " + std::to_string(first), e);
  }
  ::close(ns);
  return Status::Ok();
}

Result<int> CreateWithId(const char* kind, int id, const std::function<int()>& get) {
  std::string knob = std::string("/proc/sys/kernel/") + kind + "_next_id";
  {
    int fd = ::open(knob.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return PosixError("open", knob, errno);
    std::string v = std::to_string(id);
    ssize_t n = ::write(fd, v.data(), v.size());
    int e = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(v.size())) return PosixError("write", knob, e);
  }
  int got = get();
  int e = errno;
  if (got < 0) return PosixError(std::string(kind) + "get", "id " + std::to_string(id), e);
  if (got != id) {
    if (std::strcmp(kind, "shm") == 0) ::shmctl(got, IPC_RMID, nullptr);
    if (std::strcmp(kind, "sem") == 0) ::semctl(got, 0, IPC_RMID);
    if (std::strcmp(kind, "msg") == 0) ::msgctl(got, IPC_RMID, nullptr);
    return FailedPrecondition(std::string("System V ") + kind + " id " + std::to_string(id) +
                              " is taken here (the kernel gave " + std::to_string(got) +
                              "); restore with --ipc-ns new");
  }
  return got;
}

Status SemAdd(int semid, const std::vector<int>& deltas) {
  std::vector<struct sembuf> ops;
  for (std::size_t i = 0; i < deltas.size(); ++i) {
    if (deltas[i] != 0) {
      ops.push_back({static_cast<unsigned short>(i), static_cast<short>(deltas[i]), IPC_NOWAIT});
    }
  }
  if (ops.empty()) return Status::Ok();
  if (::semop(semid, ops.data(), ops.size()) != 0) {
    return PosixError("semop", "semaphore set " + std::to_string(semid), errno);
  }
  return Status::Ok();
}

Status InjectSemop(Injector* inj, int semid, const std::vector<std::array<int, 3>>& ops) {
  std::string buf;
  for (const auto& op : ops) {
    std::uint16_t num = static_cast<std::uint16_t>(op[0]);
    std::int16_t val = static_cast<std::int16_t>(op[1]);
    std::int16_t flg = static_cast<std::int16_t>(op[2]);
    buf.append(reinterpret_cast<const char*>(&num), 2);
    buf.append(reinterpret_cast<const char*>(&val), 2);
    buf.append(reinterpret_cast<const char*>(&flg), 2);
  }
  ASSIGN_OR_RETURN(std::uint64_t at, inj->PutScratch(1024, buf.data(), buf.size()));
  return inj
      ->Call("semop on set " + std::to_string(semid), SYS_semop,
             {static_cast<std::uint64_t>(semid), at, ops.size()})
      .status();
}

bool MemberBlockedOn(const SysvMember& m, long nr, int id) {
  for (const auto& t : m.fp->threads()) {
    if (static_cast<long>(t.regs.orig_rax) == nr && static_cast<int>(t.regs.rdi) == id) return true;
  }
  return false;
}

Result<std::vector<std::vector<std::string>>> ListSysv(const char* kind) {
  std::string path = std::string("/proc/sysvipc/") + kind;
  std::ifstream in(path);
  if (!in) return PosixError("open", path, errno);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<std::string> cols;
    std::string c;
    while (ls >> c) cols.push_back(c);
    if (!cols.empty()) rows.push_back(std::move(cols));
  }
  return rows;
}

Status SysvDump::Collect(const std::vector<SysvMember>& members, const std::vector<IpcObjectId>& extra,
                         bool leave_running, TreeModel* t) {
  (void)leave_running;
  members_ = members;
  for (const auto& x : extra) {
    if (x.kind != 's') continue;
    bool attached = false;
    for (const auto& o : t->objects) attached = attached || (o.kind == ShmKind::kSysv && o.sysv_id == x.id);
    if (!attached) {
      return NotSupported("System V segment " + std::to_string(x.id) +
                          " is attached by no process of the tree; only attached segments are dumped");
    }
  }
  Status st = DumpSemSets(members, extra, t, &taken_);
  sems_ = t->sems;  // PutBack makes the members their last operators again, also after a failure
  RETURN_IF_ERROR(st);
  return DumpMsgQueues(members, extra, t);
}

Status SysvDump::PutBack() {
  Status st = PutBackUndo(members_, taken_);
  taken_.clear();
  // The members that operated a semaphore last are its last operator again.
  for (const auto& m : members_) {
    if (!st.ok() || sems_.empty()) break;
    Injector inj(m.pid, m.gadget);
    st = inj.Save();
    if (!st.ok()) break;
    st = RestoreLastOperator(sems_, m.pid, &inj);
    Status rs = inj.Restore();
    if (st.ok()) st = rs;
  }
  for (const auto& s : sems_) {
    if (st.ok()) NoteSemLastOperators(s.id, {});
  }
  sems_.clear();
  return st;
}

Status SysvDump::RemoveObjects(const TreeModel& t) {
  Status first;
  auto keep = [&](const Status& s) {
    if (first.ok() && !s.ok()) first = s;
  };
  for (const auto& o : t.objects) {
    if (o.kind != ShmKind::kSysv) continue;
    struct shmid_ds ds;
    if (::shmctl(o.sysv_id, IPC_STAT, &ds) != 0) continue;  // gone already (IPC_RMID'd)
    if (ds.shm_nattch != 0) continue;                       // another process still uses it
    if (::shmctl(o.sysv_id, IPC_RMID, nullptr) != 0) {
      keep(PosixError("shmctl(IPC_RMID)", "segment " + std::to_string(o.sysv_id), errno));
    }
  }
  for (const auto& s : t.sems) {
    if (::semctl(s.id, 0, IPC_RMID) != 0 && errno != EINVAL && errno != EIDRM) {
      keep(PosixError("semctl(IPC_RMID)", "semaphore set " + std::to_string(s.id), errno));
    }
  }
  for (const auto& q : t.queues) {
    if (::msgctl(q.id, IPC_RMID, nullptr) != 0 && errno != EINVAL && errno != EIDRM) {
      keep(PosixError("msgctl(IPC_RMID)", "message queue " + std::to_string(q.id), errno));
    }
  }
  return first;
}

SysvRestore::~SysvRestore() {
  if (committed_) return;
  for (const auto& c : created_) {
    if (c.kind == 's') ::shmctl(c.id, IPC_RMID, nullptr);
    if (c.kind == 'e') ::semctl(c.id, 0, IPC_RMID);
    if (c.kind == 'q') ::msgctl(c.id, IPC_RMID, nullptr);
  }
}

namespace {
std::string KeyHex(std::int32_t key) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", static_cast<unsigned>(key));
  return b;
}
}  // namespace

Status SysvRestore::Create(const TreeModel& t, IpcNsMode mode, std::map<std::uint32_t, int>* shm_ids) {
  bool any = !t.sems.empty() || !t.queues.empty();
  for (const auto& o : t.objects) any = any || o.kind == ShmKind::kSysv;
  if (!any && mode != IpcNsMode::kNew) return Status::Ok();
  // What is taken here?
  std::string taken;
  if (mode != IpcNsMode::kNew) {
    for (const auto& o : t.objects) {
      if (o.kind != ShmKind::kSysv) continue;
      struct shmid_ds ds;
      if (::shmctl(o.sysv_id, IPC_STAT, &ds) == 0) taken += " shm id " + std::to_string(o.sysv_id) + ";";
      if ((o.mode & SHM_DEST) == 0 && o.sysv_key != IPC_PRIVATE && ::shmget(o.sysv_key, 0, 0) >= 0) {
        taken += " shm key " + KeyHex(o.sysv_key) + ";";
      }
    }
    for (const auto& s : t.sems) {
      if (::semctl(s.id, 0, GETVAL) >= 0) taken += " sem id " + std::to_string(s.id) + ";";
      if (s.key != IPC_PRIVATE && ::semget(s.key, 0, 0) >= 0) taken += " sem key " + KeyHex(s.key) + ";";
    }
    for (const auto& q : t.queues) {
      struct msqid_ds ds;
      if (::msgctl(q.id, IPC_STAT, &ds) == 0) taken += " msg id " + std::to_string(q.id) + ";";
      if (q.key != IPC_PRIVATE && ::msgget(q.key, 0) >= 0) taken += " msg key " + KeyHex(q.key) + ";";
    }
  }
  if (!taken.empty() && mode == IpcNsMode::kHost) {
    taken.pop_back();
    return FailedPrecondition("System V objects of the image are taken in this IPC namespace:" + taken +
                              "; restore with --ipc-ns new (or auto) to recreate them in a fresh namespace");
  }
  if (mode == IpcNsMode::kNew || !taken.empty()) {
    if (::unshare(CLONE_NEWIPC) != 0) return PosixError("unshare(CLONE_NEWIPC)", "", errno);
    new_ns_ = true;
  }
  // Objects of a fresh namespace vanish with it if ckpt dies; the host's
  // are removed by the guardian.
  auto creating = [&](char kind, int id, std::int32_t key) {
    if (guard_ != nullptr && !new_ns_) guard_->SysvCreating(kind, id, key);
  };
  for (const auto& o : t.objects) {
    if (o.kind != ShmKind::kSysv) continue;
    creating('s', o.sysv_id, (o.mode & SHM_DEST) != 0 ? IPC_PRIVATE : o.sysv_key);
    ASSIGN_OR_RETURN(int id, CreateShmSegment(o));
    created_.push_back({'s', id});
    (*shm_ids)[o.id] = id;
  }
  for (const auto& s : t.sems) {
    creating('e', s.id, s.key);
    ASSIGN_OR_RETURN(int id, CreateSemSet(s));
    created_.push_back({'e', id});
  }
  for (const auto& q : t.queues) {
    creating('q', q.id, q.key);
    ASSIGN_OR_RETURN(int id, CreateMsgQueue(q));
    created_.push_back({'q', id});
  }
  return Status::Ok();
}

Status SysvRestore::RestoreMember(const TreeModel& t, std::int32_t pid, Injector* inj) {
  return RestoreSemMember(t, pid, inj);
}

Status SysvRestore::Finish(const TreeModel& t) {
  for (const auto& o : t.objects) {
    if (o.kind != ShmKind::kSysv || (o.mode & SHM_DEST) == 0) continue;
    if (::shmctl(o.sysv_id, IPC_RMID, nullptr) != 0) {
      return PosixError("shmctl(IPC_RMID)", "segment " + std::to_string(o.sysv_id), errno);
    }
  }
  return Status::Ok();
}

}  // namespace ckpt::engine
