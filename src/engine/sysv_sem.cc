// System V semaphore sets: values, permissions, the process that operated
// each semaphore last, and every member's SEM_UNDO adjustments. There is no
// interface to read adjustments: an injected unshare(CLONE_SYSVSEM) in every
// thread of a member applies them as an exit would, and the change of the
// values gives them. Around it every semaphore is held at a mid value so
// that no adjustment is clamped at 0 or SEMVMX.
#include <errno.h>
#include <sched.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "engine/guard.h"
#include "engine/sysv.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

namespace {

constexpr int kMid = 16384;  // SEMVMX is 32767

union SemArg {
  int val;
  struct semid_ds* buf;
  unsigned short* array;
};

Result<SemSet> ReadSet(int id) {
  SemSet s;
  s.id = id;
  struct semid_ds ds;
  SemArg a;
  a.buf = &ds;
  if (::semctl(id, 0, IPC_STAT, a) != 0)
    return PosixError("semctl(IPC_STAT)", "semaphore set " + std::to_string(id), errno);
  s.key = static_cast<std::int32_t>(ds.sem_perm.__key);
  s.mode = ds.sem_perm.mode & 0777;
  s.uid = ds.sem_perm.uid;
  s.gid = ds.sem_perm.gid;
  std::vector<unsigned short> v(ds.sem_nsems);
  a.array = v.data();
  if (::semctl(id, 0, GETALL, a) != 0)
    return PosixError("semctl(GETALL)", "semaphore set " + std::to_string(id), errno);
  s.values.assign(v.begin(), v.end());
  for (std::size_t i = 0; i < v.size(); ++i) s.sempid.push_back(::semctl(id, static_cast<int>(i), GETPID));
  return s;
}

Result<std::vector<unsigned short>> Values(int id, std::size_t n) {
  std::vector<unsigned short> v(n);
  SemArg a;
  a.array = v.data();
  if (::semctl(id, 0, GETALL, a) != 0)
    return PosixError("semctl(GETALL)", "semaphore set " + std::to_string(id), errno);
  return v;
}

// Moves every semaphore of `s` from its current values to `want`.
Status SetTo(int id, const std::vector<unsigned short>& now, const std::vector<int>& want) {
  std::vector<int> d(now.size());
  for (std::size_t i = 0; i < now.size(); ++i) d[i] = want[i] - now[i];
  return SemAdd(id, d);
}

// Applies and drops the undo list of every thread of `m` (unshare in each).
Status DropUndo(const SysvMember& m) {
  for (const auto& th : m.fp->threads()) {
    Injector inj(th.tid, m.gadget);
    RETURN_IF_ERROR(inj.Save());
    Status st = inj.Call("unshare(CLONE_SYSVSEM)", SYS_unshare, {CLONE_SYSVSEM}).status();
    Status rs = inj.Restore();
    RETURN_IF_ERROR(st);
    RETURN_IF_ERROR(rs);
  }
  return Status::Ok();
}

// In member `inj`: semadj of `semnum` becomes `adj`, the value unchanged
// (ckpt compensates), positive step first so nothing ever waits.
Status GiveAdjustment(Injector* inj, int semid, int semnum, int adj) {
  std::vector<int> d(static_cast<std::size_t>(semnum) + 1, 0);
  if (adj > 0) {
    d[semnum] = adj;
    RETURN_IF_ERROR(SemAdd(semid, d));
    return InjectSemop(inj, semid, {{semnum, -adj, SEM_UNDO | IPC_NOWAIT}});
  }
  RETURN_IF_ERROR(InjectSemop(inj, semid, {{semnum, -adj, SEM_UNDO | IPC_NOWAIT}}));
  d[semnum] = adj;
  return SemAdd(semid, d);
}

Status ReadAdjustments(const std::vector<SysvMember>& members, TreeModel* t, std::vector<SemUndo>* taken);

}  // namespace

Status DumpSemSets(const std::vector<SysvMember>& members, const std::vector<IpcObjectId>& extra,
                   TreeModel* t, std::vector<SemUndo>* taken) {
  std::set<pid_t> pids;
  for (const auto& m : members) pids.insert(m.pid);
  ASSIGN_OR_RETURN(auto rows, ListSysv("sem"));
  for (const auto& row : rows) {
    if (row.size() < 2) continue;
    int id = std::atoi(row[1].c_str());
    auto set = ReadSet(id);
    if (!set.ok()) continue;  // removed meanwhile
    bool used = std::any_of(extra.begin(), extra.end(),
                            [&](const IpcObjectId& x) { return x.kind == 'e' && x.id == id; });
    for (std::int32_t p : set->sempid) used = used || pids.count(p) != 0;
    for (const auto& m : members) {
      used = used || MemberBlockedOn(m, SYS_semop, id) || MemberBlockedOn(m, SYS_semtimedop, id);
    }
    if (used) t->sems.push_back(std::move(*set));
  }
  // Reading the adjustments moves the values for a moment: refused when a
  // process outside the dump waits on a set (members were interrupted out
  // of their semop by the freeze, so every waiter counted is an outsider).
  for (const auto& set : t->sems) {
    for (std::size_t i = 0; i < set.values.size(); ++i) {
      int n = ::semctl(set.id, static_cast<int>(i), GETNCNT),
          z = ::semctl(set.id, static_cast<int>(i), GETZCNT);
      if (n > 0 || z > 0) {
        return FailedPrecondition("a process outside the dumped tree waits on System V semaphore set " +
                                  std::to_string(set.id) + " (semaphore " + std::to_string(i) +
                                  "); dump the processes that share it together (--tree from their common "
                                  "ancestor)");
      }
    }
  }
  // SEM_UNDO: for each member, every set held at kMid, the member's undo
  // list applied, the differences read, the values back at kMid. If that
  // fails midway, every set gets its values back (the adjustments read so
  // far are in *taken, to be given back) and nobody ever sees kMid.
  for (const auto& s : t->sems) {
    NoteSemLastOperators(s.id, s.sempid);
    NoteSemValues(s.id, std::vector<int>(s.values.begin(), s.values.end()));
  }
  Status st = ReadAdjustments(members, t, taken);
  for (const auto& s : t->sems) {
    auto now = Values(s.id, s.values.size());
    Status back =
        now.ok() ? SetTo(s.id, *now, std::vector<int>(s.values.begin(), s.values.end())) : now.status();
    if (back.ok()) NoteSemValues(s.id, {});
    if (st.ok()) st = back;
  }
  RETURN_IF_ERROR(st);
  t->undo = *taken;
  return Status::Ok();
}

