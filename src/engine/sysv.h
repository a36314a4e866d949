// System V IPC of a tree, in the IPC namespace the members live in (the
// host's included): segments (contents via shared_mem.cc), semaphore sets
// with every member's SEM_UNDO adjustments, message queues with their
// messages. Dump reads them while every member is frozen; restore recreates
// them with their exact ids and keys (in this namespace, or a fresh one)
// before any member runs. One object per file: sysv_ipc.cc (namespace, ids),
// sysv_shm.cc, sysv_sem.cc, sysv_msg.cc. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/inject.h"
#include "engine/threads.h"
#include "engine/tree_model.h"
#include "util/status.h"

namespace ckpt::engine {

// ckpt in the members' IPC namespace for the duration of a dump.
class IpcNamespace {
 public:
  IpcNamespace() = default;
  IpcNamespace(const IpcNamespace&) = delete;
  IpcNamespace& operator=(const IpcNamespace&) = delete;
  ~IpcNamespace();  // back to ckpt's own namespace
  // All of `pids` must share one IPC namespace; enters it if it is not ours.
  Status EnterOf(const std::vector<pid_t>& pids);

 private:
  int own_ = -1;
};

// A frozen member as System V code needs it.
struct SysvMember {
  pid_t pid = 0;
  FrozenProcess* fp = nullptr;
  std::uint64_t gadget = 0;
};

class SysvDump {
 public:
  // Finds the semaphore sets and message queues the members use (besides
  // `extra` named ones), reads them and every member's SEM_UNDO
  // adjustments (which consumes them: PutBack returns them). Segments come
  // from shared_mem.cc; `extra` segments must be attached by a member.
  Status Collect(const std::vector<SysvMember>& members, const std::vector<IpcObjectId>& extra,
                 bool leave_running, TreeModel* t);
  // Gives every member its adjustments back (it keeps running).
  Status PutBack();
  // After the members were killed: removes the objects that moved into the
  // image (segments only when nothing else is attached).
  Status RemoveObjects(const TreeModel& t);

 private:
  std::vector<SysvMember> members_;
  std::vector<SemUndo> taken_;  // adjustments read (and consumed) from members
  std::vector<SemSet> sems_;    // the sets read (ckpt's semops made it their last operator)
};

class RestoreGuard;

class SysvRestore {
 public:
  SysvRestore() = default;
  SysvRestore(const SysvRestore&) = delete;
  SysvRestore& operator=(const SysvRestore&) = delete;
  ~SysvRestore();  // removes every object created unless Commit()ed
  // Chooses the namespace (entering a fresh one for kNew, or for kAuto when
  // an id or key is taken here) and creates every object with its id and
  // key; segment ids are reported to `shm_ids` (object id -> shmid).
  Status Create(const TreeModel& t, IpcNsMode mode, std::map<std::uint32_t, int>* shm_ids);
  bool new_namespace() const { return new_ns_; }
  // In stopped member `pid`: its SEM_UNDO adjustments and the semaphores it
  // operated last.
  Status RestoreMember(const TreeModel& t, std::int32_t pid, Injector* inj);
  // Once every member has attached: segments that were marked for removal
  // are removed again.
  Status Finish(const TreeModel& t);
  void Commit() { committed_ = true; }
  // Told about every object before it is created in this IPC namespace.
  void set_guard(RestoreGuard* g) { guard_ = g; }

 private:
  struct Created {
    char kind;
    int id;
  };
  RestoreGuard* guard_ = nullptr;
  std::vector<Created> created_;
  bool new_ns_ = false;
  bool committed_ = false;
};

// sysv_ipc.cc: creates an object whose id must be `id` by writing
// /proc/sys/kernel/KIND_next_id first; `get` performs the XXXget call.
Result<int> CreateWithId(const char* kind, int id, const std::function<int()>& get);
// Semaphore operations on behalf of ckpt (no SEM_UNDO), never blocking.
Status SemAdd(int semid, const std::vector<int>& deltas);
// Runs semop(semid, ops) inside the stopped thread of `inj` (each op: semaphore
// number, value, flags).
Status InjectSemop(Injector* inj, int semid, const std::vector<std::array<int, 3>>& ops);
// Whether some thread of a member is stopped inside system call `nr` whose
// first argument is `id`.
bool MemberBlockedOn(const SysvMember& m, long nr, int id);
// Every id of one kind listed in /proc/sysvipc/KIND ("shm", "sem", "msg")
// with the given column values: (id, columns).
Result<std::vector<std::vector<std::string>>> ListSysv(const char* kind);

// sysv_sem.cc
Status DumpSemSets(const std::vector<SysvMember>& members, const std::vector<IpcObjectId>& extra,
                   TreeModel* t, std::vector<SemUndo>* taken);
Status PutBackUndo(const std::vector<SysvMember>& members, const std::vector<SemUndo>& undo);
Result<int> CreateSemSet(const SemSet& s);
Status RestoreSemMember(const TreeModel& t, std::int32_t pid, Injector* inj);
// Makes member `pid` (stopped, `inj`) the last operator ("sempid") of every
// semaphore of `sets` it operated last at the dump.
Status RestoreLastOperator(const std::vector<SemSet>& sets, std::int32_t pid, Injector* inj);
// sysv_msg.cc
Status DumpMsgQueues(const std::vector<SysvMember>& members, const std::vector<IpcObjectId>& extra,
                     TreeModel* t);
Result<int> CreateMsgQueue(const MsgQueue& q);
// sysv_shm.cc
Result<int> CreateShmSegment(const ShmObject& o);

}  // namespace ckpt::engine
