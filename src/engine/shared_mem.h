// Shared memory objects of a tree: shared anonymous mappings, memfds, POSIX
// shm files under /dev/shm (shm_open, sem_open), unlinked tmpfs files and
// System V segments. Dump: every MAP_SHARED mapping (or descriptor) of such
// an object becomes one object of the tree, found by inode, whose pages are
// stored once. Restore: ckpt creates and fills each object once; every
// member then maps the same object (mmap of a passed descriptor, or shmat)
// at its old address. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "engine/files.h"
#include "engine/inject.h"
#include "engine/model.h"
#include "engine/proc.h"
#include "engine/tree_model.h"
#include "image/reader.h"
#include "image/writer.h"
#include "util/status.h"

namespace ckpt::engine {

class RestoreGuard;

// True when mapping `e` of process `pid` is a shared memory object; sets *kind.
bool ClassifySharedMapping(pid_t pid, const MapsEntry& e, ShmKind* kind);

// Dump side: objects found in the members, with a descriptor to read each.
class SharedMemDump {
 public:
  SharedMemDump() = default;
  SharedMemDump(const SharedMemDump&) = delete;
  SharedMemDump& operator=(const SharedMemDump&) = delete;
  ~SharedMemDump();
  // Registers the objects member `pid` maps (vmas flagged kVmaSharedObject)
  // or holds descriptors to (memfds, files under /dev/shm), recording
  // attachments and descriptor links in *t. Descriptor contents that the
  // object carries are dropped from *blobs (they are stored once, here).
  Status AddMember(pid_t pid, ProcessModel* m, std::vector<Blob>* blobs, TreeModel* t);
  // Writes one "shm.ID" section per object (populated, non-zero pages) and
  // fills each object's runs.
  Status WritePages(image::ImageWriter* w, TreeModel* t, std::uint64_t* bytes);

 private:
  std::map<std::tuple<std::uint64_t, std::uint64_t>, std::uint32_t> by_inode_;
  std::vector<int> fds_;  // per object: a descriptor of ckpt's to read it
};

// Restore side: the objects, created and filled in ckpt.
class SharedMemRestore {
 public:
  SharedMemRestore() = default;
  SharedMemRestore(const SharedMemRestore&) = delete;
  SharedMemRestore& operator=(const SharedMemRestore&) = delete;
  ~SharedMemRestore();  // closes descriptors; removes what it created unless Commit()ed
  // Creates every non-System V object (System V segments are created by
  // sysv_shm.cc and registered with SetSysvId) and fills all of them.
  Status Create(const TreeModel& t, const image::ImageReader& r);
  void SetSysvId(std::uint32_t object, int shmid) { sysv_ids_[object] = shmid; }
  Status Fill(const TreeModel& t, const image::ImageReader& r);
  // Adds the descriptors member `pid` needs to `plan`, at numbers from
  // *next up (passed to AttachMember and closed by it).
  void PlanMember(const TreeModel& t, std::int32_t pid, FdPlan* plan, int* next);
  // The ckpt descriptor of object `id` (-1 for System V segments).
  int FdOf(std::uint32_t id) const { return id < fds_.size() ? fds_[id] : -1; }
  // In the stopped member: maps (or attaches) every object at its address.
  Status AttachMember(const TreeModel& t, std::int32_t pid, const ProcessModel& m, Injector* inj);
  void Commit() { committed_ = true; }
  // Told about every /dev/shm file created.
  void set_guard(RestoreGuard* g) { guard_ = g; }

 private:
  std::vector<int> fds_;
  std::vector<std::string> created_paths_;  // named files created here
  RestoreGuard* guard_ = nullptr;
  std::map<std::uint32_t, int> sysv_ids_;
  std::map<std::pair<std::int32_t, std::uint32_t>, int> member_fd_;  // (pid, object) -> fd in member
  bool committed_ = false;
};

}  // namespace ckpt::engine