namespace {

Status ReadAdjustments(const std::vector<SysvMember>& members, TreeModel* t, std::vector<SemUndo>* taken) {
  for (const auto& m : members) {
    if (t->sems.empty()) break;
    for (const auto& s : t->sems) {
      ASSIGN_OR_RETURN(auto now, Values(s.id, s.values.size()));
      RETURN_IF_ERROR(SetTo(s.id, now, std::vector<int>(now.size(), kMid)));
    }
    RETURN_IF_ERROR(
        DropUndo(m).WithContext("reading the SEM_UNDO adjustments of process " + std::to_string(m.pid)));
    for (const auto& s : t->sems) {
      ASSIGN_OR_RETURN(auto now, Values(s.id, s.values.size()));
      SemUndo u;
      u.pid = m.pid;
      u.semid = s.id;
      bool any = false;
      for (unsigned short v : now) {
        if (v == 0 || v == 32767) {
          return FailedPrecondition("a SEM_UNDO adjustment of process " + std::to_string(m.pid) + " on set " +
                                    std::to_string(s.id) + " is out of the range ckpt can read");
        }
        u.adj.push_back(static_cast<std::int16_t>(static_cast<int>(v) - kMid));
        any = any || v != kMid;
      }
      if (any) {
        taken->push_back(u);
        NoteSemUndo(m.pid, s.id, u.adj);
      }
      RETURN_IF_ERROR(SetTo(s.id, now, std::vector<int>(now.size(), kMid)));
    }
  }
  return Status::Ok();
}

}  // namespace

Status PutBackUndo(const std::vector<SysvMember>& members, const std::vector<SemUndo>& undo) {
  for (const auto& u : undo) {
    auto m =
        std::find_if(members.begin(), members.end(), [&](const SysvMember& x) { return x.pid == u.pid; });
    if (m == members.end()) continue;
    Injector inj(m->pid, m->gadget);
    RETURN_IF_ERROR(inj.Save());
    Status st;
    for (std::size_t i = 0; i < u.adj.size() && st.ok(); ++i) {
      if (u.adj[i] != 0) st = GiveAdjustment(&inj, u.semid, static_cast<int>(i), u.adj[i]);
    }
    Status rs = inj.Restore();
    RETURN_IF_ERROR(st);
    RETURN_IF_ERROR(rs);
    NoteSemUndo(u.pid, u.semid, {});
  }
  return Status::Ok();
}

Result<int> CreateSemSet(const SemSet& s) {
  ASSIGN_OR_RETURN(int id, CreateWithId("sem", s.id, [&] {
                     return ::semget(s.key, static_cast<int>(s.values.size()),
                                     IPC_CREAT | IPC_EXCL | static_cast<int>(s.mode & 0777));
                   }));
  std::vector<unsigned short> v(s.values.begin(), s.values.end());
  SemArg a;
  a.array = v.data();
  struct semid_ds ds;
  SemArg b;
  b.buf = &ds;
  if (::semctl(id, 0, SETALL, a) != 0 || ::semctl(id, 0, IPC_STAT, b) != 0) {
    int e = errno;
    ::semctl(id, 0, IPC_RMID);
    return PosixError("set up semaphore set", std::to_string(id), e);
  }
  ds.sem_perm.uid = s.uid;
  ds.sem_perm.gid = s.gid;
  ds.sem_perm.mode = static_cast<unsigned short>(s.mode & 0777);
  if (::semctl(id, 0, IPC_SET, b) != 0) {
    int e = errno;
    ::semctl(id, 0, IPC_RMID);
    return PosixError("semctl(IPC_SET)", "semaphore set " + std::to_string(id), e);
  }
  return id;
}

Status RestoreSemMember(const TreeModel& t, std::int32_t pid, Injector* inj) {
  for (const auto& u : t.undo) {
    if (u.pid != pid) continue;
    for (std::size_t i = 0; i < u.adj.size(); ++i) {
      if (u.adj[i] != 0) RETURN_IF_ERROR(GiveAdjustment(inj, u.semid, static_cast<int>(i), u.adj[i]));
    }
  }
  return RestoreLastOperator(t.sems, pid, inj);
}

Status RestoreLastOperator(const std::vector<SemSet>& sets, std::int32_t pid, Injector* inj) {
  // The semaphores this member operated last: a +1/-1 pair in one call
  // leaves the value and sets the last operator.
  for (const auto& s : sets) {
    std::vector<std::array<int, 3>> ops;
    for (std::size_t i = 0; i < s.sempid.size(); ++i) {
      if (s.sempid[i] != pid) continue;
      ops.push_back({static_cast<int>(i), 1, IPC_NOWAIT});
      ops.push_back({static_cast<int>(i), -1, IPC_NOWAIT});
    }
    if (!ops.empty()) RETURN_IF_ERROR(InjectSemop(inj, s.id, ops));
  }
  return Status::Ok();
}

}  // namespace ckpt::engine
